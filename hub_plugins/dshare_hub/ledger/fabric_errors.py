"""Turn what a Fabric Gateway reports (gRPC status + details, commit status) into LedgerError.

The chaincode refuses a transaction with the message ``"<CODE>: <message>"``; the gateway
wraps it (``"chaincode response 500, <CODE>: <message>"``) in a `gateway.ErrorDetail`
attached to the gRPC status. Parsing the code back out gives the broker the same error the
embedded ledger raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from fabric_protos.gateway import gateway_pb2 as _gateway_pb2
from fabric_protos.peer import transaction_pb2 as _transaction_pb2
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

from dshare_chaincode.errors import LEASE_CONFLICT, parse_wire

from . import LedgerError

# The generated protobuf modules carry no type information (py.typed, no stubs).
gateway_pb2: Any = _gateway_pb2
transaction_pb2: Any = _transaction_pb2

# Codes for failures that are not a contract refusal.
LEDGER_UNAVAILABLE = "LEDGER_UNAVAILABLE"  # the gateway could not be reached in time
LEDGER_ERROR = "LEDGER_ERROR"  # the ledger refused or broke for a reason the user cannot fix

STATUS_DETAILS_KEY = "grpc-status-details-bin"

# Validation codes that mean "another transaction changed what this one read": the same
# situation the embedded ledger reports as a lease conflict (exactly one of two wins).
_CONFLICTS = frozenset({transaction_pb2.MVCC_READ_CONFLICT, transaction_pb2.PHANTOM_READ_CONFLICT})


def _status_class() -> Any:
    """google.rpc.Status, built in a private descriptor pool.

    googleapis-common-protos is not a dependency; a private pool also cannot clash with it
    if another package registers the real google/rpc/status.proto.
    """
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(any_pb2.DESCRIPTOR.serialized_pb)
    fd = descriptor_pb2.FileDescriptorProto(
        name="dshare/google_rpc_status.proto",
        package="google.rpc",
        syntax="proto3",
        dependency=["google/protobuf/any.proto"],
    )
    msg = fd.message_type.add(name="Status")
    fdp = descriptor_pb2.FieldDescriptorProto
    msg.field.add(name="code", number=1, type=fdp.TYPE_INT32, label=fdp.LABEL_OPTIONAL)
    msg.field.add(name="message", number=2, type=fdp.TYPE_STRING, label=fdp.LABEL_OPTIONAL)
    msg.field.add(
        name="details",
        number=3,
        type=fdp.TYPE_MESSAGE,
        label=fdp.LABEL_REPEATED,
        type_name=".google.protobuf.Any",
    )
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))


RpcStatus = _status_class()
_DETAIL_TYPE = gateway_pb2.ErrorDetail.DESCRIPTOR.full_name


def encode_status(
    code: grpc.StatusCode, message: str, details: Sequence[gateway_pb2.ErrorDetail]
) -> bytes:
    """The `grpc-status-details-bin` trailer a gateway sends (used by test doubles too)."""
    status = RpcStatus(code=code.value[0], message=message)
    for detail in details:
        packed = status.details.add()
        packed.type_url = f"type.googleapis.com/{_DETAIL_TYPE}"
        packed.value = detail.SerializeToString()
    return bytes(status.SerializeToString())


def error_details(error: grpc.RpcError) -> list[gateway_pb2.ErrorDetail]:
    """The per-peer ErrorDetail messages attached to a gateway error, in order."""
    metadata = getattr(error, "trailing_metadata", None)
    trailers = metadata() if callable(metadata) else None
    found: list[gateway_pb2.ErrorDetail] = []
    for key, value in trailers or ():
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = RpcStatus.FromString(value)
        for packed in status.details:
            if packed.type_url.rsplit("/", 1)[-1] == _DETAIL_TYPE:
                found.append(gateway_pb2.ErrorDetail.FromString(packed.value))
    return found


def map_rpc_error(error: grpc.RpcError, *, action: str, endpoint: str) -> LedgerError:
    """A gateway gRPC error as the LedgerError the broker understands.

    The contract's code is taken from the first peer detail that carries one, then from the
    status message; otherwise the gRPC status decides between unavailable and refused.
    """
    code_fn = getattr(error, "code", None)
    status = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
    details_fn = getattr(error, "details", None)
    text = (details_fn() if callable(details_fn) else None) or ""
    peer_details = error_details(error)

    for message in [d.message for d in peer_details] + [text]:
        refused = parse_wire(message)
        if refused is not None:
            return LedgerError(refused.code, refused.message)

    described = "; ".join(
        f"{d.address or 'peer'} ({d.msp_id or 'unknown MSP'}): {d.message}" for d in peer_details
    )
    reason = text + (f" [{described}]" if described else "")
    if status in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return LedgerError(
            LEDGER_UNAVAILABLE,
            f"the Fabric gateway at {endpoint} did not answer {action} "
            f"({status.name}: {reason}); check that the peer is running and reachable",
        )
    return LedgerError(
        LEDGER_ERROR, f"the Fabric gateway refused {action} ({status.name}: {reason})"
    )


def map_commit_status(code: int, tx_id: str) -> LedgerError | None:
    """None when the transaction committed as valid, else why it was not applied."""
    if code == transaction_pb2.VALID:
        return None
    name = transaction_pb2.TxValidationCode.Name(code) if code in _VALIDATION_NAMES else str(code)
    if code in _CONFLICTS:
        return LedgerError(
            LEASE_CONFLICT,
            f"transaction {tx_id} lost to a concurrent transaction on the same records "
            f"({name}); nothing was recorded, reload and try again",
            key=tx_id,
        )
    return LedgerError(
        LEDGER_ERROR,
        f"transaction {tx_id} was ordered but not committed ({name}); nothing was recorded",
        key=tx_id,
    )


_VALIDATION_NAMES = frozenset(transaction_pb2.TxValidationCode.values())

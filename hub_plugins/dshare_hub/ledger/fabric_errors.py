"""Turn what a Fabric Gateway reports (gRPC status + details, commit status) into LedgerError.

The chaincode refuses a transaction with the message ``"<CODE>: <message>"``; the gateway
wraps it (``"chaincode response 500, <CODE>: <message>"``) in a `gateway.ErrorDetail`
attached to the gRPC status. Parsing the code back out gives the broker the same error the
embedded ledger raises.

A transaction that does not gather the endorsements the channel's policy needs (MAJORITY
Endorsement, fabric-network/configtx.yaml) fails in one of the shapes of Fabric's gateway
(internal/pkg/gateway): ABORTED "failed to collect enough transaction endorsements" with one
ErrorDetail per peer that did not endorse (unreachable, or "ProposalResponsePayloads do not
match" when its result differed), FAILED_PRECONDITION when discovery finds no set of live
peers that could satisfy the policy, UNAVAILABLE when named organizations have no peer; one
that is ordered anyway is marked ENDORSEMENT_POLICY_FAILURE by the validating peers. Each
becomes a LedgerError naming who endorsed and what the channel needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
# Too few organizations' peers endorsed the transaction for the channel's endorsement policy.
ENDORSEMENT_POLICY_FAILURE = "ENDORSEMENT_POLICY_FAILURE"
# The endorsing peers computed different results (read/write sets, response or event).
ENDORSEMENT_MISMATCH = "ENDORSEMENT_MISMATCH"

# The channel's endorsement policy, as dshare's channel configuration sets it.
ENDORSEMENT_RULE = "MAJORITY"
# What Fabric's gateway says (internal/pkg/gateway) when it gives up collecting endorsements.
COLLECT_FAILED = "failed to collect enough transaction endorsements"
PAYLOADS_DIFFER = "ProposalResponsePayloads do not match"
NO_PEER_COMBINATION = "no combination of peers can be derived which satisfy the endorsement policy"
NO_ORG_PEERS = "failed to find any endorsing peers for org(s)"

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


def map_rpc_error(
    error: grpc.RpcError,
    *,
    action: str,
    endpoint: str,
    gateway_org: str | None = None,
    organizations: Sequence[str] = (),
) -> LedgerError:
    """A gateway gRPC error as the LedgerError the broker understands.

    The contract's code is taken from the first peer detail that carries one, then from the
    status message; then the gateway's endorsement failures; otherwise the gRPC status
    decides between unavailable and refused. `gateway_org` is the MSP of the gateway's own
    peer (the first to endorse) and `organizations` the channel's members, when known: they
    only make the messages more precise.
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

    described = _described(peer_details)
    policy = _endorsement_error(
        status, text, peer_details, action, endpoint, gateway_org, organizations
    )
    if policy is not None:
        return policy
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


def names(items: Iterable[str]) -> str:
    """'A', 'A and B', 'A, B and C'."""
    listed = list(items)
    if len(listed) <= 1:
        return "".join(listed)
    return ", ".join(listed[:-1]) + " and " + listed[-1]


def policy_text(organizations: Sequence[str]) -> str:
    """What the channel's endorsement policy asks for, with the count when the members are
    known: 'MAJORITY (2 of 3: UiSMSP, UiOMSP, UiBMSP)'."""
    if not organizations:
        return f"a {ENDORSEMENT_RULE} of its organizations"
    need = len(organizations) // 2 + 1
    return f"{ENDORSEMENT_RULE} ({need} of {len(organizations)}: {', '.join(organizations)})"


def _described(details: Sequence[Any]) -> str:
    return "; ".join(
        f"{d.address or 'peer'} ({d.msp_id or 'unknown MSP'}): {d.message}" for d in details
    )


def _endorsement_error(
    status: grpc.StatusCode,
    text: str,
    details: Sequence[Any],
    action: str,
    endpoint: str,
    gateway_org: str | None,
    organizations: Sequence[str],
) -> LedgerError | None:
    """The gateway's ways of failing to gather the endorsements the policy needs, or None."""
    needs = policy_text(organizations)
    first = gateway_org or "the gateway's organization"
    if status == grpc.StatusCode.ABORTED and text.startswith(COLLECT_FAILED):
        differ = [d for d in details if d.message == PAYLOADS_DIFFER]
        if differ and len(differ) == len(details):
            return LedgerError(
                ENDORSEMENT_MISMATCH,
                f"could not {action}: the peers of {names(d.msp_id for d in differ)} computed "
                f"a different result from the peer of {first} ({PAYLOADS_DIFFER}), so fewer "
                f"matching endorsements were gathered than the channel needs, {needs}; nothing "
                "was recorded. The peers disagree about the ledger's state or the contract is "
                "not deterministic: report it to the ledger's operators",
            )
        return LedgerError(
            ENDORSEMENT_POLICY_FAILURE,
            f"could not {action}: the transaction was endorsed by {first} only; the channel "
            f"needs {needs}. These peers did not endorse it: {_described(details)}. Check "
            f"that they are running and reachable from the gateway at {endpoint}; nothing "
            "was recorded",
        )
    if status == grpc.StatusCode.FAILED_PRECONDITION and NO_PEER_COMBINATION in text:
        return LedgerError(
            ENDORSEMENT_POLICY_FAILURE,
            f"could not {action}: the gateway at {endpoint} knows too few running peers to "
            f"satisfy the channel's endorsement policy, {needs} ({text}). Check that the "
            "other organizations' peers are running; nothing was recorded",
        )
    if status == grpc.StatusCode.UNAVAILABLE and text.startswith(NO_ORG_PEERS):
        return LedgerError(
            ENDORSEMENT_POLICY_FAILURE,
            f"could not {action}: the gateway at {endpoint} has no running peer of the "
            f"organizations asked to endorse ({text}); nothing was recorded",
        )
    return None


def map_commit_status(
    code: int,
    tx_id: str,
    *,
    endorsed_by: Sequence[str] = (),
    organizations: Sequence[str] = (),
) -> LedgerError | None:
    """None when the transaction committed as valid, else why it was not applied.

    `endorsed_by` lists the organizations whose endorsements the ordered transaction
    carried (`fabric_proposal.endorsing_orgs`), for the message of a policy failure.
    """
    if code == transaction_pb2.VALID:
        return None
    name = transaction_pb2.TxValidationCode.Name(code) if code in _VALIDATION_NAMES else str(code)
    if code == transaction_pb2.ENDORSEMENT_POLICY_FAILURE:
        needs = policy_text(organizations)
        enough = len(organizations) // 2 + 1 if organizations else 2
        if endorsed_by and len(endorsed_by) < enough:
            why = (
                f"was endorsed by {names(endorsed_by)} only; the channel needs {needs}, so "
                f"the validating peers marked it {name}"
            )
        elif endorsed_by:
            # Enough organizations signed, so some endorsement did not verify.
            why = (
                f"carries endorsements of {names(endorsed_by)}, but the validating peers "
                f"found they do not satisfy the channel's {needs} ({name}): an endorsement's "
                "signature or peer certificate did not verify"
            )
        else:
            why = f"carries no endorsement that satisfies the channel's {needs} ({name})"
        return LedgerError(
            ENDORSEMENT_POLICY_FAILURE,
            f"transaction {tx_id} {why}; nothing was recorded",
            key=tx_id,
        )
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

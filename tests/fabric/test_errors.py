"""Mapping gateway errors (gRPC status + ErrorDetail) and commit statuses to LedgerError."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from fabric_protos.gateway import gateway_pb2
from fabric_protos.peer import transaction_pb2

from dshare_hub.ledger.fabric_errors import (
    STATUS_DETAILS_KEY,
    encode_status,
    error_details,
    map_commit_status,
    map_rpc_error,
)


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, message: str, *details: str) -> None:
        self._code, self._message = code, message
        self._details = [
            gateway_pb2.ErrorDetail(address="peer0.uio:7051", msp_id="UiOMSP", message=d)
            for d in details
        ]

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._message

    def trailing_metadata(self) -> Any:
        return ((STATUS_DETAILS_KEY, encode_status(self._code, self._message, self._details)),)


ENDORSE = "failed to endorse transaction, see attached details for more info"


@pytest.mark.parametrize(
    ("code", "wire"),
    [
        ("ASSET_NOT_FOUND", "asset 'a1' does not exist"),
        ("NOT_OWNER", "only UiSMSP may retire asset 'a1'"),
        ("LEASE_CONFLICT", "asset 'a1' is exclusive and already leased; try again"),
        ("POLICY_DENIED", "duration_s 90000 exceeds asset 'a1''s max_duration_s 3600"),
        ("LEASE_EXPIRED", "lease 'L-1' has expired"),
        ("INVALID_ARGUMENT", "field 'name': must be text"),
        ("UNKNOWN_FUNCTION", "unknown function 'Nope'"),
    ],
)
def test_chaincode_codes_come_back_from_error_details(code: str, wire: str) -> None:
    error = FakeRpcError(
        grpc.StatusCode.ABORTED, ENDORSE, f"chaincode response 500, {code}: {wire}"
    )
    mapped = map_rpc_error(error, action="endorse X", endpoint="peer:7051")
    assert (mapped.code, mapped.message) == (code, wire)


def test_first_coded_detail_wins_over_transport_noise() -> None:
    error = FakeRpcError(
        grpc.StatusCode.ABORTED,
        ENDORSE,
        "rpc error: code = Unavailable desc = connection refused",
        "chaincode response 500, NOT_LESSEE: user 'bob' does not hold lease 'L-2'",
    )
    mapped = map_rpc_error(error, action="endorse X", endpoint="peer:7051")
    assert (mapped.code, mapped.message) == ("NOT_LESSEE", "user 'bob' does not hold lease 'L-2'")


def test_code_in_the_status_message_without_details() -> None:
    error = grpc.aio.AioRpcError(
        grpc.StatusCode.UNKNOWN,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        details="evaluate call to endorser returned error: chaincode response 500, "
        "RUN_NOT_FOUND: run 'r1' does not exist",
    )
    mapped = map_rpc_error(error, action="evaluate GetRun", endpoint="peer:7051")
    assert (mapped.code, mapped.message) == ("RUN_NOT_FOUND", "run 'r1' does not exist")


def test_details_parse_back_in_order() -> None:
    error = FakeRpcError(grpc.StatusCode.ABORTED, ENDORSE, "one", "two")
    assert [(d.address, d.msp_id, d.message) for d in error_details(error)] == [
        ("peer0.uio:7051", "UiOMSP", "one"),
        ("peer0.uio:7051", "UiOMSP", "two"),
    ]


def test_uncoded_failures_are_ledger_errors_naming_the_status_and_peers() -> None:
    error = FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, "no endorsers found", "policy")
    mapped = map_rpc_error(error, action="endorse RegisterAsset", endpoint="peer:7051")
    assert mapped.code == "LEDGER_ERROR"
    assert mapped.message == (
        "the Fabric gateway refused endorse RegisterAsset (FAILED_PRECONDITION: no endorsers "
        "found [peer0.uio:7051 (UiOMSP): policy])"
    )


@pytest.mark.parametrize("status", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_transport_failures_are_ledger_unavailable(status: grpc.StatusCode) -> None:
    mapped = map_rpc_error(FakeRpcError(status, "down"), action="submit X", endpoint="p:7051")
    assert mapped.code == "LEDGER_UNAVAILABLE"
    assert mapped.message == (
        f"the Fabric gateway at p:7051 did not answer submit X ({status.name}: down); "
        "check that the peer is running and reachable"
    )


def test_commit_statuses() -> None:
    assert map_commit_status(transaction_pb2.VALID, "t1") is None
    for code, name in [
        (transaction_pb2.MVCC_READ_CONFLICT, "MVCC_READ_CONFLICT"),
        (transaction_pb2.PHANTOM_READ_CONFLICT, "PHANTOM_READ_CONFLICT"),
    ]:
        err = map_commit_status(code, "t1")
        assert err is not None and (err.code, err.key) == ("LEASE_CONFLICT", "t1")
        assert err.message == (
            f"transaction t1 lost to a concurrent transaction on the same records ({name}); "
            "nothing was recorded, reload and try again"
        )
    err = map_commit_status(transaction_pb2.DUPLICATE_TXID, "t2")
    assert err is not None and err.code == "LEDGER_ERROR"
    assert err.message == (
        "transaction t2 was ordered but not committed (DUPLICATE_TXID); nothing was recorded"
    )
    err = map_commit_status(77, "t3")
    assert err is not None and "(77)" in err.message


MEMBERS = ("UiSMSP", "UiOMSP", "UiBMSP")


@pytest.mark.parametrize(
    ("endorsed_by", "members", "message"),
    [
        (
            ["UiSMSP"],
            MEMBERS,
            "transaction t4 was endorsed by UiSMSP only; the channel needs MAJORITY (2 of 3: "
            "UiSMSP, UiOMSP, UiBMSP), so the validating peers marked it "
            "ENDORSEMENT_POLICY_FAILURE; nothing was recorded",
        ),
        (
            ["UiSMSP"],
            (),
            "transaction t4 was endorsed by UiSMSP only; the channel needs a MAJORITY of its "
            "organizations, so the validating peers marked it ENDORSEMENT_POLICY_FAILURE; "
            "nothing was recorded",
        ),
        (
            ["UiSMSP", "UiOMSP"],
            MEMBERS,
            "transaction t4 carries endorsements of UiSMSP and UiOMSP, but the validating "
            "peers found they do not satisfy the channel's MAJORITY (2 of 3: UiSMSP, UiOMSP, "
            "UiBMSP) (ENDORSEMENT_POLICY_FAILURE): an endorsement's signature or peer "
            "certificate did not verify; nothing was recorded",
        ),
        (
            [],
            MEMBERS,
            "transaction t4 carries no endorsement that satisfies the channel's MAJORITY "
            "(2 of 3: UiSMSP, UiOMSP, UiBMSP) (ENDORSEMENT_POLICY_FAILURE); nothing was "
            "recorded",
        ),
    ],
)
def test_endorsement_policy_failure_at_commit_names_the_endorsers(
    endorsed_by: list[str], members: tuple[str, ...], message: str
) -> None:
    err = map_commit_status(
        transaction_pb2.ENDORSEMENT_POLICY_FAILURE,
        "t4",
        endorsed_by=endorsed_by,
        organizations=members,
    )
    assert err is not None
    assert (err.code, err.key, err.message) == ("ENDORSEMENT_POLICY_FAILURE", "t4", message)


COLLECT = "failed to collect enough transaction endorsements, see attached details for more info"
DOWN = "rpc error: code = Unavailable desc = connection error"


def test_too_few_endorsements_name_who_endorsed_and_who_did_not() -> None:
    error = FakeRpcError(grpc.StatusCode.ABORTED, COLLECT, DOWN, DOWN)
    mapped = map_rpc_error(
        error,
        action="endorse RequestLease",
        endpoint="peer0.uis:7051",
        gateway_org="UiSMSP",
        organizations=MEMBERS,
    )
    assert mapped.code == "ENDORSEMENT_POLICY_FAILURE"
    assert mapped.message == (
        "could not endorse RequestLease: the transaction was endorsed by UiSMSP only; the "
        "channel needs MAJORITY (2 of 3: UiSMSP, UiOMSP, UiBMSP). These peers did not endorse "
        f"it: peer0.uio:7051 (UiOMSP): {DOWN}; peer0.uio:7051 (UiOMSP): {DOWN}. Check that "
        "they are running and reachable from the gateway at peer0.uis:7051; nothing was "
        "recorded"
    )


def test_differing_results_are_an_endorsement_mismatch() -> None:
    differ = "ProposalResponsePayloads do not match"
    error = FakeRpcError(grpc.StatusCode.ABORTED, COLLECT, differ)
    mapped = map_rpc_error(
        error, action="endorse RegisterAsset", endpoint="p:7051", gateway_org="UiSMSP"
    )
    assert mapped.code == "ENDORSEMENT_MISMATCH"
    assert mapped.message == (
        "could not endorse RegisterAsset: the peers of UiOMSP computed a different result from "
        "the peer of UiSMSP (ProposalResponsePayloads do not match), so fewer matching "
        "endorsements were gathered than the channel needs, a MAJORITY of its organizations; "
        "nothing was recorded. The peers disagree about the ledger's state or the contract is "
        "not deterministic: report it to the ledger's operators"
    )


def test_no_live_combination_of_peers_is_a_policy_failure() -> None:
    text = (
        "no combination of peers can be derived which satisfy the endorsement policy: no "
        "peer combination can satisfy the endorsement policy"
    )
    error = FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, text)
    mapped = map_rpc_error(error, action="endorse X", endpoint="p:7051", organizations=MEMBERS)
    assert mapped.code == "ENDORSEMENT_POLICY_FAILURE"
    assert mapped.message == (
        "could not endorse X: the gateway at p:7051 knows too few running peers to satisfy "
        "the channel's endorsement policy, MAJORITY (2 of 3: UiSMSP, UiOMSP, UiBMSP) "
        f"({text}). Check that the other organizations' peers are running; nothing was "
        "recorded"
    )


def test_named_organizations_without_a_peer_are_a_policy_failure() -> None:
    text = "failed to find any endorsing peers for org(s): UiBMSP"
    mapped = map_rpc_error(
        FakeRpcError(grpc.StatusCode.UNAVAILABLE, text), action="endorse X", endpoint="p:7051"
    )
    assert mapped.code == "ENDORSEMENT_POLICY_FAILURE"
    assert mapped.message == (
        "could not endorse X: the gateway at p:7051 has no running peer of the organizations "
        f"asked to endorse ({text}); nothing was recorded"
    )

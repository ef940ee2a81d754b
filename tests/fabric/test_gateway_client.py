"""FabricLedger end to end against the in-process Gateway TEST DOUBLE (see its docstring).

The double runs the real contract, checks every signature and applies Fabric's MVCC
validation at commit; the real Fabric network is exercised in a later issue.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from fabric_protos.peer import transaction_pb2

from dshare_hub.ledger import LedgerError
from dshare_hub.ledger.fabric import FabricLedger

from .fabric_gateway_double import GatewayDouble

ASSET = {
    "id": "wordcount-uis",
    "name": "Word counts UiS",
    "storage_type": "local",
    "sealed_storage": "sealed-by-the-owner-broker",
    "policy": {"exclusive": True, "max_duration_s": 3600},
}

pytestmark = pytest.mark.asyncio

MakeLedger = Callable[..., FabricLedger]


async def register(ledger: FabricLedger, **changes: Any) -> dict[str, Any]:
    result: dict[str, Any] = await ledger.submit(
        "RegisterAsset", json.dumps(ASSET | changes), actor="alice"
    )
    return result


async def test_submit_then_evaluate_round_trip(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str]
) -> None:
    double, _ = gateway
    ledger = make_ledger()
    try:
        asset = await register(ledger)
        assert asset["id"] == "wordcount-uis"
        assert asset["owner_org"] == "UiSMSP"  # the creator's MSP reached the contract
        assert asset["created_by"] == {"org": "UiSMSP", "actor": "alice"}  # transient actor
        assert double.requests == ["Endorse", "Submit", "CommitStatus"]
        # proposal, prepared transaction and commit-status request, each verified
        assert double.verified_signatures == 3

        fetched = await ledger.evaluate("GetAsset", "wordcount-uis", actor="bob")
        assert fetched["name"] == "Word counts UiS"
        assert fetched["owner_org"] == "UiSMSP"
        assert double.requests[-1] == "Evaluate"
    finally:
        await ledger.close()


async def test_actor_travels_in_the_proposal_transient_map(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str]
) -> None:
    double, _ = gateway
    ledger = make_ledger()
    seen: list[bytes] = []
    original = double._prepare

    def spy(decoded: Any, sim: Any, result: bytes) -> Any:
        seen.append(decoded.payload.TransientMap["actor"])
        return original(decoded, sim, result)

    double._prepare = spy  # type: ignore[method-assign]
    try:
        await ledger.submit("RegisterAsset", json.dumps(ASSET), actor="carol-the-user")
    finally:
        await ledger.close()
    assert seen == [b"carol-the-user"]


async def test_contract_refusal_on_evaluate_maps_to_its_code(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    try:
        with pytest.raises(LedgerError) as err:
            await ledger.evaluate("GetAsset", "no-such-asset", actor="alice")
    finally:
        await ledger.close()
    assert err.value.code == "ASSET_NOT_FOUND"
    assert err.value.message == "asset 'no-such-asset' does not exist"


async def test_contract_refusal_on_endorse_maps_to_its_code_and_nothing_is_stored(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str]
) -> None:
    double, _ = gateway
    ledger = make_ledger()
    other = make_ledger("UiOMSP")
    try:
        await register(ledger)
        state_before = dict(double.world.state)
        with pytest.raises(LedgerError) as err:
            await register(other, name="hijack")
        assert err.value.code == "ASSET_EXISTS"
        assert err.value.message == "asset 'wordcount-uis' already exists"
        assert double.world.state == state_before
        assert double.requests[-1] == "Endorse"  # refused before anything was ordered
    finally:
        await ledger.close()
        await other.close()


async def test_two_racing_leases_of_an_exclusive_asset_exactly_one_wins(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str]
) -> None:
    double, _ = gateway
    owner, uio_a, uio_b = make_ledger(), make_ledger("UiOMSP"), make_ledger("UiOMSP")
    try:
        await register(owner)
        double.endorse_together = 2  # both simulate against the same state, like a race
        outcomes = await asyncio.gather(
            uio_a.submit("RequestLease", "wordcount-uis", "600", "count words", actor="u1"),
            uio_b.submit("RequestLease", "wordcount-uis", "600", "count words", actor="u2"),
            return_exceptions=True,
        )
        after = await owner.evaluate("GetAsset", "wordcount-uis", actor="alice")
    finally:
        for ledger in (owner, uio_a, uio_b):
            await ledger.close()
    assert after["active_leases"] == 1
    wins = [o for o in outcomes if isinstance(o, dict)]
    losses = [o for o in outcomes if isinstance(o, LedgerError)]
    assert len(wins) == 1 and len(losses) == 1, outcomes
    assert wins[0]["state"] == "active"
    loss = losses[0]
    assert loss.code == "LEASE_CONFLICT"
    # The loser read the asset's open-lease index, which the winner added to: a phantom.
    loser_tx = next(t for t, (c, _) in double.statuses.items() if c != transaction_pb2.VALID)
    assert loss.message == (
        f"transaction {loser_tx} lost to a concurrent transaction on the same records "
        "(PHANTOM_READ_CONFLICT); nothing was recorded, reload and try again"
    )
    assert sorted(code for code, _ in double.statuses.values()) == [
        transaction_pb2.VALID,
        transaction_pb2.VALID,
        transaction_pb2.PHANTOM_READ_CONFLICT,
    ]


async def test_mvcc_read_conflict_at_commit_is_lease_conflict(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str]
) -> None:
    double, _ = gateway
    double.force_commit_code = transaction_pb2.MVCC_READ_CONFLICT
    ledger = make_ledger()
    try:
        with pytest.raises(LedgerError) as err:
            await register(ledger)
    finally:
        await ledger.close()
    tx_id = next(iter(double.statuses))
    assert err.value.code == "LEASE_CONFLICT"
    assert err.value.key == tx_id
    assert err.value.message == (
        f"transaction {tx_id} lost to a concurrent transaction on the same records "
        "(MVCC_READ_CONFLICT); nothing was recorded, reload and try again"
    )


async def test_invalid_commit_status_is_reported_not_swallowed(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str]
) -> None:
    double, _ = gateway
    double.force_commit_code = transaction_pb2.ENDORSEMENT_POLICY_FAILURE
    ledger = make_ledger()
    try:
        with pytest.raises(LedgerError) as err:
            await register(ledger)
    finally:
        await ledger.close()
    tx_id = next(iter(double.statuses))
    assert err.value.code == "LEDGER_ERROR"
    assert err.value.message == (
        f"transaction {tx_id} was ordered but not committed (ENDORSEMENT_POLICY_FAILURE); "
        "nothing was recorded"
    )


async def test_orderer_failure_on_submit_is_a_ledger_error_with_the_peer_detail(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str]
) -> None:
    double, _ = gateway
    double.fail_submit = (grpc.StatusCode.ABORTED, "received unsuccessful response from orderer")
    ledger = make_ledger()
    try:
        with pytest.raises(LedgerError) as err:
            await register(ledger)
    finally:
        await ledger.close()
    assert err.value.code == "LEDGER_ERROR"
    assert err.value.message == (
        "the Fabric gateway refused submit RegisterAsset (ABORTED: received unsuccessful "
        "response from orderer [peer0.uis.example.com:7051 (UiSMSP): rpc error: code = "
        "ABORTED desc = received unsuccessful response from orderer])"
    )


async def test_identity_unknown_to_the_channel_is_refused(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str]
) -> None:
    double, _ = gateway
    del double.msp_cas["UiOMSP"]
    ledger = make_ledger("UiOMSP")
    try:
        with pytest.raises(LedgerError) as err:
            await ledger.evaluate("GetAsset", "x", actor="alice")
    finally:
        await ledger.close()
    assert err.value.code == "LEDGER_ERROR"
    assert err.value.message == (
        "the Fabric gateway refused evaluate GetAsset (PERMISSION_DENIED: unknown MSP 'UiOMSP')"
    )


async def test_unreachable_gateway_is_ledger_unavailable(make_ledger: MakeLedger) -> None:
    ledger = make_ledger(peer_endpoint="127.0.0.1:1", evaluate_timeout_s=5)
    try:
        with pytest.raises(LedgerError) as err:
            await ledger.evaluate("GetAsset", "x", actor="alice")
    finally:
        await ledger.close()
    assert err.value.code == "LEDGER_UNAVAILABLE"
    assert err.value.message.startswith(
        "the Fabric gateway at 127.0.0.1:1 did not answer evaluate GetAsset ("
    )
    assert err.value.message.endswith("check that the peer is running and reachable")


async def test_bad_arguments_are_refused_before_any_request(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str]
) -> None:
    double, _ = gateway
    ledger = make_ledger()
    try:
        with pytest.raises(LedgerError) as err:
            await ledger.submit("RegisterAsset", "{}", actor="")
        assert (err.value.code, err.value.key) == ("INVALID_ARGUMENT", "actor")
        assert err.value.message == "actor is required: name the user the broker acts for"
        with pytest.raises(LedgerError) as err:
            await ledger.submit("RequestLease", "a", 600, "p", actor="u")  # type: ignore[arg-type]
        assert (err.value.code, err.value.key) == ("INVALID_ARGUMENT", "args[2]")
        assert err.value.message == (
            "argument 2 of RequestLease must be a string (JSON for structured values), got int"
        )
        with pytest.raises(LedgerError) as err:
            await ledger.evaluate("", actor="u")
        assert err.value.message == "the transaction name must be a non-empty string"
    finally:
        await ledger.close()
    assert double.requests == []


async def test_chaincode_events_stream_from_a_block(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str]
) -> None:
    ledger = make_ledger()
    try:
        await register(ledger)
        await register(ledger, id="second-asset")
        events = []
        async for event in ledger.events(start_block=0):
            events.append(event)
            if len(events) == 2:
                break
        skipped = []
        async for event in ledger.events(start_block=0, after_tx_id=events[0].tx_id):
            skipped.append(event)
            break
    finally:
        await ledger.close()
    assert [e.name for e in events] == ["AssetRegistered", "AssetRegistered"]
    assert [json.loads(e.payload)["id"] for e in events] == ["wordcount-uis", "second-asset"]
    assert events[0].block_number < events[1].block_number
    assert len(events[0].tx_id) == 64
    assert skipped == [events[1]]


async def test_events_without_a_start_block_begin_at_the_next_commit(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str]
) -> None:
    double, _ = gateway
    ledger, writer = make_ledger(), make_ledger()
    try:
        await register(writer, id="before-subscribing")
        stream = ledger.events()
        first = asyncio.ensure_future(anext(stream))
        while "ChaincodeEvents" not in double.requests:  # subscribed before the next commit
            await asyncio.sleep(0.01)
        await register(writer, id="after-subscribing")
        got = await asyncio.wait_for(first, timeout=10)
        await stream.aclose()
    finally:
        await ledger.close()
        await writer.close()
    assert json.loads(got.payload)["id"] == "after-subscribing"

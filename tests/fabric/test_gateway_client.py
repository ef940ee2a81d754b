"""FabricLedger end to end against the in-process Gateway TEST DOUBLE (see its docstring).

The double has three peers (UiS, whose peer hosts the gateway, UiO, UiB) running the real
contract on one committed state, gathers the MAJORITY endorsement, checks every signature,
evaluates the endorsement policy and Fabric's MVCC validation at commit. The real Fabric
network cannot run here (docs/architecture.md, "Fabric path: what the doubles model").
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from fabric_protos.peer import transaction_pb2

from dshare_hub.ledger import LedgerError
from dshare_hub.ledger.fabric import FabricLedger

from .conftest import Pki
from .fabric_gateway_double import GatewayDouble
from .fabric_peer_double import EndorsingPeer, real_contract
from .fabric_pki import CA

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
        # endorsed by the gateway's own peer and the first other org's: MAJORITY, 2 of 3
        tx_id = next(iter(double.committed))
        assert [p.msp_id for p in double.peers.values() if tx_id in p.executed] == [
            "UiSMSP",
            "UiOMSP",
        ]
        assert double.statuses[tx_id][0] == transaction_pb2.VALID
        # each endorsing peer checked the proposal; the orderer and the committer the signed
        # transaction; the committer both endorsements; the gateway the commit-status request
        assert double.msps.verified == {
            "proposal": 2,
            "submission": 1,
            "transaction": 1,
            "endorsement": 2,
            "commit status": 1,
        }

        fetched = await ledger.evaluate("GetAsset", "wordcount-uis", actor="bob")
        assert fetched["name"] == "Word counts UiS"
        assert fetched["owner_org"] == "UiSMSP"
        assert double.requests[-1] == "Evaluate"
        assert double.msps.verified["proposal"] == 3  # a query runs on one peer only
    finally:
        await ledger.close()


async def test_actor_travels_in_the_proposal_transient_map(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str]
) -> None:
    double, _ = gateway
    ledger = make_ledger()
    seen: list[tuple[str, bytes]] = []

    def spying(peer: EndorsingPeer) -> Any:
        def invoke(stub: Any, fn: str, args: Sequence[str]) -> bytes:
            seen.append((peer.msp_id, stub.get_transient()["actor"]))
            return real_contract(stub, fn, args)

        return invoke

    for peer in double.peers.values():
        peer.invoke = spying(peer)
    try:
        await ledger.submit("RegisterAsset", json.dumps(ASSET), actor="carol-the-user")
    finally:
        await ledger.close()
    assert seen == [("UiSMSP", b"carol-the-user"), ("UiOMSP", b"carol-the-user")]


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
    double.force_commit_code = transaction_pb2.INVALID_OTHER_REASON
    ledger = make_ledger()
    try:
        with pytest.raises(LedgerError) as err:
            await register(ledger)
    finally:
        await ledger.close()
    tx_id = next(iter(double.statuses))
    assert err.value.code == "LEDGER_ERROR"
    assert err.value.message == (
        f"transaction {tx_id} was ordered but not committed (INVALID_OTHER_REASON); "
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
    del double.msps.cas["UiOMSP"]
    ledger = make_ledger("UiOMSP")
    try:
        with pytest.raises(LedgerError) as err:
            await ledger.evaluate("GetAsset", "x", actor="alice")
    finally:
        await ledger.close()
    assert err.value.code == "LEDGER_ERROR"
    denied = (
        "error validating proposal: access denied: channel [dshare] creator org unknown, "
        "creator is malformed"
    )
    assert err.value.message == (
        "the Fabric gateway refused evaluate GetAsset (FAILED_PRECONDITION: evaluate call to "
        f"endorser returned error: {denied} [peer0.uis.example.com:7051 (UiSMSP): {denied}])"
    )


async def test_a_certificate_not_issued_by_its_msp_is_refused(
    make_ledger: MakeLedger, pki: Pki, gateway: tuple[GatewayDouble, str], tmp_path: Path
) -> None:
    double, _ = gateway
    forged = CA("UiO").issue("admin@uiomsp", ou="client")  # the right name, another CA
    cert, key = forged.write(tmp_path, "forged")
    ledger = make_ledger("UiOMSP", cert_path=str(cert), key_path=str(key))
    try:
        with pytest.raises(LedgerError) as err:
            await ledger.submit("RegisterAsset", json.dumps(ASSET), actor="mallory")
    finally:
        await ledger.close()
    assert err.value.message == (
        "the Fabric gateway refused endorse RegisterAsset (ABORTED: failed to endorse "
        "transaction, see attached details for more info [peer0.uis.example.com:7051 "
        "(UiSMSP): error validating proposal: access denied: channel [dshare] creator org "
        "[UiOMSP]])"
    )
    assert double.world.state == {}


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
        await asyncio.wait_for(double.subscribed.wait(), timeout=10)  # before the next commit
        await register(writer, id="after-subscribing")
        got = await asyncio.wait_for(first, timeout=10)
        await stream.aclose()
    finally:
        await ledger.close()
        await writer.close()
    assert json.loads(got.payload)["id"] == "after-subscribing"

"""The chaincode entry point driven in-process with the shim protocol's protobuf messages.

A TEST DOUBLE plays the peer's side of `Chaincode.Connect` (`fabric_shim_peer.ShimPeer`:
REGISTERED, READY, TRANSACTION, answering GET_STATE/PUT_STATE/range/history requests from a
`World`); no peer or network is involved. `test_ccaas_tls.py` drives the same handler over
real gRPC with TLS.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fabric_protos.peer import chaincode_shim_pb2, proposal_response_pb2

from dshare_chaincode.errors import ContractError

from .conftest import Pki
from .fabric_shim_peer import CHANNEL, WHEN, ShimPeer, connect, finish, real_invoke, transaction
from .fabric_world import World

Msg = chaincode_shim_pb2.ChaincodeMessage
pytestmark = pytest.mark.asyncio


def tx(pki: Pki, fn: str, *args: str, msp: str = "UiSMSP", **changes: Any) -> Any:
    return transaction(pki.clients[msp], fn, *args, msp=msp, **changes)


ASSET = {"id": "a1", "name": "Counts", "storage_type": "local", "sealed_storage": "sealed"}


async def test_event_set_by_the_contract_is_in_the_completed_message(pki: Pki) -> None:
    peer = ShimPeer(World())
    task = await connect(peer, real_invoke)
    sent = tx(pki, "RegisterAsset", json.dumps(ASSET))
    completed = await peer.run_transaction(sent)
    await finish(peer, task)

    response = proposal_response_pb2.Response.FromString(completed.payload)
    assert response.status == 200, response.message
    assert json.loads(response.payload)["owner_org"] == "UiSMSP"
    assert completed.HasField("chaincode_event")
    assert completed.chaincode_event.event_name == "AssetRegistered"
    assert completed.chaincode_event.tx_id == sent.txid
    assert json.loads(completed.chaincode_event.payload) == {
        "by": {"actor": "alice", "org": "UiSMSP"},
        "id": "a1",
        "owner_org": "UiSMSP",
    }
    assert (completed.txid, completed.channel_id) == (sent.txid, CHANNEL)
    assert peer.seen[0] == "GET_STATE" and "PUT_STATE" in peer.seen


async def test_contract_refusal_is_a_500_with_code_and_message_and_no_event(pki: Pki) -> None:
    world = World()
    peer = ShimPeer(world)
    task = await connect(peer, real_invoke)
    await peer.run_transaction(tx(pki, "RegisterAsset", json.dumps(ASSET)))
    completed = await peer.run_transaction(
        tx(pki, "RetireAsset", "a1", msp="UiOMSP", actor="mallory")
    )
    await finish(peer, task)
    response = proposal_response_pb2.Response.FromString(completed.payload)
    assert response.status == 500
    assert response.message.startswith("NOT_OWNER: ")
    assert not completed.HasField("chaincode_event")


def _probe(stub: Any, fn: str, args: Sequence[str]) -> bytes:
    """A stand-in contract touching every Stub method, reporting what it saw."""
    stub.set_event("first", b"replaced")
    seen = {
        "fn": fn,
        "args": list(args),
        "tx_id": stub.get_tx_id(),
        "timestamp": stub.get_tx_timestamp().isoformat(),
        "creator": stub.get_creator().msp_id,
        "cert_is_pem": stub.get_creator().cert_pem.startswith("-----BEGIN CERTIFICATE-----"),
        "transient": {k: v.decode() for k, v in stub.get_transient().items()},
        "missing": stub.get_state("nope"),
        "k1": stub.get_state("k1").decode(),
        "range": [k for k, _ in stub.get_state_by_range("", "")],
        "prefix": [v.decode() for _, v in stub.get_state_by_partial_composite_key("lease", ["a1"])],
        "history": [(h.tx_id, h.is_delete, h.value) for h in stub.get_history_for_key("k1")],
    }
    stub.put_state("k9", b"new")
    stub.del_state("k2")
    stub.set_event("probe", b"payload")
    return json.dumps(seen, default=lambda b: b.decode()).encode()


async def test_stub_adapter_covers_the_protocol(pki: Pki) -> None:
    from dshare_chaincode.stub import HistoryEntry, create_composite_key

    world = World()
    for key in ("k1", "k2", "k3", "k4", "k5"):
        world.state[key] = (f"v-{key}".encode(), (1, 0))
    for i in range(3):
        world.state[create_composite_key("lease", ["a1", f"L{i}"])] = (f"L{i}".encode(), (1, 0))
    when = datetime(2026, 1, 1, tzinfo=UTC)
    world.history["k1"] = [
        HistoryEntry("tx-old", when, False, b"one"),
        HistoryEntry("tx-del", when, True, None),
        HistoryEntry("tx-new", when, False, b"v-k1"),
    ]
    peer = ShimPeer(world)
    task = await connect(peer, _probe)
    sent = tx(pki, "Probe", "x", "y", actor="bob")
    completed = await peer.run_transaction(sent)
    await finish(peer, task)

    response = proposal_response_pb2.Response.FromString(completed.payload)
    assert response.status == 200, response.message
    seen = json.loads(response.payload)
    assert seen == {
        "fn": "Probe",
        "args": ["x", "y"],
        "tx_id": sent.txid,
        "timestamp": "2026-05-01T12:00:00.123456+00:00",
        "creator": "UiSMSP",
        "cert_is_pem": True,
        "transient": {"actor": "bob"},
        "missing": None,
        "k1": "v-k1",
        # the composite keys are left out of a simple range, and 5 keys need 3 pages
        "range": ["k1", "k2", "k3", "k4", "k5"],
        "prefix": ["L0", "L1", "L2"],
        "history": [["tx-old", False, "one"], ["tx-del", True, None], ["tx-new", False, "v-k1"]],
    }
    assert peer.seen.count("QUERY_STATE_NEXT") == 2 + 1 + 1  # range, prefix, history pages
    assert world.state["k9"][0] == b"new" and "k2" not in world.state
    # one event per transaction: the later set_event replaced the first
    assert completed.chaincode_event.event_name == "probe"
    assert completed.chaincode_event.payload == b"payload"


async def test_peer_refusing_a_request_fails_the_transaction_cleanly(pki: Pki) -> None:
    peer = ShimPeer(World())
    peer.refuse.add(Msg.GET_STATE)
    task = await connect(peer, real_invoke)
    completed = await peer.run_transaction(tx(pki, "GetAsset", "a1"))
    await finish(peer, task)
    response = proposal_response_pb2.Response.FromString(completed.payload)
    assert response.status == 500
    assert response.message == "GetAsset failed: the peer refused GET_STATE: access denied"
    assert not completed.HasField("chaincode_event")


async def test_a_crashing_contract_reports_without_leaking_details(pki: Pki) -> None:
    def crash(stub: Any, fn: str, args: Sequence[str]) -> bytes:
        raise RuntimeError("secret-storage-key=abc123")

    peer = ShimPeer(World())
    task = await connect(peer, crash)
    completed = await peer.run_transaction(tx(pki, "GetAsset", "a1"))
    await finish(peer, task)
    response = proposal_response_pb2.Response.FromString(completed.payload)
    assert response.status == 500
    assert response.message == "GetAsset failed inside the chaincode; see the chaincode log"


async def test_contract_error_wire_form_is_exact(pki: Pki) -> None:
    def refuse(stub: Any, fn: str, args: Sequence[str]) -> bytes:
        raise ContractError("LEASE_EXPIRED", "lease 'L-1' expired at 2026-01-01T00:00:00Z")

    peer = ShimPeer(World())
    task = await connect(peer, refuse)
    completed = await peer.run_transaction(tx(pki, "FinishRun", "r"))
    await finish(peer, task)
    response = proposal_response_pb2.Response.FromString(completed.payload)
    assert (response.status, response.message) == (
        500,
        "LEASE_EXPIRED: lease 'L-1' expired at 2026-01-01T00:00:00Z",
    )


async def test_keepalive_is_echoed(pki: Pki) -> None:
    peer = ShimPeer(World())
    task = await connect(peer, real_invoke)
    await peer.to_chaincode.put(Msg(type=Msg.KEEPALIVE, txid="ka"))
    echoed = await asyncio.wait_for(peer.from_chaincode.get(), timeout=10)
    await finish(peer, task)
    assert (echoed.type, echoed.txid) == (Msg.KEEPALIVE, "ka")


# -- the clock rule (dshare_chaincode.clock), applied before the contract runs ---------------


def _counting() -> tuple[list[str], Any]:
    ran: list[str] = []

    def invoke(stub: Any, fn: str, args: Sequence[str]) -> bytes:
        ran.append(fn)
        return real_invoke(stub, fn, args)

    return ran, invoke


def skew_message(tx_id: str, stamp: str, offset: str, direction: str) -> str:
    return (
        f"CLOCK_SKEW: transaction {tx_id} is timestamped {stamp}, {offset} s {direction} the "
        "endorsing peer's clock (2026-05-01T12:00:00.123456Z); the peers accept at most 120 s "
        "(CHAINCODE_MAX_CLOCK_SKEW): check the submitting machine's clock"
    )


@pytest.mark.parametrize(
    ("shift", "stamp", "offset", "direction"),
    [
        (timedelta(minutes=10), "2026-05-01T12:10:00.123456Z", "600", "ahead of"),
        (timedelta(seconds=-120.5), "2026-05-01T11:57:59.623456Z", "120.5", "behind"),
    ],
    ids=["forward-dated", "back-dated"],
)
async def test_a_proposal_dated_beyond_the_skew_is_refused_before_the_contract_runs(
    pki: Pki, shift: timedelta, stamp: str, offset: str, direction: str
) -> None:
    ran, invoke = _counting()
    peer = ShimPeer(World())
    task = await connect(peer, invoke)  # the machine's clock reads WHEN
    sent = tx(pki, "RegisterAsset", json.dumps(ASSET), timestamp=WHEN + shift)
    completed = await peer.run_transaction(sent)
    await finish(peer, task)
    response = proposal_response_pb2.Response.FromString(completed.payload)
    assert (response.status, response.message) == (
        500,
        skew_message(sent.txid, stamp, offset, direction),
    )
    assert ran == [] and peer.seen == ["COMPLETED"]  # not one ledger request
    assert not completed.HasField("chaincode_event")


@pytest.mark.parametrize("shift", [timedelta(seconds=120), timedelta(seconds=-120)])
async def test_a_proposal_within_the_skew_is_served(pki: Pki, shift: timedelta) -> None:
    ran, invoke = _counting()
    peer = ShimPeer(World())
    task = await connect(peer, invoke)
    completed = await peer.run_transaction(
        tx(pki, "RegisterAsset", json.dumps(ASSET), timestamp=WHEN + shift)
    )
    await finish(peer, task)
    response = proposal_response_pb2.Response.FromString(completed.payload)
    assert response.status == 200, response.message
    assert ran == ["RegisterAsset"]
    # the contract took the proposal's time, not the machine's
    expected = (WHEN + shift).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert json.loads(response.payload)["created_at"] == expected


async def test_queries_are_held_to_the_clock_rule_too(pki: Pki) -> None:
    ran, invoke = _counting()
    peer = ShimPeer(World())
    task = await connect(peer, invoke)
    sent = tx(pki, "GetAsset", "a1", timestamp=WHEN - timedelta(hours=1))
    completed = await peer.run_transaction(sent)
    await finish(peer, task)
    response = proposal_response_pb2.Response.FromString(completed.payload)
    assert response.message == skew_message(
        sent.txid, "2026-05-01T11:00:00.123456Z", "3600", "behind"
    )
    assert ran == []

"""The chaincode entry point driven in-process with the shim protocol's protobuf messages.

A small TEST DOUBLE plays the peer's side of `Chaincode.Connect` (REGISTERED, READY,
TRANSACTION, answering GET_STATE/PUT_STATE/range/history requests from a `World`); no peer
or network is involved.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from fabric_protos.ledger.queryresult import kv_query_result_pb2
from fabric_protos.peer import chaincode_pb2, chaincode_shim_pb2, proposal_response_pb2

from dshare_chaincode.ccaas import DShareChaincode, DShareHandler
from dshare_chaincode.errors import ContractError
from dshare_hub.ledger.fabric_proposal import Signer, build_proposal, sign_proposal

from .conftest import CHAINCODE, CHANNEL, Pki
from .fabric_world import World

Msg = chaincode_shim_pb2.ChaincodeMessage
pytestmark = pytest.mark.asyncio
PAGE = 2  # small pages so range scans exercise QUERY_STATE_NEXT


class PeerDouble:
    """The peer's end of the chaincode stream, answering from an in-memory world."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.to_chaincode: asyncio.Queue[Any] = asyncio.Queue()
        self.from_chaincode: asyncio.Queue[Any] = asyncio.Queue()
        self.seen: list[str] = []
        self.queries: dict[str, list[bytes]] = {}
        self.refuse: set[int] = set()

    async def write(self, msg: Any) -> None:  # the servicer context the handler writes to
        await self.from_chaincode.put(msg)

    async def stream(self) -> AsyncIterator[Any]:
        while True:
            msg = await self.to_chaincode.get()
            if msg is None:
                return
            yield msg

    def _page(self, qid: str) -> bytes:
        rows = self.queries[qid]
        page, self.queries[qid] = rows[:PAGE], rows[PAGE:]
        return chaincode_shim_pb2.QueryResponse(
            results=[chaincode_shim_pb2.QueryResultBytes(resultBytes=r) for r in page],
            has_more=bool(self.queries[qid]),
            id=qid,
        ).SerializeToString()

    def answer(self, msg: Any) -> bytes:
        if msg.type == Msg.GET_STATE:
            key = chaincode_shim_pb2.GetState.FromString(msg.payload).key
            entry = self.world.state.get(key)
            return entry[0] if entry else b""
        if msg.type == Msg.PUT_STATE:
            put = chaincode_shim_pb2.PutState.FromString(msg.payload)
            self.world.state[put.key] = (put.value, (9, 0))
            return b""
        if msg.type == Msg.DEL_STATE:
            self.world.state.pop(chaincode_shim_pb2.DelState.FromString(msg.payload).key, None)
            return b""
        if msg.type == Msg.GET_STATE_BY_RANGE:
            req = chaincode_shim_pb2.GetStateByRange.FromString(msg.payload)
            qid = f"q{len(self.queries)}"
            self.queries[qid] = [
                kv_query_result_pb2.KV(namespace=CHAINCODE, key=k, value=v).SerializeToString()
                for k, v, _ in self.world.scan(req.startKey, req.endKey)
            ]
            return self._page(qid)
        if msg.type == Msg.GET_HISTORY_FOR_KEY:
            key = chaincode_shim_pb2.GetHistoryForKey.FromString(msg.payload).key
            qid = f"q{len(self.queries)}"
            rows = []
            for entry in reversed(self.world.history.get(key, [])):  # Fabric: newest first
                mod = kv_query_result_pb2.KeyModification(
                    tx_id=entry.tx_id, value=entry.value or b"", is_delete=entry.is_delete
                )
                mod.timestamp.FromDatetime(entry.timestamp.replace(tzinfo=None))
                rows.append(mod.SerializeToString())
            self.queries[qid] = rows
            return self._page(qid)
        if msg.type == Msg.QUERY_STATE_NEXT:
            return self._page(chaincode_shim_pb2.QueryStateNext.FromString(msg.payload).id)
        if msg.type == Msg.QUERY_STATE_CLOSE:
            return b""
        raise AssertionError(f"unexpected message {Msg.Type.Name(msg.type)}")

    async def run_transaction(self, tx: Any) -> Any:
        """Send one TRANSACTION and serve its requests until COMPLETED; returns COMPLETED."""
        await self.to_chaincode.put(tx)
        while True:
            msg = await asyncio.wait_for(self.from_chaincode.get(), timeout=10)
            self.seen.append(Msg.Type.Name(msg.type))
            if msg.type == Msg.COMPLETED:
                return msg
            assert (msg.txid, msg.channel_id) == (tx.txid, tx.channel_id)
            if msg.type in self.refuse:
                reply = Msg(
                    type=Msg.ERROR,
                    payload=b"access denied",
                    txid=msg.txid,
                    channel_id=msg.channel_id,
                )
            else:
                reply = Msg(
                    type=Msg.RESPONSE,
                    payload=self.answer(msg),
                    txid=msg.txid,
                    channel_id=msg.channel_id,
                )
            await self.to_chaincode.put(reply)


async def connect(peer: PeerDouble, invoke: Any) -> asyncio.Task[Any]:
    handler = DShareHandler(f"{CHAINCODE}_1.0:abc", DShareChaincode(), invoke=invoke)
    task = asyncio.ensure_future(handler.chat_with_peer(peer.stream(), peer))
    register = await asyncio.wait_for(peer.from_chaincode.get(), timeout=10)
    assert register.type == Msg.REGISTER
    assert chaincode_pb2.ChaincodeID.FromString(register.payload).name == f"{CHAINCODE}_1.0:abc"
    await peer.to_chaincode.put(Msg(type=Msg.REGISTERED))
    await peer.to_chaincode.put(Msg(type=Msg.READY))
    return task


def transaction(pki: Pki, fn: str, *args: str, actor: str = "alice", msp: str = "UiSMSP") -> Any:
    client = pki.clients[msp]
    signer = Signer.from_pem(msp, client.cert_pem, client.key_pem)
    proposal = build_proposal(
        channel=CHANNEL,
        chaincode=CHAINCODE,
        fn=fn,
        args=args,
        creator=signer.creator,
        transient={"actor": actor.encode()},
        timestamp=datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
    )
    return Msg(
        type=Msg.TRANSACTION,
        payload=chaincode_pb2.ChaincodeInput(
            args=[a.encode() for a in (fn, *args)]
        ).SerializeToString(),
        txid=proposal.tx_id,
        channel_id=CHANNEL,
        proposal=sign_proposal(signer, proposal),
    )


async def finish(peer: PeerDouble, task: asyncio.Task[Any]) -> None:
    await peer.to_chaincode.put(None)
    await asyncio.wait_for(task, timeout=10)


ASSET = {"id": "a1", "name": "Counts", "storage_type": "local", "sealed_storage": "sealed"}


async def test_event_set_by_the_contract_is_in_the_completed_message(pki: Pki) -> None:
    peer = PeerDouble(World())
    task = await connect(peer, _real_invoke)
    tx = transaction(pki, "RegisterAsset", json.dumps(ASSET))
    completed = await peer.run_transaction(tx)
    await finish(peer, task)

    response = proposal_response_pb2.Response.FromString(completed.payload)
    assert response.status == 200, response.message
    assert json.loads(response.payload)["owner_org"] == "UiSMSP"
    assert completed.HasField("chaincode_event")
    assert completed.chaincode_event.event_name == "AssetRegistered"
    assert completed.chaincode_event.tx_id == tx.txid
    assert json.loads(completed.chaincode_event.payload) == {
        "by": {"actor": "alice", "org": "UiSMSP"},
        "id": "a1",
        "owner_org": "UiSMSP",
    }
    assert (completed.txid, completed.channel_id) == (tx.txid, CHANNEL)
    assert peer.seen[0] == "GET_STATE" and "PUT_STATE" in peer.seen


def _real_invoke(stub: Any, fn: str, args: Sequence[str]) -> bytes:
    from dshare_chaincode.contract import invoke

    return invoke(stub, fn, args)


async def test_contract_refusal_is_a_500_with_code_and_message_and_no_event(pki: Pki) -> None:
    world = World()
    peer = PeerDouble(world)
    task = await connect(peer, _real_invoke)
    await peer.run_transaction(transaction(pki, "RegisterAsset", json.dumps(ASSET)))
    completed = await peer.run_transaction(
        transaction(pki, "RetireAsset", "a1", msp="UiOMSP", actor="mallory")
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
    peer = PeerDouble(world)
    task = await connect(peer, _probe)
    tx = transaction(pki, "Probe", "x", "y", actor="bob")
    completed = await peer.run_transaction(tx)
    await finish(peer, task)

    response = proposal_response_pb2.Response.FromString(completed.payload)
    assert response.status == 200, response.message
    seen = json.loads(response.payload)
    assert seen == {
        "fn": "Probe",
        "args": ["x", "y"],
        "tx_id": tx.txid,
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
    peer = PeerDouble(World())
    peer.refuse.add(Msg.GET_STATE)
    task = await connect(peer, _real_invoke)
    completed = await peer.run_transaction(transaction(pki, "GetAsset", "a1"))
    await finish(peer, task)
    response = proposal_response_pb2.Response.FromString(completed.payload)
    assert response.status == 500
    assert response.message == "GetAsset failed: the peer refused GET_STATE: access denied"
    assert not completed.HasField("chaincode_event")


async def test_a_crashing_contract_reports_without_leaking_details(pki: Pki) -> None:
    def crash(stub: Any, fn: str, args: Sequence[str]) -> bytes:
        raise RuntimeError("secret-storage-key=abc123")

    peer = PeerDouble(World())
    task = await connect(peer, crash)
    completed = await peer.run_transaction(transaction(pki, "GetAsset", "a1"))
    await finish(peer, task)
    response = proposal_response_pb2.Response.FromString(completed.payload)
    assert response.status == 500
    assert response.message == "GetAsset failed inside the chaincode; see the chaincode log"


async def test_contract_error_wire_form_is_exact(pki: Pki) -> None:
    def refuse(stub: Any, fn: str, args: Sequence[str]) -> bytes:
        raise ContractError("LEASE_EXPIRED", "lease 'L-1' expired at 2026-01-01T00:00:00Z")

    peer = PeerDouble(World())
    task = await connect(peer, refuse)
    completed = await peer.run_transaction(transaction(pki, "FinishRun", "r"))
    await finish(peer, task)
    response = proposal_response_pb2.Response.FromString(completed.payload)
    assert (response.status, response.message) == (
        500,
        "LEASE_EXPIRED: lease 'L-1' expired at 2026-01-01T00:00:00Z",
    )


async def test_keepalive_is_echoed(pki: Pki) -> None:
    peer = PeerDouble(World())
    task = await connect(peer, _real_invoke)
    await peer.to_chaincode.put(Msg(type=Msg.KEEPALIVE, txid="ka"))
    echoed = await asyncio.wait_for(peer.from_chaincode.get(), timeout=10)
    await finish(peer, task)
    assert (echoed.type, echoed.txid) == (Msg.KEEPALIVE, "ka")

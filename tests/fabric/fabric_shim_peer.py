"""A TEST DOUBLE of the peer's end of the chaincode shim protocol (`Chaincode.Connect`).

It plays REGISTERED, READY and TRANSACTION and answers the chaincode's GET_STATE, PUT_STATE,
range and history requests from a `World`, either in-process (the handler writes to it as
its stream context) or over a real gRPC connection to the chaincode service (`over_grpc`),
as a Fabric peer dials a chaincode-as-a-service. No peer or network is involved.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
from fabric_protos.ledger.queryresult import kv_query_result_pb2
from fabric_protos.peer import chaincode_pb2, chaincode_shim_pb2, chaincode_shim_pb2_grpc

from dshare_chaincode.ccaas import DShareChaincode, DShareHandler
from dshare_chaincode.clock import ClockGuard
from dshare_hub.ledger.fabric_proposal import Signer, build_proposal, sign_proposal

from .fabric_pki import Issued
from .fabric_world import World

Msg = chaincode_shim_pb2.ChaincodeMessage
PAGE = 2  # small pages so range scans exercise QUERY_STATE_NEXT
CHANNEL = "dshare"
CHAINCODE = "dshare"
PACKAGE_ID = f"{CHAINCODE}_1.0:abc"
# The proposals' timestamp, and the peer clock that accepts it.
WHEN = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


class ShimPeer:
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

    async def received(self) -> Any:
        """The chaincode's next message (an RpcError when its gRPC stream failed)."""
        msg = await asyncio.wait_for(self.from_chaincode.get(), timeout=10)
        if isinstance(msg, grpc.RpcError):
            raise msg
        return msg

    async def run_transaction(self, tx: Any) -> Any:
        """Send one TRANSACTION and serve its requests until COMPLETED; returns COMPLETED."""
        await self.to_chaincode.put(tx)
        while True:
            msg = await self.received()
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


async def register(peer: ShimPeer) -> None:
    """The chaincode's REGISTER, answered with REGISTERED and READY."""
    register = await peer.received()
    assert register.type == Msg.REGISTER
    assert chaincode_pb2.ChaincodeID.FromString(register.payload).name == PACKAGE_ID
    await peer.to_chaincode.put(Msg(type=Msg.REGISTERED))
    await peer.to_chaincode.put(Msg(type=Msg.READY))


def fixed(now: datetime = WHEN) -> ClockGuard:
    """The chaincode service's clock rule with the machine's clock reading `now`."""
    return ClockGuard(clock=lambda: now)


async def connect(
    peer: ShimPeer, invoke: Any, guard: ClockGuard | None = None
) -> asyncio.Task[Any]:
    """Our handler talking to `peer` in-process; by default its clock reads WHEN."""
    handler = DShareHandler(PACKAGE_ID, DShareChaincode(), invoke=invoke, guard=guard or fixed())
    task = asyncio.ensure_future(handler.chat_with_peer(peer.stream(), peer))
    await register(peer)
    return task


async def over_grpc(peer: ShimPeer, channel: grpc.aio.Channel) -> asyncio.Task[None]:
    """Dial the chaincode service as a peer does and pump its messages into `peer`."""
    call = chaincode_shim_pb2_grpc.ChaincodeStub(channel).Connect(peer.stream(), timeout=30)

    async def pump() -> None:
        try:
            async for msg in call:
                await peer.from_chaincode.put(msg)
        except grpc.RpcError as exc:
            await peer.from_chaincode.put(exc)

    return asyncio.ensure_future(pump())


def transaction(
    client: Issued,
    fn: str,
    *args: str,
    actor: str = "alice",
    msp: str = "UiSMSP",
    timestamp: datetime = WHEN,
) -> Any:
    """The TRANSACTION message a peer sends for a proposal `client` signed."""
    signer = Signer.from_pem(msp, client.cert_pem, client.key_pem)
    proposal = build_proposal(
        channel=CHANNEL,
        chaincode=CHAINCODE,
        fn=fn,
        args=args,
        creator=signer.creator,
        transient={"actor": actor.encode()},
        timestamp=timestamp,
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


async def finish(peer: ShimPeer, task: asyncio.Task[Any]) -> None:
    await peer.to_chaincode.put(None)
    await asyncio.wait_for(task, timeout=10)


def real_invoke(stub: Any, fn: str, args: Sequence[str]) -> bytes:
    from dshare_chaincode.contract import invoke

    return invoke(stub, fn, args)

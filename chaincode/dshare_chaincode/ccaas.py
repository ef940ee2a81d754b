"""The contract served to Fabric peers as chaincode-as-a-service.

Run as ``python -m dshare_chaincode.ccaas`` with CHAINCODE_SERVER_ADDRESS (host:port to
listen on) and CHAINCODE_ID (the package id the peer printed at install), like every ccaas
sample. TLS is required: CHAINCODE_TLS_KEY and CHAINCODE_TLS_CERT name the PEM key and
certificate it serves, and CHAINCODE_CLIENT_CA_CERT (PEM, one or more CA certificates) makes
it require and check the peers' client certificates (mutual TLS). Without TLS material it
refuses to start unless CHAINCODE_PLAINTEXT=true, which logs a warning (a local test network
only). CHAINCODE_MAX_CLOCK_SKEW (seconds, default 120) bounds how far a proposal's timestamp
may be from this machine's clock (`dshare_chaincode.clock`).

fabric-chaincode-python 2.5.4 provides the gRPC service and the peer conversation, but its
handler has gaps this module closes in a `Handler` subclass:

- events set with `set_event` never reach the peer (the COMPLETED message is built without
  them), so we attach the ChaincodeEvent to COMPLETED ourselves;
- a peer ERROR reply to GET_STATE/PUT_STATE/... resolves like a success carrying the error
  text as data, so our requests check the reply type and raise instead;
- its stub is async while the contract is plain synchronous Python: the contract runs in a
  worker thread and each stub call hops onto the handler's event loop, which meanwhile keeps
  reading the peer's replies.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import grpc
from fabric_chaincode_python.fabric_shim.handler import Handler
from fabric_chaincode_python.fabric_shim.interfaces import Chaincode
from fabric_chaincode_python.fabric_shim.msg_queue_handler import QueueMessage
from fabric_chaincode_python.fabric_shim.server import ChaincodeService
from fabric_chaincode_python.fabric_shim.stub import ChaincodeStub
from fabric_protos.ledger.queryresult import kv_query_result_pb2 as _kv_query_result_pb2
from fabric_protos.peer import chaincode_event_pb2 as _chaincode_event_pb2
from fabric_protos.peer import chaincode_pb2 as _chaincode_pb2
from fabric_protos.peer import chaincode_shim_pb2 as _chaincode_shim_pb2
from fabric_protos.peer import proposal_pb2 as _proposal_pb2
from fabric_protos.peer import proposal_response_pb2 as _proposal_response_pb2

from .ccaas_config import ConfigError, server_settings, transport
from .clock import ClockGuard, seconds_text
from .errors import ContractError
from .stub import Creator, HistoryEntry, create_composite_key, partial_key_range

# The generated protobuf modules carry no type information (py.typed, no stubs).
kv_query_result_pb2: Any = _kv_query_result_pb2
chaincode_event_pb2: Any = _chaincode_event_pb2
chaincode_pb2: Any = _chaincode_pb2
chaincode_shim_pb2: Any = _chaincode_shim_pb2
proposal_pb2: Any = _proposal_pb2
proposal_response_pb2: Any = _proposal_response_pb2

LOG = logging.getLogger("dshare_chaincode.ccaas")

__all__ = [
    "ConfigError",
    "DShareChaincode",
    "DShareHandler",
    "build_server",
    "main",
    "server_settings",
]

Msg = chaincode_shim_pb2.ChaincodeMessage
InvokeFn = Callable[[Any, str, Sequence[str]], bytes]

OK, ERROR = 200, 500
# Fabric's stand-in for an empty range start: "" would include composite keys ("\x00...").
EMPTY_KEY_SUBSTITUTE = "\x01"
# The contract runs here; one thread per in-flight transaction up to this many.
MAX_CONCURRENT_TX = 8
# A peer that stops answering must not pin a worker thread forever.
PEER_REPLY_TIMEOUT_S = 60.0


class PeerError(RuntimeError):
    """The peer refused a ledger request of the running transaction."""


def _default_invoke(stub: Any, fn: str, args: Sequence[str]) -> bytes:
    # Imported late so the adapter can be exercised with a stand-in contract.
    from .contract import invoke

    return invoke(stub, fn, args)


class FabricStub:
    """Our `Stub` protocol over one transaction of the Fabric shim (see module docstring).

    Called from the contract's worker thread; every ledger access runs on `loop`.
    """

    def __init__(
        self, handler: DShareHandler, shim_stub: ChaincodeStub, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._handler = handler
        self._shim = shim_stub
        self._loop = loop
        self._channel_id: str = shim_stub.channel_id
        self._tx_id: str = shim_stub.tx_id
        self.event: chaincode_event_pb2.ChaincodeEvent | None = None
        # Set once the transaction answered the peer: a leftover iterator must not talk to it.
        self.finished = False
        self._transient: dict[str, bytes] = {}
        proposal = shim_stub.proposal
        if proposal is not None:
            payload = proposal_pb2.ChaincodeProposalPayload.FromString(proposal.payload)
            self._transient = {k: bytes(v) for k, v in payload.TransientMap.items()}

    def _ask(self, msg_type: int, body: Any) -> bytes:
        if self.finished:
            raise PeerError("the transaction has already completed")
        future = asyncio.run_coroutine_threadsafe(
            self._handler.ask_peer(
                msg_type, body.SerializeToString(), self._channel_id, self._tx_id
            ),
            self._loop,
        )
        try:
            return future.result(PEER_REPLY_TIMEOUT_S)
        except TimeoutError:
            future.cancel()
            raise PeerError(
                f"the peer did not answer {Msg.Type.Name(msg_type)} within "
                f"{PEER_REPLY_TIMEOUT_S:.0f} s"
            ) from None

    def get_state(self, key: str) -> bytes | None:
        # Fabric cannot store an empty value, so an empty reply means "no such key".
        value = self._ask(Msg.GET_STATE, chaincode_shim_pb2.GetState(key=key))
        return value or None

    def put_state(self, key: str, value: bytes) -> None:
        self._ask(Msg.PUT_STATE, chaincode_shim_pb2.PutState(key=key, value=value))

    def del_state(self, key: str) -> None:
        self._ask(Msg.DEL_STATE, chaincode_shim_pb2.DelState(key=key))

    def _query(self, msg_type: int, body: Any) -> Iterator[bytes]:
        """Result bytes of a paged peer query, fetching the next page when one runs out."""
        response = chaincode_shim_pb2.QueryResponse.FromString(self._ask(msg_type, body))
        try:
            while True:
                for item in response.results:
                    yield bytes(item.resultBytes)
                if not response.has_more:
                    break
                response = chaincode_shim_pb2.QueryResponse.FromString(
                    self._ask(
                        Msg.QUERY_STATE_NEXT, chaincode_shim_pb2.QueryStateNext(id=response.id)
                    )
                )
        finally:
            # The peer drops an exhausted iterator itself; one abandoned midway is closed so
            # the peer can free it before the transaction ends.
            if response.has_more and not self.finished:
                self._ask(Msg.QUERY_STATE_CLOSE, chaincode_shim_pb2.QueryStateClose(id=response.id))

    def _range(self, start: str, end: str) -> Iterator[tuple[str, bytes]]:
        body = chaincode_shim_pb2.GetStateByRange(startKey=start, endKey=end)
        for raw in self._query(Msg.GET_STATE_BY_RANGE, body):
            kv = kv_query_result_pb2.KV.FromString(raw)
            yield kv.key, bytes(kv.value)

    def get_state_by_range(self, start: str, end: str) -> Iterator[tuple[str, bytes]]:
        return self._range(start or EMPTY_KEY_SUBSTITUTE, end)

    def create_composite_key(self, object_type: str, attrs: Sequence[str]) -> str:
        return create_composite_key(object_type, attrs)

    def get_state_by_partial_composite_key(
        self, object_type: str, attrs: Sequence[str]
    ) -> Iterator[tuple[str, bytes]]:
        start, end = partial_key_range(object_type, attrs)
        return self._range(start, end)

    def get_history_for_key(self, key: str) -> Iterator[HistoryEntry]:
        # Fabric 2.x returns history newest first; the protocol promises oldest first.
        body = chaincode_shim_pb2.GetHistoryForKey(key=key)
        entries = []
        for raw in self._query(Msg.GET_HISTORY_FOR_KEY, body):
            mod = kv_query_result_pb2.KeyModification.FromString(raw)
            entries.append(
                HistoryEntry(
                    tx_id=mod.tx_id,
                    timestamp=mod.timestamp.ToDatetime(tzinfo=UTC),
                    is_delete=mod.is_delete,
                    value=None if mod.is_delete else bytes(mod.value),
                )
            )
        return iter(reversed(entries))

    def get_tx_id(self) -> str:
        return self._tx_id

    def get_tx_timestamp(self) -> datetime:
        ts = self._shim.get_tx_timestamp()
        if ts is None:
            raise PeerError("the transaction carries no signed proposal, so no timestamp")
        stamp: datetime = ts.ToDatetime(tzinfo=UTC)
        return stamp

    def get_creator(self) -> Creator:
        creator = self._shim.get_creator()
        if not creator:
            raise PeerError("the transaction carries no signed proposal, so no creator")
        return Creator(msp_id=creator["mspid"], cert_pem=bytes(creator["idBytes"]).decode())

    def get_transient(self) -> dict[str, bytes]:
        return dict(self._transient)

    def set_event(self, name: str, payload: bytes) -> None:
        # One event per transaction, as in Fabric: a later call replaces the earlier one.
        # The peer stamps the chaincode name and tx id on it when the transaction commits.
        self.event = chaincode_event_pb2.ChaincodeEvent(
            event_name=name, payload=payload, tx_id=self._tx_id
        )


class DShareHandler(Handler):
    """The shim's peer conversation with our transaction handling (see module docstring)."""

    def __init__(
        self,
        cc_id: str,
        cc: Chaincode,
        invoke: InvokeFn = _default_invoke,
        executor: ThreadPoolExecutor | None = None,
        guard: ClockGuard | None = None,
    ) -> None:
        super().__init__(cc_id, cc)
        self._invoke = invoke
        self._executor = executor
        self._guard = guard or ClockGuard()

    async def ask_peer(self, msg_type: int, payload: bytes, channel_id: str, tx_id: str) -> bytes:
        """Send one ledger request of a transaction and return the peer's reply payload."""
        msg = Msg(type=msg_type, payload=payload, txid=tx_id, channel_id=channel_id)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        assert self.msg_queue_handler is not None  # set when the peer stream opens
        await self.msg_queue_handler.queue_msg(QueueMessage(msg, Msg.Type.Name(msg_type), future))
        reply = await future
        if reply.type == Msg.ERROR:
            raise PeerError(
                f"the peer refused {Msg.Type.Name(msg_type)}: "
                f"{bytes(reply.payload).decode(errors='replace')}"
            )
        return bytes(reply.payload)

    async def handle_message(self, msg: Any) -> None:
        if msg.type == Msg.KEEPALIVE:
            # Echo keepalives as the Go shim does, so the peer sees a live stream.
            await self.context.write(msg)
            return
        await super().handle_message(msg)

    async def handle_stub_interaction(self, msg: Any, action: str = "Invoke") -> None:
        response, event = await self._run(msg, action)
        completed = Msg(
            type=Msg.COMPLETED,
            payload=response.SerializeToString(),
            txid=msg.txid,
            channel_id=msg.channel_id,
        )
        if event is not None:
            completed.chaincode_event.CopyFrom(event)
        await self.context.write(completed)

    async def _run(
        self, msg: Any, action: str
    ) -> tuple[proposal_response_pb2.Response, chaincode_event_pb2.ChaincodeEvent | None]:
        where = f"[{msg.channel_id}-{msg.txid[:12]}]"
        try:
            cc_input = chaincode_pb2.ChaincodeInput.FromString(msg.payload)
            shim_stub = ChaincodeStub(self, msg.channel_id, msg.txid, cc_input, msg.proposal)
            fn, args = shim_stub.get_function_and_parameters()
        except Exception as exc:  # malformed input from the peer; the library raises bare Exception
            LOG.warning("%s undecodable transaction: %s", where, exc)
            return _error(f"the transaction could not be decoded: {exc}"), None
        if action.lower() == "init":
            return proposal_response_pb2.Response(status=OK), None
        refused = self._check_clock(shim_stub, msg.txid)
        if refused is not None:
            LOG.warning("%s %s refused: %s", where, fn, refused)
            return _error(refused), None

        loop = asyncio.get_running_loop()
        stub = FabricStub(self, shim_stub, loop)
        try:
            return await self._invoke_contract(stub, fn, args, where)
        finally:
            stub.finished = True

    def _check_clock(self, shim_stub: ChaincodeStub, tx_id: str) -> str | None:
        """The CLOCK_SKEW refusal of a proposal dated too far from this machine's clock.

        It applies to queries (Evaluate) as much as to submitted transactions, for two
        reasons. The chaincode cannot tell them apart: the peer sends both as the same
        TRANSACTION message, and "read-only" is only how the client uses the result. And a
        query's answer depends on its timestamp too: a lease past its expiry reads as
        expired, so a back-dated GetLease would tell a broker that a lease it must stop
        serving is still active. Fabric's peer checks no proposal timestamp; this is
        dshare's rule (`dshare_chaincode.clock`).
        """
        timestamp = shim_stub.get_tx_timestamp()
        if timestamp is None:
            return "the transaction carries no signed proposal, so no timestamp to check"
        try:
            self._guard.check(timestamp.ToDatetime(tzinfo=UTC), tx_id)
        except ContractError as exc:
            return exc.to_wire()
        return None

    async def _invoke_contract(
        self, stub: FabricStub, fn: str, args: list[str], where: str
    ) -> tuple[proposal_response_pb2.Response, chaincode_event_pb2.ChaincodeEvent | None]:
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, self._invoke, stub, fn, args)
        except ContractError as exc:
            LOG.info("%s %s refused: %s", where, fn, exc.code)
            return _error(exc.to_wire()), None
        except PeerError as exc:
            LOG.warning("%s %s: %s", where, fn, exc)
            return _error(f"{fn} failed: {exc}"), None
        except Exception:
            # The message goes back to the client; the traceback (which could quote ledger
            # values) stays in this log only.
            LOG.exception("%s %s crashed", where, fn)
            return _error(f"{fn} failed inside the chaincode; see the chaincode log"), None
        LOG.info("%s %s ok", where, fn)
        return proposal_response_pb2.Response(status=OK, payload=result), stub.event


def _error(message: str) -> proposal_response_pb2.Response:
    return proposal_response_pb2.Response(status=ERROR, message=message)


class DShareChaincode(Chaincode):
    """Satisfies the library's interface; `DShareHandler` runs the transactions itself."""

    @staticmethod
    async def init(stub: Any) -> proposal_response_pb2.Response:
        return proposal_response_pb2.Response(status=OK)

    @staticmethod
    async def invoke(stub: Any) -> proposal_response_pb2.Response:
        return _error("DShareChaincode must be served through DShareHandler")


class DShareChaincodeService(ChaincodeService):
    """The library's gRPC service, with our handler on every peer connection."""

    def __init__(
        self,
        chaincode_id: str,
        executor: ThreadPoolExecutor | None = None,
        guard: ClockGuard | None = None,
    ) -> None:
        super().__init__(chaincode_id, DShareChaincode())
        self._executor = executor
        self._guard = guard

    async def Connect(self, request_iterator: Any, context: Any) -> None:
        handler = DShareHandler(self._ccid, self._cc, executor=self._executor, guard=self._guard)
        try:
            await handler.chat_with_peer(request_iterator, context)
        except asyncio.CancelledError:
            LOG.info("peer connection closed")


def build_server(
    settings: dict[str, Any], clock: Callable[[], datetime] | None = None
) -> tuple[grpc.aio.Server, int]:
    """The gRPC server (not started) and the port it bound; `clock` stands in for the
    machine's clock in tests."""
    from fabric_protos.peer import chaincode_shim_pb2_grpc

    server = grpc.aio.server()
    executor = ThreadPoolExecutor(MAX_CONCURRENT_TX, thread_name_prefix="dshare-tx")
    skew = settings["max_clock_skew_s"]
    guard = ClockGuard(skew) if clock is None else ClockGuard(skew, clock)
    chaincode_shim_pb2_grpc.add_ChaincodeServicer_to_server(
        DShareChaincodeService(settings["CHAINCODE_ID"], executor, guard), server
    )
    tls = settings["tls"]
    address = settings["CHAINCODE_SERVER_ADDRESS"]
    if tls:
        client_ca = tls.get("CHAINCODE_CLIENT_CA_CERT")
        credentials = grpc.ssl_server_credentials(
            [(tls["CHAINCODE_TLS_KEY"], tls["CHAINCODE_TLS_CERT"])],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )
        port = server.add_secure_port(address, credentials)
    else:
        LOG.warning(
            "CHAINCODE_PLAINTEXT=true: serving %s without TLS, so the peers' connections are "
            "neither encrypted nor authenticated; use it on a local test network only",
            address,
        )
        port = server.add_insecure_port(address)
    return server, port


async def serve(settings: dict[str, Any]) -> None:
    server, _ = build_server(settings)
    await server.start()
    LOG.info(
        "dshare chaincode %s listening on %s (%s; proposals within %s s of this clock)",
        settings["CHAINCODE_ID"],
        settings["CHAINCODE_SERVER_ADDRESS"],
        transport(settings),
        seconds_text(settings["max_clock_skew_s"]),
    )
    try:
        await server.wait_for_termination()
    finally:
        await server.stop(3)


def main(env: dict[str, str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True
    )
    # The library logs every peer message (state values included) on the "asyncio" logger;
    # keep only its errors.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    try:
        settings = server_settings(dict(os.environ) if env is None else env)
    except ConfigError as exc:
        print(f"dshare chaincode: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A TEST DOUBLE of a Fabric peer's Gateway service, in-process over real gRPC (with TLS).

It is not Fabric: one peer, no orderer, every submitted transaction committed in its own
block. What it does like Fabric, so the client is tested against realistic behaviour:

- checks every signature (proposal, prepared transaction, commit-status and events
  requests) with the creator's certificate, that the certificate was issued by the MSP's
  CA, that s <= n/2 (Fabric's low-S rule) and that tx id = sha256(nonce + creator);
- runs the chaincode (the real contract by default) on a simulation of the world state,
  returns Fabric's error shapes (status codes, messages and gateway.ErrorDetail details),
  assembles the prepared transaction as the gateway does (Payload -> Transaction ->
  ChaincodeActionPayload -> ProposalResponsePayload -> ChaincodeAction with an rwset);
- validates reads at commit (MVCC_READ_CONFLICT / PHANTOM_READ_CONFLICT) and streams the
  chaincode events of committed blocks.
The real network is exercised in a later issue.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import (
    chaincode_event_pb2,
    chaincode_pb2,
    proposal_pb2,
    proposal_response_pb2,
    transaction_pb2,
)

from dshare_chaincode.errors import ContractError
from dshare_chaincode.stub import Creator
from dshare_hub.ledger.fabric_errors import STATUS_DETAILS_KEY, encode_status
from dshare_hub.ledger.fabric_proposal import P256_HALF_ORDER, serialize_identity, sign_p256

from .fabric_pki import Issued
from .fabric_world import Simulation, World

InvokeFn = Callable[[Any, str, Sequence[str]], bytes]


def _real_contract(stub: Any, fn: str, args: Sequence[str]) -> bytes:
    from dshare_chaincode.contract import invoke

    return invoke(stub, fn, args)


class Refused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Decoded:
    tx_id: str
    channel: str
    chaincode: str
    fn: str
    args: list[str]
    creator: identities_pb2.SerializedIdentity
    header: common_pb2.Header
    payload: proposal_pb2.ChaincodeProposalPayload
    timestamp: Any


@dataclass
class GatewayDouble(gateway_pb2_grpc.GatewayServicer):
    channel: str
    chaincode: str
    msp_cas: dict[str, bytes]  # MSP id -> CA certificate PEM
    peer: Issued
    peer_msp: str
    address: str = "peer0.uis.example.com:7051"
    invoke: InvokeFn = _real_contract
    world: World = field(default_factory=World)
    # Endorse answers only once this many endorsements are simulated: lets two concurrent
    # submits read the same state, as racing clients do on a real network.
    endorse_together: int = 1
    force_commit_code: int | None = None
    fail_submit: tuple[grpc.StatusCode, str] | None = None
    verified_signatures: int = 0
    requests: list[str] = field(default_factory=list)
    pending: dict[str, tuple[Simulation, bytes]] = field(default_factory=dict)
    statuses: dict[str, tuple[int, int]] = field(default_factory=dict)
    blocks: list[tuple[int, list[chaincode_event_pb2.ChaincodeEvent]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._changed = asyncio.Condition()
        self._endorsing: list[asyncio.Future[None]] = []

    # -- checks ------------------------------------------------------------------------

    def verify(self, identity: bytes, data: bytes, signature: bytes) -> None:
        ident = identities_pb2.SerializedIdentity.FromString(identity)
        ca_pem = self.msp_cas.get(ident.mspid)
        if ca_pem is None:
            raise Refused(grpc.StatusCode.PERMISSION_DENIED, f"unknown MSP {ident.mspid!r}")
        cert = x509.load_pem_x509_certificate(ident.id_bytes)
        ca = x509.load_pem_x509_certificate(ca_pem)
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            raise Refused(
                grpc.StatusCode.PERMISSION_DENIED,
                f"creator certificate is not issued by {ident.mspid}'s CA",
            ) from None
        public_key = cert.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        try:
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise Refused(
                grpc.StatusCode.PERMISSION_DENIED, "signature verification failed"
            ) from None
        if decode_dss_signature(signature)[1] > P256_HALF_ORDER:
            raise Refused(grpc.StatusCode.PERMISSION_DENIED, "signature is not in low-S form")
        self.verified_signatures += 1

    def decode(self, signed: proposal_pb2.SignedProposal) -> Decoded:
        if not signed.proposal_bytes:
            raise Refused(
                grpc.StatusCode.INVALID_ARGUMENT,
                "the proposed transaction must contain a signed proposal",
            )
        proposal = proposal_pb2.Proposal.FromString(signed.proposal_bytes)
        header = common_pb2.Header.FromString(proposal.header)
        channel_header = common_pb2.ChannelHeader.FromString(header.channel_header)
        signature_header = common_pb2.SignatureHeader.FromString(header.signature_header)
        creator = identities_pb2.SerializedIdentity.FromString(signature_header.creator)
        if channel_header.type != common_pb2.ENDORSER_TRANSACTION:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "not an endorser transaction")
        expected = hashlib.sha256(signature_header.nonce + signature_header.creator).hexdigest()
        if channel_header.tx_id != expected:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "incorrectly formed transaction id")
        if channel_header.channel_id != self.channel:
            raise Refused(
                grpc.StatusCode.NOT_FOUND, f"channel '{channel_header.channel_id}' not found"
            )
        self.verify(signature_header.creator, signed.proposal_bytes, signed.signature)
        payload = proposal_pb2.ChaincodeProposalPayload.FromString(proposal.payload)
        spec = chaincode_pb2.ChaincodeInvocationSpec.FromString(payload.input).chaincode_spec
        if spec.chaincode_id.name != self.chaincode:
            raise Refused(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"chaincode '{spec.chaincode_id.name}' is not deployed",
            )
        args = [a.decode() for a in spec.input.args]
        return Decoded(
            tx_id=channel_header.tx_id,
            channel=channel_header.channel_id,
            chaincode=spec.chaincode_id.name,
            fn=args[0],
            args=args[1:],
            creator=creator,
            header=header,
            payload=payload,
            timestamp=channel_header.timestamp.ToDatetime(tzinfo=UTC),
        )

    def simulate(self, decoded: Decoded) -> tuple[Simulation, bytes | None, str | None]:
        sim = Simulation(
            world=self.world,
            tx_id=decoded.tx_id,
            timestamp=decoded.timestamp,
            creator=Creator(decoded.creator.mspid, decoded.creator.id_bytes.decode()),
            transient={k: bytes(v) for k, v in decoded.payload.TransientMap.items()},
        )
        try:
            return sim, self.invoke(sim, decoded.fn, decoded.args), None
        except ContractError as exc:
            return sim, None, exc.to_wire()

    async def _abort(
        self, context: Any, code: grpc.StatusCode, message: str, peer_message: str | None = None
    ) -> None:
        details = []
        if peer_message is not None:
            details.append(
                gateway_pb2.ErrorDetail(
                    address=self.address, msp_id=self.peer_msp, message=peer_message
                )
            )
        await context.abort(
            code,
            message,
            trailing_metadata=((STATUS_DETAILS_KEY, encode_status(code, message, details)),),
        )

    # -- the Gateway service ------------------------------------------------------------

    async def Evaluate(self, request: Any, context: Any) -> Any:
        self.requests.append("Evaluate")
        try:
            decoded = self.decode(request.proposed_transaction)
        except Refused as exc:
            await self._abort(context, exc.code, exc.message)
        _, result, error = self.simulate(decoded)
        if error is not None:
            message = f"chaincode response 500, {error}"
            await self._abort(
                context,
                grpc.StatusCode.UNKNOWN,
                f"evaluate call to endorser returned error: {message}",
                message,
            )
        return gateway_pb2.EvaluateResponse(
            result=proposal_response_pb2.Response(status=200, payload=result)
        )

    async def Endorse(self, request: Any, context: Any) -> Any:
        self.requests.append("Endorse")
        try:
            decoded = self.decode(request.proposed_transaction)
        except Refused as exc:
            await self._abort(context, exc.code, exc.message)
        sim, result, error = self.simulate(decoded)
        await self._wait_for_partners()
        if error is not None:
            await self._abort(
                context,
                grpc.StatusCode.ABORTED,
                "failed to endorse transaction, see attached details for more info",
                f"chaincode response 500, {error}",
            )
        prepared = self._prepare(decoded, sim, result or b"")
        self.pending[decoded.tx_id] = (sim, prepared.payload)
        return gateway_pb2.EndorseResponse(prepared_transaction=prepared)

    async def _wait_for_partners(self) -> None:
        if self.endorse_together <= 1:
            return
        me: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._endorsing.append(me)
        if len(self._endorsing) >= self.endorse_together:
            for waiting in self._endorsing:
                if not waiting.done():
                    waiting.set_result(None)
            self._endorsing = []
        await me

    def _prepare(self, decoded: Decoded, sim: Simulation, result: bytes) -> common_pb2.Envelope:
        kv = kv_rwset_pb2.KVRWSet(
            reads=[
                kv_rwset_pb2.KVRead(
                    key=k,
                    version=kv_rwset_pb2.Version(block_num=v[0], tx_num=v[1]) if v else None,
                )
                for k, v in sorted(sim.reads.items())
            ],
            writes=[
                kv_rwset_pb2.KVWrite(key=k, is_delete=v is None, value=v or b"")
                for k, v in sorted(sim.writes.items())
            ],
        )
        rwset = rwset_pb2.TxReadWriteSet(
            data_model=rwset_pb2.TxReadWriteSet.KV,
            ns_rwset=[
                rwset_pb2.NsReadWriteSet(namespace=self.chaincode, rwset=kv.SerializeToString())
            ],
        )
        action = proposal_pb2.ChaincodeAction(
            results=rwset.SerializeToString(),
            response=proposal_response_pb2.Response(status=200, payload=result),
            chaincode_id=chaincode_pb2.ChaincodeID(name=self.chaincode),
        )
        if sim.event is not None:
            action.events = chaincode_event_pb2.ChaincodeEvent(
                chaincode_id=self.chaincode,
                tx_id=decoded.tx_id,
                event_name=sim.event[0],
                payload=sim.event[1],
            ).SerializeToString()
        # What the gateway orders carries the proposal's input but never its transient map.
        public_payload = proposal_pb2.ChaincodeProposalPayload(input=decoded.payload.input)
        response_payload = proposal_response_pb2.ProposalResponsePayload(
            proposal_hash=hashlib.sha256(
                decoded.header.SerializeToString() + public_payload.SerializeToString()
            ).digest(),
            extension=action.SerializeToString(),
        ).SerializeToString()
        endorser = serialize_identity(self.peer_msp, self.peer.cert_pem)
        endorsement = proposal_response_pb2.Endorsement(
            endorser=endorser, signature=sign_p256(self.peer.key, response_payload + endorser)
        )
        action_payload = transaction_pb2.ChaincodeActionPayload(
            chaincode_proposal_payload=public_payload.SerializeToString(),
            action=transaction_pb2.ChaincodeEndorsedAction(
                proposal_response_payload=response_payload, endorsements=[endorsement]
            ),
        )
        transaction = transaction_pb2.Transaction(
            actions=[
                transaction_pb2.TransactionAction(
                    header=decoded.header.signature_header,
                    payload=action_payload.SerializeToString(),
                )
            ]
        )
        payload = common_pb2.Payload(header=decoded.header, data=transaction.SerializeToString())
        return common_pb2.Envelope(payload=payload.SerializeToString())

    async def Submit(self, request: Any, context: Any) -> Any:
        self.requests.append("Submit")
        envelope = request.prepared_transaction
        if not envelope.signature:
            await self._abort(
                context, grpc.StatusCode.INVALID_ARGUMENT, "prepared transaction must be signed"
            )
        if self.fail_submit is not None:
            code, message = self.fail_submit
            await self._abort(
                context, code, message, f"rpc error: code = {code.name} desc = {message}"
            )
        payload = common_pb2.Payload.FromString(envelope.payload)
        creator = common_pb2.SignatureHeader.FromString(payload.header.signature_header).creator
        try:
            self.verify(creator, envelope.payload, envelope.signature)
        except Refused as exc:
            await self._abort(
                context,
                grpc.StatusCode.ABORTED,
                "received unsuccessful response from orderer: BAD_REQUEST",
                exc.message,
            )
        tx_id = common_pb2.ChannelHeader.FromString(payload.header.channel_header).tx_id
        sim, endorsed_payload = self.pending.pop(tx_id, (None, b""))
        if sim is None or endorsed_payload != envelope.payload:
            await self._abort(
                context, grpc.StatusCode.INVALID_ARGUMENT, f"unknown transaction {tx_id}"
            )
        assert sim is not None
        code, block = self.world.commit(sim)
        if self.force_commit_code is not None:
            code = self.force_commit_code
        self.statuses[tx_id] = (code, block)
        events = []
        if code == transaction_pb2.VALID and sim.event is not None:
            events.append(
                chaincode_event_pb2.ChaincodeEvent(
                    chaincode_id=self.chaincode,
                    tx_id=tx_id,
                    event_name=sim.event[0],
                    payload=sim.event[1],
                )
            )
        self.blocks.append((block, events))
        async with self._changed:
            self._changed.notify_all()
        return gateway_pb2.SubmitResponse()

    async def CommitStatus(self, request: Any, context: Any) -> Any:
        self.requests.append("CommitStatus")
        inner = gateway_pb2.CommitStatusRequest.FromString(request.request)
        try:
            self.verify(inner.identity, request.request, request.signature)
        except Refused as exc:
            await self._abort(context, exc.code, exc.message)
        async with self._changed:
            # Like the real gateway: block until the transaction commits (or the call ends).
            await self._changed.wait_for(lambda: inner.transaction_id in self.statuses)
        code, block = self.statuses[inner.transaction_id]
        return gateway_pb2.CommitStatusResponse(result=code, block_number=block)

    async def ChaincodeEvents(self, request: Any, context: Any) -> Any:
        self.requests.append("ChaincodeEvents")
        inner = gateway_pb2.ChaincodeEventsRequest.FromString(request.request)
        try:
            self.verify(inner.identity, request.request, request.signature)
        except Refused as exc:
            await self._abort(context, exc.code, exc.message)
        position = inner.start_position
        start = position.specified.number if position.HasField("specified") else self.world.height
        passed = not inner.after_transaction_id
        sent = 0
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda seen=sent: len(self.blocks) > seen)
                fresh = self.blocks[sent:]
                sent = len(self.blocks)
            for number, events in fresh:
                if number < start:
                    continue
                matching = []
                for event in events:
                    if not passed:
                        passed = event.tx_id == inner.after_transaction_id
                        continue
                    if event.chaincode_id == inner.chaincode_id:
                        matching.append(event)
                if matching:
                    yield gateway_pb2.ChaincodeEventsResponse(events=matching, block_number=number)


async def start_gateway(double: GatewayDouble, tls: Issued | None) -> tuple[grpc.aio.Server, str]:
    """Serve `double` on 127.0.0.1 (TLS with `tls` when given); returns server and address."""
    server = grpc.aio.server()
    gateway_pb2_grpc.add_GatewayServicer_to_server(double, server)
    if tls is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        creds = grpc.ssl_server_credentials([(tls.key_pem, tls.cert_pem)])
        port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    return server, f"127.0.0.1:{port}"

"""A TEST DOUBLE of a Fabric peer's Gateway service, in-process over real gRPC (with TLS).

It is not Fabric: no orderer (each submitted transaction is validated and committed in its
own block at once), no gossip (the three peers share one committed state), no real
discovery service (it is computed from the channel's members and the peers' flags). What it
does as Fabric 2.5's gateway does (internal/pkg/gateway), so the client is tested against
realistic behaviour:

- Evaluate runs the proposal on one peer of the gateway's own organization (the proposal
  carries a transient map, so Fabric's gateway keeps it in its org);
- Endorse follows the gateway's plan: the proposal first runs on its own org's peer, then
  on the peers of a layout that satisfies the channel's MAJORITY endorsement policy (layouts
  with its own org first, others in the channel's order); a peer that fails or whose
  ProposalResponsePayload differs from the first ("ProposalResponsePayloads do not match")
  drops every layout that needs its org; when no layout is left it fails ABORTED with one
  ErrorDetail per peer, when discovery knows too few live peers FAILED_PRECONDITION, and
  with endorsing organizations named (by the request, or a test's `endorsing_orgs`) it asks
  exactly those, and fails UNAVAILABLE for an org without a peer;
- Submit checks the client's signature like the orderer, then `fabric_committer_double`
  validates (creator, proposal hash, the endorsement policy on the endorsements carried:
  signatures and peer certificates, then MVCC) and commits;
- CommitStatus waits for the transaction's validation code; ChaincodeEvents streams the
  events of valid transactions block by block. Errors carry Fabric's status codes, messages
  and gateway.ErrorDetail details.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import grpc
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from fabric_protos.peer import chaincode_event_pb2, proposal_response_pb2, transaction_pb2

from dshare_hub.ledger.fabric_errors import STATUS_DETAILS_KEY, encode_status

from .fabric_committer_double import Committed, majority, validate_and_commit
from .fabric_msp import ChannelMsps, IdentityRefused
from .fabric_peer_double import EndorsingPeer, unpack
from .fabric_pki import Issued
from .fabric_world import World

PAYLOADS_DIFFER = "ProposalResponsePayloads do not match"


class Refused(Exception):
    def __init__(
        self, code: grpc.StatusCode, message: str, details: list[gateway_pb2.ErrorDetail]
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


def detail(peer: EndorsingPeer, message: str) -> gateway_pb2.ErrorDetail:
    return gateway_pb2.ErrorDetail(address=peer.address, msp_id=peer.msp_id, message=message)


def response_status(
    response: proposal_response_pb2.ProposalResponse | None, error: str | None
) -> tuple[grpc.StatusCode, str]:
    """The gateway's reading of a ProcessProposal outcome (its responseStatus)."""
    if error is not None:
        return (
            grpc.StatusCode.UNAVAILABLE if response is None else grpc.StatusCode.FAILED_PRECONDITION
        ), error
    assert response is not None
    status = response.response.status
    if status < 200 or status >= 400:
        if not response.payload and status == 500:
            return grpc.StatusCode.ABORTED, response.response.message
        return grpc.StatusCode.UNKNOWN, f"chaincode response {status}, {response.response.message}"
    return grpc.StatusCode.OK, ""


@dataclass
class GatewayDouble(gateway_pb2_grpc.GatewayServicer):
    channel: str
    chaincode: str
    msps: ChannelMsps
    peers: dict[str, EndorsingPeer]  # MSP id -> that organization's peer, channel order
    local_msp: str  # the organization whose peer hosts this gateway
    world: World
    # Endorse answers only once this many endorsements are collected: lets two concurrent
    # submits read the same state, as racing clients do on a real network.
    endorse_together: int = 1
    # Ask exactly these organizations' peers, as a client naming endorsing_organizations
    # does (it then answers for the policy itself; the validators still check it).
    endorsing_orgs: list[str] | None = None
    force_commit_code: int | None = None
    fail_submit: tuple[grpc.StatusCode, str] | None = None
    requests: list[str] = field(default_factory=list)
    committed: dict[str, Committed] = field(default_factory=dict)
    blocks: list[tuple[int, list[chaincode_event_pb2.ChaincodeEvent]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._changed = asyncio.Condition()
        self._endorsing: list[asyncio.Future[None]] = []
        # Set once a ChaincodeEvents subscription has fixed its start block.
        self.subscribed = asyncio.Event()

    @property
    def local_peer(self) -> EndorsingPeer:
        return self.peers[self.local_msp]

    @property
    def statuses(self) -> dict[str, tuple[int, int]]:
        """tx id -> (validation code, block number)."""
        return {tx: (c.code, c.block) for tx, c in self.committed.items()}

    def set_clocks(self, now: datetime) -> None:
        """Every peer's clock reads `now` (tests move time; nothing sleeps)."""
        for peer in self.peers.values():
            peer.clock = lambda now=now: now

    async def _abort(self, context: Any, refused: Refused) -> None:
        status = encode_status(refused.code, refused.message, refused.details)
        await context.abort(
            refused.code, refused.message, trailing_metadata=((STATUS_DETAILS_KEY, status),)
        )

    def _check_request(self, signed: Any) -> None:
        if not signed.proposal_bytes:
            raise Refused(
                grpc.StatusCode.INVALID_ARGUMENT,
                "the proposed transaction must contain a signed proposal",
                [],
            )
        try:
            unpack(signed)
        except ValueError as exc:
            raise Refused(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"failed to unpack transaction proposal: {exc}",
                [],
            ) from None

    # -- Evaluate -----------------------------------------------------------------------

    async def Evaluate(self, request: Any, context: Any) -> Any:
        self.requests.append("Evaluate")
        try:
            self._check_request(request.proposed_transaction)
            peer = self.local_peer
            response, error = peer.process_proposal(request.proposed_transaction)
            code, message = response_status(response, error)
            if code != grpc.StatusCode.OK:
                # Fabric retries UNAVAILABLE and ABORTED on another peer of the target orgs;
                # a query with a transient map may only use the gateway's org, one peer here.
                retried = code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED)
                text = (
                    "failed to evaluate transaction, see attached details for more info"
                    if retried
                    else f"evaluate call to endorser returned error: {message}"
                )
                raise Refused(code, text, [detail(peer, message)])
        except Refused as exc:
            await self._abort(context, exc)
        assert response is not None
        result = transaction_result(response.payload)
        return gateway_pb2.EvaluateResponse(
            result=proposal_response_pb2.Response(
                status=response.response.status, message=response.response.message, payload=result
            )
        )

    # -- Endorse ------------------------------------------------------------------------

    async def Endorse(self, request: Any, context: Any) -> Any:
        self.requests.append("Endorse")
        try:
            self._check_request(request.proposed_transaction)
            named = list(request.endorsing_organizations) or self.endorsing_orgs
            signed = request.proposed_transaction
            if named:
                endorsements, payload = self._endorse_by(named, signed)
            else:
                endorsements, payload = self._endorse_by_policy(signed)
        except Refused as exc:
            await self._wait_for_partners()
            await self._abort(context, exc)
        await self._wait_for_partners()
        return gateway_pb2.EndorseResponse(
            prepared_transaction=prepare_transaction(signed, payload, endorsements)
        )

    def _live(self) -> list[str]:
        return [msp for msp, peer in self.peers.items() if peer.in_discovery]

    def _endorse_by(
        self, orgs: list[str], signed: Any
    ) -> tuple[list[proposal_response_pb2.Endorsement], bytes]:
        """Fabric's planForOrgs: one peer of each named organization, all required."""
        missing = [org for org in orgs if org not in self._live()]
        if missing:
            raise Refused(
                grpc.StatusCode.UNAVAILABLE,
                f"failed to find any endorsing peers for org(s): {', '.join(missing)}",
                [],
            )
        endorsements, payload, details = [], b"", []
        for org in orgs:
            peer = self.peers[org]
            response, error = peer.process_proposal(signed)
            code, message = response_status(response, error)
            if code == grpc.StatusCode.OK and payload and response.payload != payload:
                code, message = grpc.StatusCode.ABORTED, PAYLOADS_DIFFER
            if code != grpc.StatusCode.OK:
                details.append(detail(peer, message))
                continue
            assert response is not None
            payload = payload or bytes(response.payload)
            endorsements.append(response.endorsement)
        if details:
            raise Refused(
                grpc.StatusCode.ABORTED,
                "failed to collect enough transaction endorsements, see attached details for "
                "more info",
                details,
            )
        return endorsements, payload

    def _endorse_by_policy(
        self, signed: Any
    ) -> tuple[list[proposal_response_pb2.Endorsement], bytes]:
        """Fabric's planFromFirstEndorser, then the plan's layouts (see module docstring)."""
        first = self.local_peer
        response, error = first.process_proposal(signed)
        code, message = response_status(response, error)
        if code != grpc.StatusCode.OK:
            raise Refused(
                grpc.StatusCode.ABORTED,
                "failed to endorse transaction, see attached details for more info",
                [detail(first, message)],
            )
        assert response is not None
        reference = bytes(response.payload)
        endorsed = {first.msp_id: response.endorsement}
        live, orgs = self._live(), self.msps.organizations
        need = majority(len(orgs))
        layouts = [set(c) for c in itertools.combinations(orgs, need) if set(c) <= set(live)]
        layouts.sort(key=lambda layout: first.msp_id not in layout)  # stable: own org first
        if not layouts:
            raise Refused(
                grpc.StatusCode.FAILED_PRECONDITION,
                "no combination of peers can be derived which satisfy the endorsement "
                "policy: no peer combination can satisfy the endorsement policy",
                [],
            )
        failed: set[str] = set()
        details: list[gateway_pb2.ErrorDetail] = []
        for layout in layouts:
            if layout & failed:
                continue
            for org in [o for o in orgs if o in layout and o not in endorsed]:
                peer = self.peers[org]
                answer, error = peer.process_proposal(signed)
                code, message = response_status(answer, error)
                if code == grpc.StatusCode.OK and answer is not None:
                    if answer.payload == reference:
                        endorsed[org] = answer.endorsement
                        continue
                    message = PAYLOADS_DIFFER
                details.append(detail(peer, message))
                failed.add(org)
                break
            if layout <= set(endorsed):
                return [endorsed[o] for o in orgs if o in layout], reference
        raise Refused(
            grpc.StatusCode.ABORTED,
            "failed to collect enough transaction endorsements, see attached details for more info",
            details,
        )

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

    # -- Submit, CommitStatus, ChaincodeEvents ------------------------------------------

    async def Submit(self, request: Any, context: Any) -> Any:
        self.requests.append("Submit")
        envelope = request.prepared_transaction
        if not envelope.signature:
            await self._abort(
                context,
                Refused(
                    grpc.StatusCode.INVALID_ARGUMENT, "prepared transaction must be signed", []
                ),
            )
        if self.fail_submit is not None:
            code, message = self.fail_submit
            peer = self.local_peer
            await self._abort(
                context,
                Refused(
                    code, message, [detail(peer, f"rpc error: code = {code.name} desc = {message}")]
                ),
            )
        payload = common_pb2.Payload.FromString(envelope.payload)
        creator = common_pb2.SignatureHeader.FromString(payload.header.signature_header).creator
        try:  # the orderer admits only transactions its channel's Writers signed
            self.msps.verify(creator, envelope.payload, envelope.signature, what="submission")
        except IdentityRefused:
            await self._abort(
                context,
                Refused(
                    grpc.StatusCode.ABORTED,
                    "received unsuccessful response from orderer: status=FORBIDDEN, info=implicit "
                    "policy evaluation failed - 0 sub-policies were satisfied, but this policy "
                    "requires 1 of the 'Writers' sub-policies to be satisfied: permission denied",
                    [],
                ),
            )
        result = validate_and_commit(
            envelope, msps=self.msps, world=self.world, chaincode=self.chaincode
        )
        if self.force_commit_code is not None:
            result.code = self.force_commit_code
        self.committed[result.tx_id] = result
        events = []
        if result.code == transaction_pb2.VALID and result.event is not None:
            events.append(result.event)
        self.blocks.append((result.block, events))
        async with self._changed:
            self._changed.notify_all()
        return gateway_pb2.SubmitResponse()

    def _check_signed(self, identity: bytes, data: bytes, signature: bytes, what: str) -> None:
        try:
            self.msps.verify(identity, data, signature, what=what)
        except IdentityRefused as exc:
            raise Refused(grpc.StatusCode.PERMISSION_DENIED, exc.reason, []) from None

    async def CommitStatus(self, request: Any, context: Any) -> Any:
        self.requests.append("CommitStatus")
        inner = gateway_pb2.CommitStatusRequest.FromString(request.request)
        try:
            self._check_signed(inner.identity, request.request, request.signature, "commit status")
        except Refused as exc:
            await self._abort(context, exc)
        async with self._changed:
            # Like the real gateway: block until the transaction commits (or the call ends).
            await self._changed.wait_for(lambda: inner.transaction_id in self.committed)
        result = self.committed[inner.transaction_id]
        return gateway_pb2.CommitStatusResponse(result=result.code, block_number=result.block)

    async def ChaincodeEvents(self, request: Any, context: Any) -> Any:
        self.requests.append("ChaincodeEvents")
        inner = gateway_pb2.ChaincodeEventsRequest.FromString(request.request)
        try:
            self._check_signed(inner.identity, request.request, request.signature, "events")
        except Refused as exc:
            await self._abort(context, exc)
        position = inner.start_position
        start = position.specified.number if position.HasField("specified") else self.world.height
        self.subscribed.set()
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


def transaction_result(response_payload: bytes) -> bytes:
    from fabric_protos.peer import proposal_pb2

    prp = proposal_response_pb2.ProposalResponsePayload.FromString(response_payload)
    return bytes(proposal_pb2.ChaincodeAction.FromString(prp.extension).response.payload)


def prepare_transaction(
    signed: Any, response_payload: bytes, endorsements: list[proposal_response_pb2.Endorsement]
) -> common_pb2.Envelope:
    """The gateway's prepareTransaction: header, the proposal's input without its transient
    map, the agreed ProposalResponsePayload and the endorsements; the client signs it."""
    up = unpack(signed)
    action_payload = transaction_pb2.ChaincodeActionPayload(
        chaincode_proposal_payload=up.public_payload,
        action=transaction_pb2.ChaincodeEndorsedAction(
            proposal_response_payload=response_payload, endorsements=endorsements
        ),
    )
    transaction = transaction_pb2.Transaction(
        actions=[
            transaction_pb2.TransactionAction(
                header=up.header.signature_header, payload=action_payload.SerializeToString()
            )
        ]
    )
    payload = common_pb2.Payload(header=up.header, data=transaction.SerializeToString())
    return common_pb2.Envelope(payload=payload.SerializeToString())


def channel_of(
    *,
    channel: str,
    chaincode: str,
    msp_cas: dict[str, bytes],
    peers: dict[str, tuple[str, Issued]],
    local_msp: str,
) -> GatewayDouble:
    """A gateway on a channel of `msp_cas` members with one peer per org (address, identity),
    all sharing one committed state."""
    msps, world = ChannelMsps(dict(msp_cas)), World()
    endorsing = {
        msp: EndorsingPeer(
            msp_id=msp,
            address=address,
            identity=identity,
            msps=msps,
            world=world,
            channel=channel,
            chaincode=chaincode,
        )
        for msp, (address, identity) in peers.items()
    }
    return GatewayDouble(
        channel=channel,
        chaincode=chaincode,
        msps=msps,
        peers=endorsing,
        local_msp=local_msp,
        world=world,
    )


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

"""A TEST DOUBLE of one organization's endorsing peer: Fabric's ProcessProposal, in-process.

It is not Fabric. What it does as a Fabric 2.5 peer does (core/endorser):

- unpacks the signed proposal and validates it: header type, nonce, creator, the tx id
  (sha256 of nonce + creator), the creator's MSP and certificate, the signature (low-S),
  refusing with Fabric's messages ("error validating proposal: access denied: channel [..]
  creator org unknown, creator is malformed") and a replayed tx id ("duplicate transaction
  found");
- runs the chaincode, as dshare's chaincode service does, on a simulation of the committed
  state shared by every peer: first the service's clock rule (`dshare_chaincode.clock`,
  against this peer's own clock, which a test sets), then the real contract;
- answers a ProposalResponse: the ProposalResponsePayload (Fabric's proposal hash, the
  ChaincodeAction with the KVRWSet, response and event) and, only when the chaincode
  succeeded, its Endorsement: this peer's enrollment certificate (issued by its org's CA,
  NodeOU ``peer``) and its signature over payload + endorser; a chaincode error is a 500
  response with the payload and no endorsement, as in Fabric;
- can be unreachable (the gateway sees gRPC's connection error) or gone from discovery.

Not modelled: ACL policies beyond channel membership, private data, chaincode lifecycle
(the one chaincode is simply "defined"), the peer's own ledger copy and gossip (all peers
read one committed state).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fabric_protos.common import common_pb2
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import (
    chaincode_event_pb2,
    chaincode_pb2,
    proposal_pb2,
    proposal_response_pb2,
)

from dshare_chaincode.clock import DEFAULT_MAX_CLOCK_SKEW_S, ClockGuard, peer_clock
from dshare_chaincode.errors import ContractError
from dshare_chaincode.stub import Creator
from dshare_hub.ledger.fabric_proposal import serialize_identity, sign_p256

from .fabric_msp import ChannelMsps, IdentityRefused
from .fabric_pki import Issued
from .fabric_world import Simulation, World

InvokeFn = Callable[[Any, str, Sequence[str]], bytes]
CHAINCODE_VERSION = "1.0"


def real_contract(stub: Any, fn: str, args: Sequence[str]) -> bytes:
    from dshare_chaincode.contract import invoke

    return invoke(stub, fn, args)


def unreachable(address: str) -> str:
    """gRPC's error for a peer whose port nobody listens on, as the gateway reports it."""
    return (
        'rpc error: code = Unavailable desc = connection error: desc = "transport: error '
        f'while dialing: dial tcp {address}: connect: connection refused"'
    )


@dataclass
class Unpacked:
    """A proposal's parts (Fabric's UnpackedProposal)."""

    tx_id: str
    channel: str
    chaincode: str
    fn: str
    args: list[str]
    header: common_pb2.Header
    channel_header: common_pb2.ChannelHeader
    signature_header: common_pb2.SignatureHeader
    payload: proposal_pb2.ChaincodeProposalPayload
    timestamp: datetime
    proposal_hash: bytes

    @property
    def public_payload(self) -> bytes:
        """The part of the proposal payload that is ordered: the input, no transient map."""
        return bytes(
            proposal_pb2.ChaincodeProposalPayload(input=self.payload.input).SerializeToString()
        )


def unpack(signed: proposal_pb2.SignedProposal) -> Unpacked:
    """Fabric's UnpackProposal; ValueError (protobuf's DecodeError is one) when malformed."""
    proposal = proposal_pb2.Proposal.FromString(signed.proposal_bytes)
    header = common_pb2.Header.FromString(proposal.header)
    channel_header = common_pb2.ChannelHeader.FromString(header.channel_header)
    signature_header = common_pb2.SignatureHeader.FromString(header.signature_header)
    extension = proposal_pb2.ChaincodeHeaderExtension.FromString(channel_header.extension)
    if not extension.chaincode_id.name:
        raise ValueError("ChaincodeHeaderExtension.ChaincodeId.Name is empty")
    payload = proposal_pb2.ChaincodeProposalPayload.FromString(proposal.payload)
    spec = chaincode_pb2.ChaincodeInvocationSpec.FromString(payload.input).chaincode_spec
    if not spec.input.args:
        raise ValueError("chaincode input did not contain any input")
    args = [a.decode() for a in spec.input.args]
    public = proposal_pb2.ChaincodeProposalPayload(input=payload.input).SerializeToString()
    # Fabric's proposal hash: channel header, signature header, the non-transient payload.
    digest = hashlib.sha256(header.channel_header + header.signature_header + public).digest()
    return Unpacked(
        tx_id=channel_header.tx_id,
        channel=channel_header.channel_id,
        chaincode=extension.chaincode_id.name,
        fn=args[0],
        args=args[1:],
        header=header,
        channel_header=channel_header,
        signature_header=signature_header,
        payload=payload,
        timestamp=channel_header.timestamp.ToDatetime(tzinfo=UTC),
        proposal_hash=digest,
    )


def _failed(message: str) -> proposal_response_pb2.ProposalResponse:
    """A peer-generated failure: status 500, no payload (the gateway may try another peer)."""
    return proposal_response_pb2.ProposalResponse(
        response=proposal_response_pb2.Response(status=500, message=message)
    )


@dataclass
class EndorsingPeer:
    msp_id: str
    address: str
    identity: Issued  # the peer's enrollment certificate (NodeOU peer) and key
    msps: ChannelMsps
    world: World
    channel: str
    chaincode: str
    invoke: InvokeFn = real_contract
    clock: Callable[[], datetime] = field(default=peer_clock)
    max_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S
    reachable: bool = True  # False: down, or the network drops its connections
    in_discovery: bool = True  # False: gossip noticed it is gone, so discovery omits it
    executed: list[str] = field(default_factory=list)  # tx ids it simulated

    def process_proposal(
        self, signed: proposal_pb2.SignedProposal
    ) -> tuple[proposal_response_pb2.ProposalResponse | None, str | None]:
        """Fabric's ProcessProposal: (response, error), error set for a refused proposal."""
        if not self.reachable:
            return None, unreachable(self.address)
        try:
            up = unpack(signed)
        except ValueError as exc:
            return _failed(str(exc)), str(exc)
        if up.channel != self.channel:
            return _failed(f"channel '{up.channel}' not found"), None
        refused = self._validate(up, signed)
        if refused is not None:
            return _failed(refused), refused
        if up.chaincode != self.chaincode:
            return _failed(
                f"make sure the chaincode {up.chaincode} has been successfully defined on "
                f"channel {up.channel} and try again: chaincode definition for "
                f"'{up.chaincode}' does not exist"
            ), None
        return self._endorse(up), None

    def _validate(self, up: Unpacked, signed: proposal_pb2.SignedProposal) -> str | None:
        prefix = "error validating proposal: "
        if up.channel_header.type != common_pb2.ENDORSER_TRANSACTION:
            name = common_pb2.HeaderType.Name(up.channel_header.type)
            return f"{prefix}invalid header type {name}"
        nonce, creator = up.signature_header.nonce, up.signature_header.creator
        if not nonce:
            return f"{prefix}nonce is empty"
        if not creator:
            return f"{prefix}creator is empty"
        expected = hashlib.sha256(nonce + creator).hexdigest()
        if up.tx_id != expected:
            return f"{prefix}incorrectly computed txid '{up.tx_id}' -- expected '{expected}'"
        try:
            self.msps.verify(creator, signed.proposal_bytes, signed.signature, what="proposal")
        except IdentityRefused as exc:
            if exc.msp_id is None:
                return (
                    f"{prefix}access denied: channel [{up.channel}] creator org unknown, "
                    "creator is malformed"
                )
            return f"{prefix}access denied: channel [{up.channel}] creator org [{exc.msp_id}]"
        if up.tx_id in self.world.tx_ids:
            return f"duplicate transaction found [{up.tx_id}]. Creator [{creator.hex()}]"
        return None

    def _run_chaincode(self, up: Unpacked, sim: Simulation) -> proposal_response_pb2.Response:
        """What dshare's chaincode service answers (dshare_chaincode.ccaas): the clock rule,
        then the contract."""
        self.executed.append(up.tx_id)
        try:
            ClockGuard(self.max_skew_s, self.clock).check(up.timestamp, up.tx_id)
            result = self.invoke(sim, up.fn, up.args)
        except ContractError as exc:
            return proposal_response_pb2.Response(status=500, message=exc.to_wire())
        return proposal_response_pb2.Response(status=200, payload=result)

    def _endorse(self, up: Unpacked) -> proposal_response_pb2.ProposalResponse:
        creator = identities_pb2.SerializedIdentity.FromString(up.signature_header.creator)
        sim = Simulation(
            world=self.world,
            tx_id=up.tx_id,
            timestamp=up.timestamp,
            creator=Creator(creator.mspid, creator.id_bytes.decode()),
            transient={k: bytes(v) for k, v in up.payload.TransientMap.items()},
        )
        response = self._run_chaincode(up, sim)
        results = rwset_pb2.TxReadWriteSet(
            data_model=rwset_pb2.TxReadWriteSet.KV,
            ns_rwset=[
                rwset_pb2.NsReadWriteSet(
                    namespace=self.chaincode, rwset=sim.rwset().SerializeToString()
                )
            ],
        )
        action = proposal_pb2.ChaincodeAction(
            results=results.SerializeToString(),
            response=response,
            chaincode_id=chaincode_pb2.ChaincodeID(name=self.chaincode, version=CHAINCODE_VERSION),
        )
        if sim.event is not None and response.status < 400:
            action.events = chaincode_event_pb2.ChaincodeEvent(
                chaincode_id=self.chaincode,
                tx_id=up.tx_id,
                event_name=sim.event[0],
                payload=sim.event[1],
            ).SerializeToString()
        payload = proposal_response_pb2.ProposalResponsePayload(
            proposal_hash=up.proposal_hash, extension=action.SerializeToString()
        ).SerializeToString()
        if response.status >= 400:
            return proposal_response_pb2.ProposalResponse(response=response, payload=payload)
        endorser = serialize_identity(self.msp_id, self.identity.cert_pem)
        endorsement = proposal_response_pb2.Endorsement(
            endorser=endorser, signature=sign_p256(self.identity.key, payload + endorser)
        )
        return proposal_response_pb2.ProposalResponse(
            version=1, response=response, payload=payload, endorsement=endorsement
        )

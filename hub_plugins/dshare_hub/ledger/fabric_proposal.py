"""Pure builders and parsers for the Fabric messages a Gateway client exchanges.

Nothing here does I/O: every function takes its inputs (identity, nonce, timestamp) and
returns protobuf messages or bytes, so the exact bytes a client signs can be checked in
tests against an independent computation.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from fabric_protos.common import common_pb2 as _common_pb2
from fabric_protos.gateway import gateway_pb2 as _gateway_pb2
from fabric_protos.msp import identities_pb2 as _identities_pb2
from fabric_protos.orderer import ab_pb2 as _ab_pb2
from fabric_protos.peer import chaincode_pb2 as _chaincode_pb2
from fabric_protos.peer import proposal_pb2 as _proposal_pb2
from fabric_protos.peer import proposal_response_pb2 as _proposal_response_pb2
from fabric_protos.peer import transaction_pb2 as _transaction_pb2

# The generated protobuf modules carry no type information (py.typed, no stubs).
common_pb2: Any = _common_pb2
gateway_pb2: Any = _gateway_pb2
identities_pb2: Any = _identities_pb2
ab_pb2: Any = _ab_pb2
chaincode_pb2: Any = _chaincode_pb2
proposal_pb2: Any = _proposal_pb2
proposal_response_pb2: Any = _proposal_response_pb2
transaction_pb2: Any = _transaction_pb2

# Order of the P-256 group. Fabric's MSP rejects signatures whose s is above n/2 (the
# "high-S" twin of every ECDSA signature), so every signature is normalised to low-S.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P256_HALF_ORDER = P256_ORDER >> 1

NONCE_SIZE = 24


class IdentityError(ValueError):
    """The organization's certificate or key cannot be used to sign Fabric messages."""


def serialize_identity(msp_id: str, cert_pem: bytes) -> bytes:
    """The `creator` bytes Fabric puts in every header: MSP id plus the PEM certificate."""
    return identities_pb2.SerializedIdentity(mspid=msp_id, id_bytes=cert_pem).SerializeToString()


def compute_tx_id(nonce: bytes, creator: bytes) -> str:
    """Fabric's transaction id: hex SHA-256 of nonce followed by the serialized creator."""
    return hashlib.sha256(nonce + creator).hexdigest()


def sign_p256(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA-SHA256 over `data`, DER-encoded, with s folded to the lower half of the group."""
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    if s > P256_HALF_ORDER:
        s = P256_ORDER - s
    return encode_dss_signature(r, s)


@dataclass(frozen=True)
class Signer:
    """One organization's client identity: MSP id, certificate and its P-256 private key."""

    msp_id: str
    cert_pem: bytes
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def from_pem(cls, msp_id: str, cert_pem: bytes, key_pem: bytes) -> Signer:
        """Load and cross-check the identity; errors never quote the key material."""
        if not msp_id:
            raise IdentityError("msp_id is empty: give the organization's MSP id, e.g. UiSMSP")
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError:
            raise IdentityError(
                "the certificate is not a PEM X.509 certificate: use the signcerts/*.pem "
                "file of the organization's client identity"
            ) from None
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError):
            raise IdentityError(
                "the private key is not an unencrypted PEM private key: use the keystore "
                "file of the organization's client identity"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise IdentityError("the private key is not an ECDSA P-256 key, which Fabric needs")
        cert_pub = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        key_pub = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if cert_pub != key_pub:
            raise IdentityError("the private key does not belong to the certificate")
        return cls(msp_id=msp_id, cert_pem=cert_pem, key=key)

    @property
    def creator(self) -> bytes:
        return serialize_identity(self.msp_id, self.cert_pem)

    def sign(self, data: bytes) -> bytes:
        return sign_p256(self.key, data)

    def __repr__(self) -> str:  # never show the key, even in a debugger or a log line
        return f"Signer(msp_id={self.msp_id!r})"


@dataclass(frozen=True)
class Proposal:
    """An unsigned proposal and the transaction id derived from its nonce and creator."""

    tx_id: str
    proposal_bytes: bytes


def build_proposal(
    *,
    channel: str,
    chaincode: str,
    fn: str,
    args: Sequence[str],
    creator: bytes,
    transient: Mapping[str, bytes] | None = None,
    nonce: bytes | None = None,
    timestamp: datetime | None = None,
) -> Proposal:
    """An ENDORSER_TRANSACTION proposal invoking `fn(*args)` on `chaincode` in `channel`."""
    nonce = os.urandom(NONCE_SIZE) if nonce is None else nonce
    tx_id = compute_tx_id(nonce, creator)
    chaincode_id = chaincode_pb2.ChaincodeID(name=chaincode)

    channel_header = common_pb2.ChannelHeader(
        type=common_pb2.ENDORSER_TRANSACTION,
        channel_id=channel,
        tx_id=tx_id,
        extension=proposal_pb2.ChaincodeHeaderExtension(
            chaincode_id=chaincode_id
        ).SerializeToString(),
    )
    channel_header.timestamp.FromDatetime(
        (timestamp or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    )
    header = common_pb2.Header(
        channel_header=channel_header.SerializeToString(),
        signature_header=common_pb2.SignatureHeader(
            creator=creator, nonce=nonce
        ).SerializeToString(),
    )
    invocation = chaincode_pb2.ChaincodeInvocationSpec(
        chaincode_spec=chaincode_pb2.ChaincodeSpec(
            chaincode_id=chaincode_id,
            input=chaincode_pb2.ChaincodeInput(args=[a.encode() for a in (fn, *args)]),
        )
    )
    payload = proposal_pb2.ChaincodeProposalPayload(
        input=invocation.SerializeToString(), TransientMap=dict(transient or {})
    )
    proposal = proposal_pb2.Proposal(
        header=header.SerializeToString(), payload=payload.SerializeToString()
    )
    return Proposal(tx_id=tx_id, proposal_bytes=proposal.SerializeToString())


def sign_proposal(signer: Signer, proposal: Proposal) -> proposal_pb2.SignedProposal:
    return proposal_pb2.SignedProposal(
        proposal_bytes=proposal.proposal_bytes, signature=signer.sign(proposal.proposal_bytes)
    )


def sign_envelope(signer: Signer, prepared: common_pb2.Envelope) -> common_pb2.Envelope:
    """The prepared transaction the gateway assembled, signed by the submitting org."""
    return common_pb2.Envelope(payload=prepared.payload, signature=signer.sign(prepared.payload))


def envelope_tx_id(envelope: common_pb2.Envelope) -> str:
    payload = common_pb2.Payload.FromString(envelope.payload)
    return common_pb2.ChannelHeader.FromString(payload.header.channel_header).tx_id


def transaction_result(envelope: common_pb2.Envelope) -> bytes:
    """The chaincode's return value carried inside a prepared transaction.

    Endorse returns only the transaction; the result sits in the endorsed proposal
    response payload (payload -> Transaction -> ChaincodeActionPayload -> ChaincodeAction).
    """
    payload = common_pb2.Payload.FromString(envelope.payload)
    transaction = transaction_pb2.Transaction.FromString(payload.data)
    if not transaction.actions:
        raise ValueError("the prepared transaction has no actions")
    action_payload = transaction_pb2.ChaincodeActionPayload.FromString(
        transaction.actions[0].payload
    )
    response_payload = proposal_response_pb2.ProposalResponsePayload.FromString(
        action_payload.action.proposal_response_payload
    )
    action = proposal_pb2.ChaincodeAction.FromString(response_payload.extension)
    return bytes(action.response.payload)


def endorsing_orgs(envelope: common_pb2.Envelope) -> list[str]:
    """The MSP ids of the endorsements a prepared transaction carries, in order, once each."""
    payload = common_pb2.Payload.FromString(envelope.payload)
    transaction = transaction_pb2.Transaction.FromString(payload.data)
    found: list[str] = []
    for tx_action in transaction.actions:
        action_payload = transaction_pb2.ChaincodeActionPayload.FromString(tx_action.payload)
        for endorsement in action_payload.action.endorsements:
            msp = identities_pb2.SerializedIdentity.FromString(endorsement.endorser).mspid
            if msp not in found:
                found.append(msp)
    return found


def commit_status_request(
    signer: Signer, channel: str, tx_id: str
) -> gateway_pb2.SignedCommitStatusRequest:
    request = gateway_pb2.CommitStatusRequest(
        transaction_id=tx_id, channel_id=channel, identity=signer.creator
    ).SerializeToString()
    return gateway_pb2.SignedCommitStatusRequest(request=request, signature=signer.sign(request))


def chaincode_events_request(
    signer: Signer,
    channel: str,
    chaincode: str,
    *,
    start_block: int | None = None,
    after_tx_id: str | None = None,
) -> gateway_pb2.SignedChaincodeEventsRequest:
    """Events from `start_block` (or the next block committed), skipping up to `after_tx_id`."""
    if start_block is None:
        position = ab_pb2.SeekPosition(next_commit=ab_pb2.SeekNextCommit())
    else:
        position = ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=start_block))
    request = gateway_pb2.ChaincodeEventsRequest(
        channel_id=channel,
        chaincode_id=chaincode,
        identity=signer.creator,
        start_position=position,
        after_transaction_id=after_tx_id or "",
    ).SerializeToString()
    return gateway_pb2.SignedChaincodeEventsRequest(request=request, signature=signer.sign(request))

"""The channel's MSPs as the TEST DOUBLES check identities and signatures.

Like Fabric's MSP: a serialized identity (MSP id + PEM certificate) is valid when its MSP is
a member of the channel and its certificate was issued by that MSP's CA; a role (NodeOU,
here the certificate's OrganizationalUnit) can be required, as the organizations'
`Endorsement` policies require ``<org>.peer``; an ECDSA signature verifies with the
certificate's key and is in low-S form. Not modelled: intermediate CAs, revocation lists,
certificate expiry against the transaction time, admin OUs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from fabric_protos.msp import identities_pb2
from google.protobuf.message import DecodeError

from dshare_hub.ledger.fabric_proposal import P256_HALF_ORDER

from .fabric_pki import role_of


class IdentityRefused(Exception):
    """An identity or signature the channel's MSPs do not accept; `msp_id` None when the
    identity names no member MSP (or cannot be read)."""

    def __init__(self, reason: str, msp_id: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.msp_id = msp_id


@dataclass
class ChannelMsps:
    """The member organizations of a channel: MSP id -> CA certificate PEM, in order."""

    cas: dict[str, bytes]
    # What was verified, by kind ("proposal", "endorsement", ...): tests read it.
    verified: Counter[str] = field(default_factory=Counter)

    @property
    def organizations(self) -> list[str]:
        return list(self.cas)

    def identify(self, serialized: bytes) -> tuple[str, x509.Certificate]:
        try:
            identity = identities_pb2.SerializedIdentity.FromString(serialized)
        except DecodeError:
            raise IdentityRefused("the identity is not a serialized identity", None) from None
        ca_pem = self.cas.get(identity.mspid)
        if ca_pem is None:
            raise IdentityRefused(f"MSP {identity.mspid!r} is not a member", None)
        try:
            cert = x509.load_pem_x509_certificate(identity.id_bytes)
        except ValueError:
            raise IdentityRefused("the identity's certificate is not PEM", None) from None
        try:
            cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
        except (ValueError, TypeError, InvalidSignature):
            raise IdentityRefused(
                f"the certificate is not issued by {identity.mspid}'s CA", identity.mspid
            ) from None
        return identity.mspid, cert

    def verify(
        self,
        serialized: bytes,
        data: bytes,
        signature: bytes,
        *,
        what: str,
        role: str | None = None,
    ) -> str:
        """The signer's MSP id when `signature` over `data` is valid; else IdentityRefused."""
        msp_id, cert = self.identify(serialized)
        if role is not None and role_of(cert) != role:
            raise IdentityRefused(f"the identity is not a {msp_id} {role}", msp_id)
        public_key = cert.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise IdentityRefused("the identity's key is not ECDSA", msp_id)
        try:
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise IdentityRefused("the signature does not verify", msp_id) from None
        if decode_dss_signature(signature)[1] > P256_HALF_ORDER:
            raise IdentityRefused("the signature is not in low-S form", msp_id)
        self.verified[what] += 1
        return msp_id

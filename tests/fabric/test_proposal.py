"""Proposal building, checked by independent computation and by parsing the bytes back."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import chaincode_pb2, proposal_pb2

from dshare_hub.ledger.fabric_proposal import (
    P256_ORDER,
    IdentityError,
    Signer,
    build_proposal,
    chaincode_events_request,
    commit_status_request,
    sign_p256,
    sign_proposal,
)

from .conftest import Pki
from .fabric_pki import CA

NONCE = bytes(range(24))
WHEN = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)


def signer(pki: Pki) -> Signer:
    client = pki.clients["UiSMSP"]
    return Signer.from_pem("UiSMSP", client.cert_pem, client.key_pem)


def verify(cert_pem: bytes, data: bytes, signature: bytes) -> None:
    from cryptography import x509

    key = x509.load_pem_x509_certificate(cert_pem).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(signature, data, ec.ECDSA(hashes.SHA256()))  # raises if wrong
    assert decode_dss_signature(signature)[1] <= P256_ORDER // 2  # Fabric's low-S rule


def test_proposal_parses_back_with_independent_tx_id(pki: Pki) -> None:
    me = signer(pki)
    proposal = build_proposal(
        channel="dshare",
        chaincode="dshare",
        fn="RequestLease",
        args=["a1", "600", "p"],
        creator=me.creator,
        transient={"actor": b"alice"},
        nonce=NONCE,
        timestamp=WHEN,
    )
    creator = identities_pb2.SerializedIdentity(
        mspid="UiSMSP", id_bytes=pki.clients["UiSMSP"].cert_pem
    ).SerializeToString()
    assert proposal.tx_id == hashlib.sha256(NONCE + creator).hexdigest()

    parsed = proposal_pb2.Proposal.FromString(proposal.proposal_bytes)
    header = common_pb2.Header.FromString(parsed.header)
    channel_header = common_pb2.ChannelHeader.FromString(header.channel_header)
    assert channel_header.type == common_pb2.ENDORSER_TRANSACTION
    assert channel_header.channel_id == "dshare"
    assert channel_header.tx_id == proposal.tx_id
    assert channel_header.timestamp.ToDatetime(tzinfo=UTC) == WHEN
    extension = proposal_pb2.ChaincodeHeaderExtension.FromString(channel_header.extension)
    assert extension.chaincode_id.name == "dshare"
    signature_header = common_pb2.SignatureHeader.FromString(header.signature_header)
    assert (signature_header.nonce, signature_header.creator) == (NONCE, creator)
    payload = proposal_pb2.ChaincodeProposalPayload.FromString(parsed.payload)
    assert dict(payload.TransientMap) == {"actor": b"alice"}
    spec = chaincode_pb2.ChaincodeInvocationSpec.FromString(payload.input).chaincode_spec
    assert spec.chaincode_id.name == "dshare"
    assert list(spec.input.args) == [b"RequestLease", b"a1", b"600", b"p"]


def test_fresh_nonce_gives_fresh_tx_ids(pki: Pki) -> None:
    me = signer(pki)
    ids = {
        build_proposal(channel="c", chaincode="d", fn="f", args=[], creator=me.creator).tx_id
        for _ in range(20)
    }
    assert len(ids) == 20


def test_every_signed_message_verifies_with_the_public_key(pki: Pki) -> None:
    me = signer(pki)
    cert = pki.clients["UiSMSP"].cert_pem
    proposal = build_proposal(channel="c", chaincode="d", fn="f", args=[], creator=me.creator)
    signed = sign_proposal(me, proposal)
    verify(cert, signed.proposal_bytes, signed.signature)

    status = commit_status_request(me, "c", proposal.tx_id)
    inner = gateway_pb2.CommitStatusRequest.FromString(status.request)
    assert (inner.transaction_id, inner.channel_id, inner.identity) == (
        proposal.tx_id,
        "c",
        me.creator,
    )
    verify(cert, status.request, status.signature)

    events = chaincode_events_request(me, "c", "d", start_block=7, after_tx_id="t1")
    parsed = gateway_pb2.ChaincodeEventsRequest.FromString(events.request)
    assert parsed.start_position.specified.number == 7
    assert (parsed.chaincode_id, parsed.after_transaction_id) == ("d", "t1")
    verify(cert, events.request, events.signature)
    latest = gateway_pb2.ChaincodeEventsRequest.FromString(
        chaincode_events_request(me, "c", "d").request
    )
    assert latest.start_position.HasField("next_commit")


def test_signatures_are_always_low_s() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    # About half of raw ECDSA signatures are high-S; 64 signatures all low-S is no accident.
    for i in range(64):
        data = f"message {i}".encode()
        signature = sign_p256(key, data)
        assert decode_dss_signature(signature)[1] <= P256_ORDER // 2
        key.public_key().verify(signature, data, ec.ECDSA(hashes.SHA256()))


def test_signer_refuses_unusable_identities(pki: Pki) -> None:
    client = pki.clients["UiSMSP"]
    other = pki.clients["UiOMSP"]
    cases = [
        (
            "",
            client.cert_pem,
            client.key_pem,
            "msp_id is empty: give the organization's MSP id, e.g. UiSMSP",
        ),
        (
            "UiSMSP",
            b"not a cert",
            client.key_pem,
            "the certificate is not a PEM X.509 certificate: use the signcerts/*.pem file of "
            "the organization's client identity",
        ),
        (
            "UiSMSP",
            client.cert_pem,
            b"not a key",
            "the private key is not an unencrypted PEM private key: use the keystore file of "
            "the organization's client identity",
        ),
        (
            "UiSMSP",
            client.cert_pem,
            other.key_pem,
            "the private key does not belong to the certificate",
        ),
    ]
    for msp, cert, key, message in cases:
        with pytest.raises(IdentityError) as err:
            Signer.from_pem(msp, cert, key)
        assert str(err.value) == message
        assert "PRIVATE KEY" not in str(err.value)


def test_signer_refuses_a_key_on_another_curve() -> None:
    from cryptography.hazmat.primitives import serialization

    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(IdentityError) as err:
        Signer.from_pem("UiSMSP", CA("X").cert_pem, pem)
    assert str(err.value) == "the private key is not an ECDSA P-256 key, which Fabric needs"


def test_signer_repr_never_shows_the_key(pki: Pki) -> None:
    assert repr(signer(pki)) == "Signer(msp_id='UiSMSP')"

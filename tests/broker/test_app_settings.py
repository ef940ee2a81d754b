"""BrokerApp's settings: refused together with a message naming the key, and the Fabric
profile and Kubernetes choices wired to the real classes."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dshare_hub.broker.app import BrokerApp
from dshare_hub.ledger.fabric import FabricLedger


def app(**settings) -> BrokerApp:
    return BrokerApp(org="UiS", data_dir="/tmp/unused", **settings)


def test_unknown_ledger_kind_is_named():
    with pytest.raises(SystemExit) as e:
        app(ledger_kind="couchdb").load_settings()
    assert str(e.value) == (
        "dshare broker: BrokerApp.ledger_kind is 'couchdb'; use 'embedded' or 'fabric'"
    )


def test_fabric_needs_a_profile():
    with pytest.raises(SystemExit) as e:
        app(ledger_kind="fabric").load_settings()
    assert str(e.value) == "dshare broker: set BrokerApp.fabric_profile (in the --config file)"


def test_unknown_materializer_is_named():
    with pytest.raises(SystemExit) as e:
        app(ledger_kind="fabric", fabric_profile="p.json", materializer_kind="nfs").load_settings()
    assert "BrokerApp.materializer_kind is 'nfs'; use 'local' or 'kubernetes'" in str(e.value)


def test_unreadable_profile_says_which_file(tmp_path):
    broker = app(ledger_kind="fabric", fabric_profile=str(tmp_path / "missing.json"))
    with pytest.raises(SystemExit) as e:
        broker.open_ledger()
    assert f"cannot read BrokerApp.fabric_profile {tmp_path / 'missing.json'}" in str(e.value)


def _msp(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Admin@uis")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "msp").mkdir()
    (tmp_path / "msp" / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "msp" / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key


@pytest.mark.asyncio
async def test_fabric_profile_opens_the_gateway_client_and_signs_peer_requests(tmp_path):
    key = _msp(tmp_path)
    profile = tmp_path / "connection.json"
    profile.write_text(
        json.dumps(
            {
                "peer_endpoint": "127.0.0.1:7051",
                "msp_id": "UiSMSP",
                "channel": "dshare",
                "chaincode": "dshare",
                "key_path": "msp/key.pem",
                "cert_path": "msp/cert.pem",
                "plaintext": True,
            }
        )
    )
    broker = app(ledger_kind="fabric", fabric_profile=str(profile))
    broker.load_settings()
    ledger = broker.open_ledger()
    try:
        assert isinstance(ledger, FabricLedger)
        assert ledger.profile.msp_id == "UiSMSP"
        identity = broker.signing_identity(ledger)
        assert identity.msp_id == "UiSMSP"
        signature = identity.sign(b"peer request")
        key.public_key().verify(signature, b"peer request", ec.ECDSA(hashes.SHA256()))
    finally:
        await ledger.close()

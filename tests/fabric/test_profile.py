"""Connection profile validation: every refusal names the field and what to give."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest

from dshare_hub.ledger.fabric import FabricConfigError, FabricLedger, FabricProfile

from .conftest import Pki, make_double
from .fabric_gateway_double import start_gateway


def base(pki: Pki, tmp_path: Path) -> dict[str, Any]:
    cert, key = pki.clients["UiSMSP"].write(tmp_path, "uis")
    (tmp_path / "tls-ca.pem").write_bytes(pki.tls_ca.cert_pem)
    return {
        "peer_endpoint": "peer0.uis.example.com:7051",
        "msp_id": "UiSMSP",
        "cert_path": cert.name,
        "key_path": key.name,
        "channel": "dshare",
        "chaincode": "dshare",
        "tls_root_cert_path": "tls-ca.pem",
    }


def test_relative_paths_resolve_from_base_dir(pki: Pki, tmp_path: Path) -> None:
    profile = FabricProfile.from_mapping(base(pki, tmp_path), base_dir=tmp_path)
    assert profile.cert_pem == pki.clients["UiSMSP"].cert_pem
    assert profile.key_path == tmp_path / "uis-key.pem"
    assert profile.tls_root_cert == pki.tls_ca.cert_pem
    assert (profile.plaintext, profile.channel_organizations) == (False, ())
    ledger = FabricLedger(profile)
    assert "PRIVATE" not in repr(ledger) and "BEGIN" not in repr(ledger)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"msp_id": None},
            "connection profile: field 'msp_id' is required "
            "(the organization's MSP id, e.g. UiSMSP)",
        ),
        (
            {"peer_endpoint": "no-port"},
            "connection profile: field 'peer_endpoint' must be host:port, got 'no-port'",
        ),
        (
            {"cert_path": None},
            "connection profile: field 'cert_path' (or cert_pem) is required (PEM certificate of "
            "the organization's client identity)",
        ),
        (
            {"colour": "blue"},
            "connection profile: unknown field 'colour'; expected one of cert_path, cert_pem, "
            "chaincode, channel, channel_organizations, commit_timeout_s, endorse_timeout_s, "
            "evaluate_timeout_s, key_path, msp_id, peer_endpoint, plaintext, submit_timeout_s, "
            "tls_root_cert_path, tls_root_cert_pem, tls_server_name",
        ),
        (
            {"commit_timeout_s": 0},
            "connection profile: field 'commit_timeout_s' must be a positive number of seconds",
        ),
        (
            {"tls_root_cert_path": None},
            "connection profile: field 'tls_root_cert_path' (or tls_root_cert_pem) is required "
            "(CA certificate of the peer's TLS); only a local test peer may go without TLS, "
            'with "plaintext": true',
        ),
        (
            {"plaintext": True},
            "connection profile: field 'plaintext' is true but 'tls_root_cert_path' is set too: "
            "remove one of them",
        ),
        (
            {"plaintext": True, "tls_root_cert_path": None, "tls_server_name": "peer0"},
            "connection profile: field 'plaintext' is true but 'tls_server_name' is set too: "
            "remove one of them",
        ),
        (
            {"plaintext": "yes", "tls_root_cert_path": None},
            "connection profile: field 'plaintext' must be true or false",
        ),
        (
            {"channel_organizations": ["UiOMSP", "UiBMSP"]},
            "connection profile: field 'channel_organizations' must list the channel's MSP ids "
            "once each, 'UiSMSP' among them",
        ),
        (
            {"channel_organizations": "UiSMSP"},
            "connection profile: field 'channel_organizations' must list the channel's MSP ids "
            "once each, 'UiSMSP' among them",
        ),
    ],
)
def test_profile_errors_name_the_field(
    pki: Pki, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    data = base(pki, tmp_path) | change
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(FabricConfigError) as err:
        FabricProfile.from_mapping(data, base_dir=tmp_path)
    assert str(err.value) == message


def test_unreadable_files_are_named(pki: Pki, tmp_path: Path) -> None:
    data = base(pki, tmp_path) | {"tls_root_cert_path": "absent.pem"}
    with pytest.raises(FabricConfigError) as err:
        FabricProfile.from_mapping(data, base_dir=tmp_path)
    assert str(err.value) == (
        f"connection profile: field 'tls_root_cert_path': cannot read {tmp_path / 'absent.pem'} "
        "(No such file or directory)"
    )
    profile = FabricProfile.from_mapping(
        base(pki, tmp_path) | {"key_path": "nokey.pem"}, base_dir=tmp_path
    )
    with pytest.raises(FabricConfigError) as err:
        FabricLedger(profile)
    assert str(err.value) == (
        f"connection profile: field 'key_path': cannot read {tmp_path / 'nokey.pem'} "
        "(No such file or directory)"
    )


def test_mismatched_key_is_refused_without_quoting_it(pki: Pki, tmp_path: Path) -> None:
    _, other_key = pki.clients["UiOMSP"].write(tmp_path, "uio")
    profile = FabricProfile.from_mapping(
        base(pki, tmp_path) | {"key_path": other_key.name}, base_dir=tmp_path
    )
    with pytest.raises(FabricConfigError) as err:
        FabricLedger(profile)
    assert str(err.value) == (
        "connection profile: the private key does not belong to the certificate"
    )


def test_a_profile_built_in_code_still_needs_tls_or_plaintext(pki: Pki, tmp_path: Path) -> None:
    profile = FabricProfile.from_mapping(base(pki, tmp_path), base_dir=tmp_path)
    with pytest.raises(FabricConfigError) as err:
        FabricLedger(dataclasses.replace(profile, tls_root_cert=None))
    assert str(err.value).startswith(
        "connection profile: field 'tls_root_cert_path' (or tls_root_cert_pem) is required"
    )


def test_channel_organizations_are_kept_in_order(pki: Pki, tmp_path: Path) -> None:
    members = ["UiSMSP", "UiOMSP", "UiBMSP"]
    data = base(pki, tmp_path) | {"channel_organizations": members}
    profile = FabricProfile.from_mapping(data, base_dir=tmp_path)
    assert profile.channel_organizations == ("UiSMSP", "UiOMSP", "UiBMSP")


@pytest.mark.asyncio
async def test_plaintext_is_explicit_and_warns_at_every_connection(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    double = make_double(pki)
    server, address = await start_gateway(double, None)
    data = base(pki, tmp_path) | {"peer_endpoint": address, "plaintext": True}
    del data["tls_root_cert_path"]
    ledger = FabricLedger(FabricProfile.from_mapping(data, base_dir=tmp_path))
    warning = (
        'connection profile sets "plaintext": true: the connection to the Fabric gateway at '
        f"{address} is neither encrypted nor authenticated; use TLS for anything but a local "
        "test peer"
    )
    try:
        with caplog.at_level(logging.WARNING, logger="dshare_hub.ledger.fabric"):
            await ledger.submit("RegisterAsset", _asset(), actor="alice")
            await ledger.evaluate("GetAsset", "a1", actor="alice")  # the same connection
            assert [r.getMessage() for r in caplog.records] == [warning]
            await ledger.close()
            await ledger.evaluate("GetAsset", "a1", actor="alice")  # a new connection
            assert [r.getMessage() for r in caplog.records] == [warning, warning]
    finally:
        await ledger.close()
        await server.stop(None)


@pytest.mark.asyncio
async def test_a_tls_profile_cannot_reach_a_plaintext_gateway(pki: Pki, tmp_path: Path) -> None:
    from dshare_hub.ledger import LedgerError

    double = make_double(pki)
    server, address = await start_gateway(double, None)
    data = base(pki, tmp_path) | {"peer_endpoint": address, "evaluate_timeout_s": 5}
    ledger = FabricLedger(FabricProfile.from_mapping(data, base_dir=tmp_path))
    try:
        with pytest.raises(LedgerError) as err:
            await ledger.evaluate("GetAsset", "a1", actor="alice")
    finally:
        await ledger.close()
        await server.stop(None)
    assert err.value.code == "LEDGER_UNAVAILABLE"
    assert double.requests == []  # nothing reached the gateway in clear text


def _asset() -> str:
    import json

    return json.dumps({"id": "a1", "name": "A", "storage_type": "local", "sealed_storage": "s"})

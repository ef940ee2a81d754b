"""Connection profile validation: every refusal names the field and what to give."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dshare_hub.ledger.fabric import FabricConfigError, FabricLedger, FabricProfile

from .conftest import Pki


def base(pki: Pki, tmp_path: Path) -> dict[str, Any]:
    cert, key = pki.clients["UiSMSP"].write(tmp_path, "uis")
    return {
        "peer_endpoint": "peer0.uis.example.com:7051",
        "msp_id": "UiSMSP",
        "cert_path": cert.name,
        "key_path": key.name,
        "channel": "dshare",
        "chaincode": "dshare",
    }


def test_relative_paths_resolve_from_base_dir(pki: Pki, tmp_path: Path) -> None:
    profile = FabricProfile.from_mapping(base(pki, tmp_path), base_dir=tmp_path)
    assert profile.cert_pem == pki.clients["UiSMSP"].cert_pem
    assert profile.key_path == tmp_path / "uis-key.pem"
    assert profile.tls_root_cert is None
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
            "chaincode, channel, commit_timeout_s, endorse_timeout_s, evaluate_timeout_s, "
            "key_path, msp_id, peer_endpoint, submit_timeout_s, tls_root_cert_path, "
            "tls_root_cert_pem, tls_server_name",
        ),
        (
            {"commit_timeout_s": 0},
            "connection profile: field 'commit_timeout_s' must be a positive number of seconds",
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

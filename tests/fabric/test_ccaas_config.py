"""The ccaas entry point's environment handling: clear errors naming the variable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dshare_chaincode.ccaas import ConfigError, server_settings

BASE = {"CHAINCODE_SERVER_ADDRESS": "0.0.0.0:9999", "CHAINCODE_ID": "dshare_1.0:abc"}


def test_server_settings_name_the_missing_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        server_settings({"CHAINCODE_ID": "dshare_1.0:abc"})
    assert str(err.value) == (
        "CHAINCODE_SERVER_ADDRESS is not set: set it to the host:port to listen on, "
        "e.g. 0.0.0.0:9999"
    )
    with pytest.raises(ConfigError) as err:
        server_settings({"CHAINCODE_SERVER_ADDRESS": "0.0.0.0:9999"})
    assert str(err.value) == (
        "CHAINCODE_ID is not set: set it to the package id printed by "
        "'peer lifecycle chaincode install'"
    )
    with pytest.raises(ConfigError) as err:
        server_settings(BASE | {"CHAINCODE_TLS_KEY": "/k.pem"})
    assert str(err.value) == "set both CHAINCODE_TLS_KEY and CHAINCODE_TLS_CERT, or neither"
    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigError) as err:
        server_settings(BASE | {"CHAINCODE_TLS_KEY": str(missing), "CHAINCODE_TLS_CERT": "/c"})
    assert str(err.value) == f"CHAINCODE_TLS_KEY: cannot read {missing} (No such file or directory)"


def test_without_tls_material_the_service_refuses_to_start() -> None:
    with pytest.raises(ConfigError) as err:
        server_settings(BASE)
    assert str(err.value) == (
        "CHAINCODE_TLS_KEY and CHAINCODE_TLS_CERT are not set: set them to the PEM key and "
        "certificate to serve TLS with (and CHAINCODE_CLIENT_CA_CERT to the CA of the peers' "
        "client certificates), or set CHAINCODE_PLAINTEXT=true to serve without TLS on a local "
        "test network"
    )
    assert server_settings(BASE | {"CHAINCODE_PLAINTEXT": "true"}) == BASE | {
        "tls": {},
        "plaintext": True,
        "max_clock_skew_s": 120.0,
    }


def tls_files(tmp_path: Path, *names: str) -> dict[str, str]:
    env = {}
    for name in names:
        path = tmp_path / f"{name.lower()}.pem"
        path.write_bytes(f"pem of {name}".encode())
        env[name] = str(path)
    return env


def test_tls_material_is_read_and_a_client_ca_makes_it_mutual(tmp_path: Path) -> None:
    env = tls_files(tmp_path, "CHAINCODE_TLS_KEY", "CHAINCODE_TLS_CERT", "CHAINCODE_CLIENT_CA_CERT")
    settings = server_settings(BASE | env | {"CHAINCODE_MAX_CLOCK_SKEW": "30.5"})
    assert settings["tls"] == {
        "CHAINCODE_TLS_KEY": b"pem of CHAINCODE_TLS_KEY",
        "CHAINCODE_TLS_CERT": b"pem of CHAINCODE_TLS_CERT",
        "CHAINCODE_CLIENT_CA_CERT": b"pem of CHAINCODE_CLIENT_CA_CERT",
    }
    assert (settings["plaintext"], settings["max_clock_skew_s"]) == (False, 30.5)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"CHAINCODE_PLAINTEXT": "true", "tls": True},
            "CHAINCODE_PLAINTEXT=true contradicts CHAINCODE_TLS_KEY and CHAINCODE_TLS_CERT: "
            "unset one or the other",
        ),
        (
            {"CHAINCODE_PLAINTEXT": "yes"},
            "CHAINCODE_PLAINTEXT must be true or false, got 'yes'",
        ),
        (
            {"CHAINCODE_PLAINTEXT": "true", "CHAINCODE_CLIENT_CA_CERT": "/ca.pem"},
            "CHAINCODE_CLIENT_CA_CERT needs CHAINCODE_TLS_KEY and CHAINCODE_TLS_CERT: client "
            "certificates are checked only over TLS",
        ),
        (
            {"tls": True, "CHAINCODE_MAX_CLOCK_SKEW": "two minutes"},
            "CHAINCODE_MAX_CLOCK_SKEW must be a positive number of seconds, got 'two minutes'",
        ),
        (
            {"tls": True, "CHAINCODE_MAX_CLOCK_SKEW": "0"},
            "CHAINCODE_MAX_CLOCK_SKEW must be a positive number of seconds, got '0'",
        ),
        (
            {"tls": True, "CHAINCODE_MAX_CLOCK_SKEW": "inf"},
            "CHAINCODE_MAX_CLOCK_SKEW must be a positive number of seconds, got 'inf'",
        ),
    ],
)
def test_contradictory_or_malformed_settings_are_refused(
    tmp_path: Path, env: dict[str, Any], message: str
) -> None:
    if env.pop("tls", False):
        env |= tls_files(tmp_path, "CHAINCODE_TLS_KEY", "CHAINCODE_TLS_CERT")
    with pytest.raises(ConfigError) as err:
        server_settings(BASE | env)
    assert str(err.value) == message


def test_main_exits_2_with_the_reason(capsys: Any) -> None:
    from dshare_chaincode.ccaas import main

    assert main({}) == 2
    assert capsys.readouterr().err == (
        "dshare chaincode: CHAINCODE_SERVER_ADDRESS is not set: set it to the host:port to "
        "listen on, e.g. 0.0.0.0:9999\n"
    )
    assert main(BASE) == 2
    assert capsys.readouterr().err.startswith(
        "dshare chaincode: CHAINCODE_TLS_KEY and CHAINCODE_TLS_CERT are not set: "
    )

"""The ccaas entry point's environment handling: clear errors naming the variable."""

from __future__ import annotations

from typing import Any

import pytest

from dshare_chaincode.ccaas import ConfigError, server_settings


def test_server_settings_name_the_missing_variable(tmp_path: Any) -> None:
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
    base = {"CHAINCODE_SERVER_ADDRESS": "0.0.0.0:9999", "CHAINCODE_ID": "dshare_1.0:abc"}
    with pytest.raises(ConfigError) as err:
        server_settings(base | {"CHAINCODE_TLS_KEY": "/k.pem"})
    assert str(err.value) == "set both CHAINCODE_TLS_KEY and CHAINCODE_TLS_CERT, or neither"
    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigError) as err:
        server_settings(base | {"CHAINCODE_TLS_KEY": str(missing), "CHAINCODE_TLS_CERT": "/c"})
    assert str(err.value) == f"CHAINCODE_TLS_KEY: cannot read {missing} (No such file or directory)"
    assert server_settings(base) == {
        "CHAINCODE_SERVER_ADDRESS": "0.0.0.0:9999",
        "CHAINCODE_ID": "dshare_1.0:abc",
        "tls": {},
    }


def test_main_exits_2_with_the_reason(capsys: Any) -> None:
    from dshare_chaincode.ccaas import main

    assert main({}) == 2
    assert capsys.readouterr().err == (
        "dshare chaincode: CHAINCODE_SERVER_ADDRESS is not set: set it to the host:port to "
        "listen on, e.g. 0.0.0.0:9999\n"
    )

"""The chaincode service's settings, read from the environment (see `dshare_chaincode.ccaas`).

Every refusal names the variable and what to set it to.
"""

from __future__ import annotations

from typing import Any

from .clock import DEFAULT_MAX_CLOCK_SKEW_S
from .clock import SETTING as MAX_CLOCK_SKEW_SETTING


class ConfigError(ValueError):
    """A required environment variable is missing, contradicts another or names an unreadable
    file."""


TLS_FILES = ("CHAINCODE_TLS_KEY", "CHAINCODE_TLS_CERT", "CHAINCODE_CLIENT_CA_CERT")


def _flag(env: dict[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in ("", "false"):
        return False
    if value == "true":
        return True
    raise ConfigError(f"{name} must be true or false, got {env[name]!r}")


def _max_skew(env: dict[str, str]) -> float:
    raw = env.get(MAX_CLOCK_SKEW_SETTING, "").strip()
    if not raw:
        return DEFAULT_MAX_CLOCK_SKEW_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise ConfigError(
            f"{MAX_CLOCK_SKEW_SETTING} must be a positive number of seconds, got {raw!r}"
        )
    return value


def server_settings(env: dict[str, str]) -> dict[str, Any]:
    """Listen address, chaincode id, TLS material and the clock rule from the environment."""
    settings: dict[str, Any] = {}
    for name, hint in (
        ("CHAINCODE_SERVER_ADDRESS", "the host:port to listen on, e.g. 0.0.0.0:9999"),
        ("CHAINCODE_ID", "the package id printed by 'peer lifecycle chaincode install'"),
    ):
        value = env.get(name, "").strip()
        if not value:
            raise ConfigError(f"{name} is not set: set it to {hint}")
        settings[name] = value
    key, cert = env.get("CHAINCODE_TLS_KEY"), env.get("CHAINCODE_TLS_CERT")
    if bool(key) != bool(cert):
        raise ConfigError("set both CHAINCODE_TLS_KEY and CHAINCODE_TLS_CERT, or neither")
    plaintext = _flag(env, "CHAINCODE_PLAINTEXT")
    if key and plaintext:
        raise ConfigError(
            "CHAINCODE_PLAINTEXT=true contradicts CHAINCODE_TLS_KEY and CHAINCODE_TLS_CERT: "
            "unset one or the other"
        )
    if not key and env.get("CHAINCODE_CLIENT_CA_CERT"):
        raise ConfigError(
            "CHAINCODE_CLIENT_CA_CERT needs CHAINCODE_TLS_KEY and CHAINCODE_TLS_CERT: "
            "client certificates are checked only over TLS"
        )
    if not key and not plaintext:
        raise ConfigError(
            "CHAINCODE_TLS_KEY and CHAINCODE_TLS_CERT are not set: set them to the PEM key "
            "and certificate to serve TLS with (and CHAINCODE_CLIENT_CA_CERT to the CA of the "
            "peers' client certificates), or set CHAINCODE_PLAINTEXT=true to serve without "
            "TLS on a local test network"
        )
    tls: dict[str, bytes] = {}
    for name in TLS_FILES:
        path = env.get(name)
        if path:
            try:
                with open(path, "rb") as fh:
                    tls[name] = fh.read()
            except OSError as exc:
                raise ConfigError(f"{name}: cannot read {path} ({exc.strerror})") from None
    settings["tls"] = tls
    settings["plaintext"] = plaintext
    settings["max_clock_skew_s"] = _max_skew(env)
    return settings


def transport(settings: dict[str, Any]) -> str:
    """How the service is reached, for its log lines."""
    tls = settings["tls"]
    if not tls:
        return "plaintext"
    if "CHAINCODE_CLIENT_CA_CERT" in tls:
        return "TLS, client certificates required"
    return "TLS, no client certificates"

"""Fixtures for the Fabric side: throwaway PKI, the Gateway test double, FabricLedger clients."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

sys.path.insert(0, str(Path(__file__).parent))

from dshare_hub.ledger.fabric import FabricLedger, FabricProfile

from .fabric_gateway_double import GatewayDouble, start_gateway
from .fabric_pki import CA, Issued

CHANNEL = "dshare"
CHAINCODE = "dshare"


@dataclass
class Pki:
    cas: dict[str, CA]
    clients: dict[str, Issued]
    peer: Issued
    peer_tls: Issued
    tls_ca: CA


@pytest.fixture(scope="session")
def pki() -> Pki:
    cas = {msp: CA(msp.removesuffix("MSP")) for msp in ("UiSMSP", "UiOMSP")}
    clients = {msp: ca.issue(f"admin@{msp.lower()}") for msp, ca in cas.items()}
    tls_ca = CA("UiS-TLS")
    return Pki(
        cas=cas,
        clients=clients,
        peer=cas["UiSMSP"].issue("peer0.uis.example.com"),
        peer_tls=tls_ca.issue("peer0.uis.example.com", hosts=("peer0.uis.example.com",)),
        tls_ca=tls_ca,
    )


@pytest_asyncio.fixture
async def gateway(pki: Pki) -> AsyncIterator[tuple[GatewayDouble, str]]:
    double = GatewayDouble(
        channel=CHANNEL,
        chaincode=CHAINCODE,
        msp_cas={msp: ca.cert_pem for msp, ca in pki.cas.items()},
        peer=pki.peer,
        peer_msp="UiSMSP",
    )
    server, address = await start_gateway(double, pki.peer_tls)
    yield double, address
    await server.stop(None)


@pytest.fixture
def make_ledger(
    pki: Pki, gateway: tuple[GatewayDouble, str], tmp_path: Path
) -> Callable[..., FabricLedger]:
    _, address = gateway

    def make(msp: str = "UiSMSP", **overrides: object) -> FabricLedger:
        client = pki.clients[msp]
        cert_path, key_path = client.write(tmp_path, msp)
        (tmp_path / "tls-ca.pem").write_bytes(pki.tls_ca.cert_pem)
        data: dict[str, object] = {
            "peer_endpoint": address,
            "msp_id": msp,
            "cert_path": str(cert_path),
            "key_path": str(key_path),
            "channel": CHANNEL,
            "chaincode": CHAINCODE,
            "tls_root_cert_path": "tls-ca.pem",
            "tls_server_name": "peer0.uis.example.com",
        }
        data.update(overrides)
        return FabricLedger(FabricProfile.from_mapping(data, base_dir=tmp_path))

    return make

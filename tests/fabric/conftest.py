"""Fixtures for the Fabric side: throwaway PKI, the Gateway test double (three peers, one per
organization, MAJORITY endorsement), FabricLedger clients."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import pytest_asyncio

sys.path.insert(0, str(Path(__file__).parent))

from dshare_hub.ledger.fabric import FabricLedger, FabricProfile

from .fabric_gateway_double import GatewayDouble, channel_of, start_gateway
from .fabric_pki import CA, Issued

CHANNEL = "dshare"
CHAINCODE = "dshare"
ORGS = ("UiSMSP", "UiOMSP", "UiBMSP")
# Where each organization's peer listens, as the gateway's error details name it.
PEER_ADDRESSES = {
    "UiSMSP": "peer0.uis.example.com:7051",
    "UiOMSP": "peer0.uio.example.com:8051",
    "UiBMSP": "peer0.uib.example.com:9051",
}


@dataclass
class Pki:
    cas: dict[str, CA]
    clients: dict[str, Issued]
    peers: dict[str, Issued]  # each org's peer enrollment certificate (NodeOU peer)
    peer_tls: Issued  # the TLS certificate of UiS's peer, which hosts the gateway
    tls_ca: CA


@pytest.fixture(scope="session")
def pki() -> Pki:
    cas = {msp: CA(msp.removesuffix("MSP")) for msp in ORGS}
    tls_ca = CA("UiS-TLS")
    return Pki(
        cas=cas,
        clients={msp: ca.issue(f"admin@{msp.lower()}", ou="client") for msp, ca in cas.items()},
        peers={msp: cas[msp].issue(PEER_ADDRESSES[msp].split(":")[0], ou="peer") for msp in ORGS},
        peer_tls=tls_ca.issue("peer0.uis.example.com", hosts=("peer0.uis.example.com",)),
        tls_ca=tls_ca,
    )


def make_double(pki: Pki) -> GatewayDouble:
    """UiS's gateway on a channel of UiS, UiO and UiB, each with its peer."""
    return channel_of(
        channel=CHANNEL,
        chaincode=CHAINCODE,
        msp_cas={msp: ca.cert_pem for msp, ca in pki.cas.items()},
        peers={msp: (PEER_ADDRESSES[msp], pki.peers[msp]) for msp in ORGS},
        local_msp="UiSMSP",
    )


@pytest_asyncio.fixture
async def gateway(pki: Pki) -> AsyncIterator[tuple[GatewayDouble, str]]:
    double = make_double(pki)
    server, address = await start_gateway(double, pki.peer_tls)
    yield double, address
    await server.stop(None)


def profile_data(pki: Pki, tmp_path: Path, address: str, msp: str = "UiSMSP") -> dict[str, object]:
    """A TLS connection profile for `msp`'s broker, files written under tmp_path."""
    cert_path, key_path = pki.clients[msp].write(tmp_path, msp)
    (tmp_path / "tls-ca.pem").write_bytes(pki.tls_ca.cert_pem)
    return {
        "peer_endpoint": address,
        "msp_id": msp,
        "cert_path": str(cert_path),
        "key_path": str(key_path),
        "channel": CHANNEL,
        "chaincode": CHAINCODE,
        "tls_root_cert_path": "tls-ca.pem",
        "tls_server_name": "peer0.uis.example.com",
    }


@pytest.fixture
def make_ledger(
    pki: Pki, gateway: tuple[GatewayDouble, str], tmp_path: Path
) -> Callable[..., FabricLedger]:
    _, address = gateway

    def make(
        msp: str = "UiSMSP", *, clock: Callable[[], datetime] | None = None, **overrides: object
    ) -> FabricLedger:
        data = profile_data(pki, tmp_path, address, msp)
        data.update(overrides)
        profile = FabricProfile.from_mapping(data, base_dir=tmp_path)
        return FabricLedger(profile, clock=clock)

    return make

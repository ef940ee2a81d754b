"""The chaincode service as a peer reaches it: real gRPC on 127.0.0.1, the server built from
its environment settings (`server_settings` + `build_server`), a TEST DOUBLE peer
(`fabric_shim_peer.ShimPeer`) dialling it. TLS is the default, CHAINCODE_CLIENT_CA_CERT
makes it mutual, plaintext needs CHAINCODE_PLAINTEXT=true and warns."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from fabric_protos.peer import proposal_response_pb2

from dshare_chaincode.ccaas import build_server, server_settings

from .conftest import Pki
from .fabric_pki import CA, Issued
from .fabric_shim_peer import WHEN, ShimPeer, finish, over_grpc, register, transaction
from .fabric_world import World

pytestmark = pytest.mark.asyncio


class TlsPki:
    def __init__(self) -> None:
        self.server_ca = CA("ChaincodeTLS")
        self.peers_ca = CA("PeersTLS")  # the CA of the peers' client certificates
        self.server = self.server_ca.issue("dshare-ccaas", hosts=("127.0.0.1",))
        self.peer = self.peers_ca.issue("peer0.uis.example.com")
        self.stranger = CA("Elsewhere").issue("peer0.uis.example.com")


@pytest.fixture(scope="module")
def tls() -> TlsPki:
    return TlsPki()


Serve = Callable[..., Any]


@pytest_asyncio.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    servers: list[grpc.aio.Server] = []

    async def start(env: dict[str, str]) -> int:
        base = {"CHAINCODE_SERVER_ADDRESS": "127.0.0.1:0", "CHAINCODE_ID": "dshare_1.0:abc"}
        settings = server_settings(base | env)
        server, port = build_server(settings, clock=lambda: WHEN)
        await server.start()
        servers.append(server)
        return port

    yield start
    for server in servers:
        await server.stop(None)


def tls_env(tmp_path: Path, tls: TlsPki, *, client_ca: bool) -> dict[str, str]:
    cert, key = tls.server.write(tmp_path, "chaincode")
    env = {"CHAINCODE_TLS_KEY": str(key), "CHAINCODE_TLS_CERT": str(cert)}
    if client_ca:
        (tmp_path / "peers-ca.pem").write_bytes(tls.peers_ca.cert_pem)
        env["CHAINCODE_CLIENT_CA_CERT"] = str(tmp_path / "peers-ca.pem")
    return env


def dial(port: int, tls: TlsPki, client: Issued | None) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.server_ca.cert_pem,
        private_key=client.key_pem if client else None,
        certificate_chain=client.cert_pem if client else None,
    )
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials)


async def test_with_mutual_tls_a_peer_holding_the_right_ca_cert_is_served(
    serve: Serve, tmp_path: Path, tls: TlsPki, pki: Pki
) -> None:
    port = await serve(tls_env(tmp_path, tls, client_ca=True))
    peer = ShimPeer(World())
    async with dial(port, tls, tls.peer) as channel:
        pump = await over_grpc(peer, channel)
        await register(peer)
        client = pki.clients["UiSMSP"]
        asset = {"id": "a1", "name": "Counts", "storage_type": "local", "sealed_storage": "s"}
        done = await peer.run_transaction(transaction(client, "RegisterAsset", json.dumps(asset)))
        late = transaction(client, "GetAsset", "a1", timestamp=WHEN + timedelta(minutes=5))
        refused = await peer.run_transaction(late)
        await finish(peer, pump)
    response = proposal_response_pb2.Response.FromString(done.payload)
    assert response.status == 200, response.message
    assert json.loads(response.payload)["owner_org"] == "UiSMSP"
    assert done.chaincode_event.event_name == "AssetRegistered"
    # the clock rule over the wire: the service's clock reads WHEN
    response = proposal_response_pb2.Response.FromString(refused.payload)
    assert (response.status, response.message) == (
        500,
        f"CLOCK_SKEW: transaction {late.txid} is timestamped 2026-05-01T12:05:00.123456Z, "
        "300 s ahead of the endorsing peer's clock (2026-05-01T12:00:00.123456Z); the peers "
        "accept at most 120 s (CHAINCODE_MAX_CLOCK_SKEW): check the submitting machine's clock",
    )


@pytest.mark.parametrize("who", ["no client certificate", "a certificate of another CA"])
async def test_with_mutual_tls_other_clients_are_refused(
    serve: Serve, tmp_path: Path, tls: TlsPki, who: str
) -> None:
    port = await serve(tls_env(tmp_path, tls, client_ca=True))
    client = None if who == "no client certificate" else tls.stranger
    peer = ShimPeer(World())
    async with dial(port, tls, client) as channel:
        pump = await over_grpc(peer, channel)
        with pytest.raises(grpc.RpcError) as err:
            await peer.received()  # the chaincode's REGISTER never comes
        await pump
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_tls_without_a_client_ca_serves_any_tls_client(
    serve: Serve, tmp_path: Path, tls: TlsPki
) -> None:
    port = await serve(tls_env(tmp_path, tls, client_ca=False))
    peer = ShimPeer(World())
    async with dial(port, tls, None) as channel:
        pump = await over_grpc(peer, channel)
        await register(peer)
        await finish(peer, pump)


async def test_a_plaintext_client_cannot_talk_to_the_tls_service(
    serve: Serve, tmp_path: Path, tls: TlsPki
) -> None:
    port = await serve(tls_env(tmp_path, tls, client_ca=False))
    peer = ShimPeer(World())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        pump = await over_grpc(peer, channel)
        with pytest.raises(grpc.RpcError) as err:
            await peer.received()
        await pump
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_plaintext_only_when_asked_and_with_a_warning(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="dshare_chaincode.ccaas"):
        port = await serve({"CHAINCODE_PLAINTEXT": "true"})
    assert [r.getMessage() for r in caplog.records if r.name == "dshare_chaincode.ccaas"] == [
        "CHAINCODE_PLAINTEXT=true: serving 127.0.0.1:0 without TLS, so the peers' connections "
        "are neither encrypted nor authenticated; use it on a local test network only"
    ]
    peer = ShimPeer(World())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        pump = await over_grpc(peer, channel)
        await register(peer)
        await finish(peer, pump)

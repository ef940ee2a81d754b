"""One real control plane per test session (tests/support/kube_cluster.py), and clients
that speak to it as a given identity: a ServiceAccount's bound token, as its pod has it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from kube_cluster import KubeCluster
from kubernetes_asyncio import client

from dshare_hub.k8s.api import KubeApi, RetryPolicy


@pytest.fixture(scope="session")
def cluster() -> Iterator[KubeCluster]:
    root = Path(tempfile.mkdtemp(prefix="dshare-kube-", dir="/tmp"))
    out = os.environ.get("DSHARE_TEST_OUTPUT")
    logs = Path(out) / f"kube-{root.name}" if out else root / "logs"
    running = KubeCluster(root=root, logs=logs)
    with running:
        yield running
    shutil.rmtree(root, ignore_errors=True)


def api_config(cluster: KubeCluster, token: str) -> client.Configuration:
    assert cluster.pki is not None
    config = client.Configuration(
        host=cluster.url,
        api_key={"BearerToken": token},
        api_key_prefix={"BearerToken": "Bearer"},
    )
    config.ssl_ca_cert = str(cluster.pki.ca)
    return config


@pytest_asyncio.fixture
async def as_token(cluster: KubeCluster) -> AsyncIterator[object]:
    """`await as_token(namespace, service_account)` -> a KubeApi speaking as that account."""
    opened: list[client.ApiClient] = []

    def make(namespace: str, service_account: str) -> KubeApi:
        api_client = client.ApiClient(
            api_config(cluster, cluster.token_for(namespace, service_account))
        )
        opened.append(api_client)
        return KubeApi(api_client, retry=RetryPolicy(attempts=2, base_delay=0.05))

    yield make
    for api_client in opened:
        await api_client.close()

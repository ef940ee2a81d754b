"""The control plane itself: the pinned versions, loopback only, RBAC on, nothing left behind."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from kube_cluster import POD_CIDR, REPO, KubeCluster
from kubernetes_asyncio.client.exceptions import ApiException

from .bodies import running_pod
from .conftest import api_config


def _pinned(module: str, tool: str) -> str:
    text = (REPO / "tools" / "go" / tool / "go.mod").read_text()
    found = re.search(rf"^require {re.escape(module)} (v\S+)$", text, re.M)
    assert found, f"tools/go/{tool}/go.mod pins no {module}"
    return found.group(1)


def test_the_api_server_is_the_pinned_release(cluster: KubeCluster) -> None:
    version = cluster.get("/version") or {}
    assert version["gitVersion"] == _pinned("k8s.io/kubernetes", "kubernetes")


def _ips(obj: object) -> list[str]:
    found: list[str] = []
    if isinstance(obj, dict):
        for value in obj.values():
            found += _ips(value)
    elif isinstance(obj, list):
        for value in obj:
            found += _ips(value)
    elif isinstance(obj, str):
        try:
            ipaddress.ip_address(obj)
        except ValueError:
            return []
        found.append(obj)
    return found


def test_nodes_pods_and_services_have_loopback_addresses_only(cluster: KubeCluster) -> None:
    ns = "loopback-check"
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "probe", "namespace": ns},
            "spec": {"ports": [{"port": 80}], "selector": {"app": "x"}},
        }
    )
    pod = running_pod(cluster, "probe", ns)
    assert pod["status"]["phase"] == "Running"
    assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(POD_CIDR)
    objects = [
        pod,
        cluster.get(f"/api/v1/namespaces/{ns}/services/probe"),
        cluster.get("/api/v1/nodes"),
    ]
    addresses = [ip for obj in objects for ip in _ips(obj)]
    assert addresses, "the scan found no address at all: it is not looking"
    assert [ip for ip in addresses if not ipaddress.ip_address(ip).is_loopback] == []


@pytest.mark.asyncio
async def test_rbac_is_enforced_by_the_server(cluster: KubeCluster) -> None:
    from kubernetes_asyncio import client

    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "nobody", "namespace": "default"},
        }
    )
    token = cluster.token_for("default", "nobody")
    async with client.ApiClient(api_config(cluster, token)) as api_client:
        with pytest.raises(ApiException) as refused:
            await client.CoreV1Api(api_client).list_namespaced_pod("default")
    assert refused.value.status == 403
    assert "system:serviceaccount:default:nobody" in str(refused.value.body)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stop_ends_every_process_it_started() -> None:
    root = Path(tempfile.mkdtemp(prefix="dshare-kube-stop-", dir="/tmp"))
    second = KubeCluster(root=root, argo=False).start()
    pids = [p.pid for p in second.procs.values()]
    assert len(pids) == 5
    assert all(_alive(pid) for pid in pids)
    second.stop()
    shutil.rmtree(root, ignore_errors=True)
    assert [pid for pid in pids if _alive(pid)] == []

"""`helm install` of dshare's chart into a real API server, as an operator would run it.

A cluster of its own (without Argo: the chart holds no workflow), so the install meets no
object another suite applied and the uninstall takes nothing from them. Every object must
be accepted by the server (RBAC objects, admission policies, NetworkPolicies, the brokers'
Deployments and Services); the brokers' pods are scheduled on the kwok node; uninstall
removes what install made.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kube_cluster import BIN, REPO, KubeCluster, resource_path

CHART = REPO / "charts" / "dshare"
NAMESPACE = "data-hub"


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[KubeCluster]:
    root = Path(tempfile.mkdtemp(prefix="dshare-kube-helm-", dir="/tmp"))
    out = os.environ.get("DSHARE_TEST_OUTPUT")
    logs = Path(out) / f"kube-{root.name}" if out else None
    with KubeCluster(root=root, logs=logs, argo=False) as cluster:
        yield cluster
    shutil.rmtree(root, ignore_errors=True)


def _helm(cluster: KubeCluster, *args: str) -> subprocess.CompletedProcess[str]:
    assert cluster.pki is not None
    home = cluster.root / "helm"
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.pki.kubeconfig("admin")),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    return subprocess.run(
        [str(BIN / "helm"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )


def _exists(cluster: KubeCluster, obj: dict) -> bool:
    return cluster.get(f"{resource_path(obj)}/{obj['metadata']['name']}") is not None


def test_the_chart_installs_whole_and_uninstalls_whole(own_cluster: KubeCluster) -> None:
    cluster = own_cluster
    values = cluster.root / "values.yaml"
    values.write_text(yaml.safe_dump({"orgs": [{"name": "Alpha"}, {"name": "Beta"}]}))
    rendered = _helm(
        cluster, "template", "dshare", str(CHART), "--namespace", NAMESPACE, "-f", str(values)
    )
    assert rendered.returncode == 0, rendered.stderr
    objects = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    assert len(objects) > 20

    done = _helm(
        cluster,
        "install",
        "dshare",
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--create-namespace",
        "-f",
        str(values),
        "--wait=false",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    missing = [
        f"{o['kind']} {o['metadata'].get('namespace', '')}/{o['metadata']['name']}"
        for o in objects
        if not _exists(cluster, o)
    ]
    assert missing == []
    # The brokers' pods are made by the real controller-manager and placed by the scheduler.
    deadline = time.monotonic() + 60
    pods: list[dict] = []
    while time.monotonic() < deadline:
        listed = cluster.get(
            f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector=app.kubernetes.io/name=dshare-broker"
        )
        pods = (listed or {}).get("items") or []
        if len(pods) == 2 and all(p["spec"].get("nodeName") for p in pods):
            break
        time.sleep(0.5)
    assert sorted(p["metadata"]["labels"]["dshare.io/org"] for p in pods) == ["Alpha", "Beta"]

    gone = _helm(cluster, "uninstall", "dshare", "--namespace", NAMESPACE, "--wait")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    deadline = time.monotonic() + 60
    left = objects
    while time.monotonic() < deadline:
        left = [o for o in objects if o["kind"] != "Namespace" and _exists(cluster, o)]
        if not left:
            break
        time.sleep(0.5)
    assert [o["metadata"]["name"] for o in left] == []

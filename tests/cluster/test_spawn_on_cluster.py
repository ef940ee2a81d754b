"""A real JupyterHub spawns a user's server with DShareKubeSpawner on the real API server.

What runs for real: JupyterHub (with configurable-http-proxy) as a subprocess, its
DShareKubeSpawner speaking to the test control plane (tests/support/kube_cluster.py) with
the bound token of the hub's ServiceAccount `dshare:hub` from a kubeconfig, so every object
is made under the shipped ClusterRole `dshare-hub` and admission; the controller-manager
binds the claims, the scheduler places the pod, kwok marks it Running with a 127.1.x.x IP.
The interactive dataset's claim is made by the real KubeMaterializer with the owner org's
broker token (as tests/cluster/test_broker_mounts.py), and released by it when the hub
stops the server. The single-user server is the real `jupyterhub-singleuser` process; the
hub sees it ready and the proxy routes to it.

Where the simulation ends:
- The org broker's HTTP API is a double (BrokerDouble below), for the lease listing, the
  datasets' metadata and the notebook session run only: no ledger, no key service. Its
  session answer carries the claim the real KubeMaterializer made on the real server.
- The home volume is a hostPath PersistentVolume the test makes pre-bound to the claim
  KubeSpawner will create (the test plays the storage provisioner); the user's data claim
  points at an NFS server that is never contacted.
- kwok runs no container. A test-side "kubelet" (Kubelet below) starts, once the pod is
  Running, `jupyterhub-singleuser` from this venv with the environment of the pod's
  notebook container, as the pod's runAsUser, with the home volume's directory as its
  home, bound to the pod's IP and port (in the pod's own network namespace 0.0.0.0 would
  be that IP: the kubelet writes the IP in). It mounts none of the other volumes (token,
  data, skeletons), does not run the skeleton init container, and stops the process when
  the pod is gone from the API server.
Nothing leaves 127.0.0.0/8.
"""

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from kube_cluster import KubeCluster

from dshare_hub.k8s import objects

from .installed import HUB_NAMESPACE, USER_NAMESPACE_LABEL, install
from .spawn_world import (
    ADMIN_TOKEN,
    INTERACTIVE,
    NAMESPACE_TEMPLATE,
    ORG,
    TOKEN_DIR,
    USER,
    WORKFLOW_ONLY,
    BrokerDouble,
    Hub,
    Kubelet,
    wait_until,
)

# --- fixtures ---------------------------------------------------------------------------------


@dataclass
class Deployment:
    cluster: KubeCluster
    hub: Hub
    broker: BrokerDouble
    kubelet: Kubelet
    root: Path

    def home_volume(self, user: str) -> Path:
        """The home volume KubeSpawner's claim binds to: a hostPath PV pre-bound to it."""
        namespace, claim = NAMESPACE_TEMPLATE.format(username=user), f"claim-{user}"
        home = self.root / "homes" / user
        home.mkdir(parents=True)
        self.kubelet.homes[f"{namespace}/{claim}"] = home
        self.cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"home-{user}"},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "",
                    "hostPath": {"path": str(home), "type": "Directory"},
                    "claimRef": {"namespace": namespace, "name": claim},
                },
            }
        )
        return home


@pytest.fixture(scope="module")
def deployment(cluster: KubeCluster) -> Iterator[Any]:
    install(cluster)
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "hub", "namespace": HUB_NAMESPACE},
        }
    )
    # Under /tmp, not pytest's 0700 directory: the homes below it are entered by the
    # server's uid; the hub's state, config and tokens are in a 0700 directory beside them.
    root = Path(tempfile.mkdtemp(prefix="dshare-hub-kube-", dir="/tmp"))
    root.chmod(0o711)
    (root / "hub").mkdir(mode=0o700)
    broker = BrokerDouble(cluster)
    kubelet = Kubelet(cluster, homes={}, logs=root / "hub")
    hub = Hub(root / "hub")
    try:
        broker.start()
        kubelet.start()
        hub.start(cluster, broker.url)
        broker.hub_api = hub.url + "/hub/api/"
        yield Deployment(cluster, hub, broker, kubelet, root)
    finally:
        # The hub first: it stops the servers it still runs (pods deleted on the server).
        hub.stop()
        kubelet.stop()
        broker.stop()
        out = os.environ.get("DSHARE_TEST_OUTPUT")
        if out:
            for log in (root / "hub").glob("*.log"):
                with contextlib.suppress(OSError):
                    (Path(out) / f"spawn-on-cluster-{log.name}").write_bytes(log.read_bytes())
        shutil.rmtree(root, ignore_errors=True)


def _server(hub: Hub, user: str) -> dict[str, Any]:
    reply = hub.call("GET", f"/hub/api/users/{user}", ADMIN_TOKEN)
    assert reply.status == 200, reply.text
    servers: dict[str, Any] = reply.body.get("servers") or {}
    return servers.get("", {})


def _spawn(d: Deployment, user: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    reply = d.hub.call("POST", f"/hub/api/users/{user}/server", ADMIN_TOKEN, options or {})
    assert reply.status in (201, 202), reply.text + d.hub.log_tail()

    def ready() -> dict[str, Any] | None:
        server = _server(d.hub, user)
        if not server:  # the spawn failed: the hub forgot the server
            raise AssertionError(f"spawn of {user} failed:\n{d.hub.log_tail()}")
        return server if server.get("ready") else None

    try:
        return dict(wait_until(ready, f"{user}'s server to be ready", 120))
    except AssertionError:
        raise AssertionError(
            f"kubelet errors: {d.kubelet.errors}\nhub log:\n{d.hub.log_tail()}"
        ) from None


def _get(cluster: KubeCluster, path: str) -> dict[str, Any]:
    found = cluster.get(path)
    assert found is not None, f"{path} is not on the server"
    return found


def _gone(cluster: KubeCluster, path: str) -> bool:
    return cluster.get(path) is None


def _make_user(d: Deployment, user: str, leases: list[dict[str, Any]]) -> str:
    d.hub.make_user(user, ORG, "scientist")
    d.broker.leases[user] = leases
    d.home_volume(user)
    reply = d.hub.call(
        "POST",
        f"/hub/api/users/{user}/tokens",
        ADMIN_TOKEN,
        {"scopes": ["access:servers!user"], "note": "test"},
    )
    assert reply.status == 201, reply.text
    return str(reply.body["token"])


# --- tests ----------------------------------------------------------------------------------


def test_the_hub_spawns_a_locked_down_pod_and_reaches_the_server_in_it(
    deployment: Deployment,
) -> None:
    d, cluster = deployment, deployment.cluster
    ns, name = NAMESPACE_TEMPLATE.format(username=USER), f"dshare-{USER}"
    token = _make_user(d, USER, [INTERACTIVE, WORKFLOW_ONLY])
    server = _spawn(d, USER)

    # The namespace, made by KubeSpawner with dshare's labels.
    labels = _get(cluster, f"/api/v1/namespaces/{ns}")["metadata"]["labels"]
    assert labels[USER_NAMESPACE_LABEL] == "true"
    assert labels["hub.jupyter.org/network-access-hub"] == "true"
    # The user's ServiceAccount (no automounted token), Role and RoleBinding.
    account = _get(cluster, f"/api/v1/namespaces/{ns}/serviceaccounts/{name}")
    assert account["automountServiceAccountToken"] is False
    assert account["metadata"]["labels"]["dshare.io/org"] == ORG
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}"
    assert _get(cluster, f"{rbac}/roles/{name}")["rules"] == objects.USER_ROLE_RULES
    binding = _get(cluster, f"{rbac}/rolebindings/{name}")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": name,
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": ns}]
    # The home claim, bound to its volume by the controller-manager.
    home = _get(cluster, f"/api/v1/namespaces/{ns}/persistentvolumeclaims/claim-{USER}")
    assert home["status"]["phase"] == "Bound"

    pod = _get(cluster, f"/api/v1/namespaces/{ns}/pods/jupyter-{USER}")
    spec = pod["spec"]
    assert pod["status"]["phase"] == "Running"
    assert spec["nodeName"] == "kwok-node-0"
    assert pod["status"]["podIP"].startswith("127.1.")
    assert pod["metadata"]["labels"]["dshare.io/data-access"] == "interactive"
    assert pod["metadata"]["labels"]["dshare.io/org"] == ORG
    # Only the per-user token, as a kubelet-renewed projected volume of its own account.
    assert spec["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == name
    volumes = {v["name"]: v for v in spec["volumes"]}
    token_volume = volumes[objects.TOKEN_VOLUME]["projected"]["sources"]
    assert token_volume[0]["serviceAccountToken"]["expirationSeconds"] == 3600
    assert not any("secret" in v for v in spec["volumes"])
    (notebook,) = spec["containers"]
    ctx = notebook["securityContext"]
    assert ctx["runAsNonRoot"] is True and ctx["allowPrivilegeEscalation"] is False
    assert ctx["runAsUser"] == 1000
    env = {e["name"]: e.get("value") for e in notebook["env"]}
    assert env["DSHARE_BROKER_URL"] == d.broker.url and env["DSHARE_ORG"] == ORG
    # No credential in the environment but the hub's own token for the server.
    assert {k for k in env if "TOKEN" in k} == {"JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN"}
    mounts = {m["mountPath"]: m for m in notebook["volumeMounts"]}
    assert mounts[TOKEN_DIR]["readOnly"] is True
    # The interactive lease: the claim the owner's broker made, bound, mounted read-only.
    data = mounts["/home/jovyan/datasets/uis-payments"]
    assert data["readOnly"] is True
    claim_name = volumes[data["name"]]["persistentVolumeClaim"]["claimName"]
    assert volumes[data["name"]]["persistentVolumeClaim"]["readOnly"] is True
    claim_path = f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim_name}"
    assert _get(cluster, claim_path)["status"]["phase"] == "Bound"
    assert _get(cluster, f"/api/v1/persistentvolumes/{claim_name}")["spec"]["accessModes"] == [
        "ReadOnlyMany"
    ]
    # The workflow-only lease: its skeleton, written by the init container, read-only.
    skeleton = mounts["/home/jovyan/datasets/uis-lorem-corpus"]
    assert skeleton["readOnly"] is True and skeleton["subPath"] == "uis-lorem-corpus"
    (init,) = spec["initContainers"]
    assert json.loads(init["args"][1]) == {"uis-lorem-corpus": ["texts/a.txt", "texts/deep/"]}
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    # The spawner asked the broker with the server's own token, which the hub says is ulla's.
    assert ("GET", "leases", USER) in d.broker.calls
    assert ("POST", "runs", USER) in d.broker.calls

    # The hub sees the real server ready, and the proxy routes to the process in the pod.
    assert server["ready"] is True
    assert server["url"] == f"/user/{USER}/"
    status = d.hub.call("GET", f"/user/{USER}/api/status", token)
    assert status.status == 200, status.text
    assert "started" in status.body and "kernels" in status.body
    assert any(f"/jupyter-{USER}/" in key for key in d.kubelet.procs)

    # Stop through the hub: the pod goes from the real server, the session's claim with it.
    reply = d.hub.call("DELETE", f"/hub/api/users/{USER}/server", ADMIN_TOKEN)
    assert reply.status in (202, 204), reply.text
    wait_until(lambda: not _server(d.hub, USER), "the hub to forget the server")
    wait_until(
        lambda: cluster.get(f"/api/v1/namespaces/{ns}/pods/jupyter-{USER}") is None, "pod gone"
    )
    wait_until(lambda: cluster.get(claim_path) is None, "the session's data claim to be released")
    wait_until(
        lambda: all(p.poll() is not None for k, p in d.kubelet.procs.items() if USER in k),
        "the server process to end with its pod",
    )
    assert ("POST", "runs/session-ulla/finish", USER) in d.broker.calls
    # What stays across a stop: the home, the account and its rights.
    assert cluster.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/claim-{USER}")
    assert cluster.get(f"/api/v1/namespaces/{ns}/serviceaccounts/{name}")

    # Deleting the user (delete_forever): the account, its rights and the home claim go;
    # the namespace stays (KubeSpawner never deletes one; neither may the hub).
    reply = d.hub.call("DELETE", f"/hub/api/users/{USER}", ADMIN_TOKEN)
    assert reply.status == 204, reply.text + d.hub.log_tail()
    for path in (
        f"/api/v1/namespaces/{ns}/serviceaccounts/{name}",
        f"{rbac}/roles/{name}",
        f"{rbac}/rolebindings/{name}",
        f"/api/v1/namespaces/{ns}/persistentvolumeclaims/claim-{USER}",
    ):
        wait_until(partial(_gone, cluster, path), f"{path} to be deleted")
    assert cluster.get(f"/api/v1/namespaces/{ns}") is not None
    assert not d.kubelet.errors

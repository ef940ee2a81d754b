"""dshare's cluster objects installed into the test control plane as an operator would.

What the operator applies is what z2jh-values/manifests/ holds (rendered from the pure
builders of z2jh-values/dshare_manifests.py); every object must be accepted by the real
server. User namespaces are made as DShareKubeSpawner makes them.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from kube_cluster import REPO, KubeCluster

from dshare_hub.k8s.api import KubeApi

MANIFESTS = REPO / "z2jh-values" / "manifests"
HUB_NAMESPACE = "dshare"
USER_NAMESPACE_LABEL = "dshare.io/user-namespace"


def shipped_objects() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for path in sorted(Path(MANIFESTS).glob("*.yaml")):
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


def install(cluster: KubeCluster) -> list[dict[str, Any]]:
    """Apply the hub namespace and every shipped manifest, namespaces first; return once
    the API server enforces each admission policy (it loads them a moment after they are
    stored, and a test that ran before would see them let anything through)."""
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": HUB_NAMESPACE}})
    # The hub's ServiceAccount comes with the z2jh chart; dshare's ClusterRoleBinding names it.
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "hub", "namespace": HUB_NAMESPACE},
        }
    )
    objects = shipped_objects()
    objects.sort(key=lambda obj: obj["kind"] != "Namespace")
    applied = [cluster.apply(obj) for obj in objects]
    probe_ns = user_namespace(cluster, "dshare-u-admission-probe")
    broker = cluster.token_for(HUB_NAMESPACE, "dshare-uis")
    probes = {
        "dshare-deny-podspecpatch": (
            f"/apis/argoproj.io/v1alpha1/namespaces/{probe_ns}/workflows",
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Workflow",
                "metadata": {"generateName": "probe-"},
                "spec": {"entrypoint": "m", "podSpecPatch": "{}", "templates": [{"name": "m"}]},
            },
            None,
        ),
        "dshare-reserved-pod-labels": (
            f"/api/v1/namespaces/{probe_ns}/pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "probe", "labels": {"component": "singleuser-server"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
            None,
        ),
        "dshare-broker-scope": (
            f"/api/v1/namespaces/{probe_ns}/persistentvolumeclaims",
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "probe", "labels": {"dshare.io/owner-org": "UiO"}},
                "spec": {
                    "accessModes": ["ReadOnlyMany"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
            broker,
        ),
    }
    for policy, (path, body, token) in probes.items():
        cluster.wait_for(
            lambda path=path, body=body, token=token, policy=policy: (
                policy
                in cluster.request("POST", f"{path}?dryRun=All", body, token=token)[1].get(
                    "message", ""
                )
            ),
            30,
            f"admission policy {policy} to be enforced",
        )
    return applied


def user_namespace(cluster: KubeCluster, name: str) -> str:
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {USER_NAMESPACE_LABEL: "true"}},
        }
    )
    return name


async def spawn_rbac(hub: KubeApi, *, user: str, org: str, namespace: str) -> str:
    """What DShareKubeSpawner makes in the user's namespace at every spawn, made by its own
    method (with its default settings) over the hub's token; returns the account's name."""
    from dshare_hub.spawner.base import Identity
    from dshare_hub.spawner.kube import DShareKubeSpawner

    traits = DShareKubeSpawner.class_traits()
    stand_in = SimpleNamespace(
        dshare_object_name=f"dshare-{user}",
        namespace=namespace,
        _kube=lambda: hub,
        broker_account_template=traits["broker_account_template"].default_value,
        broker_namespace=traits["broker_namespace"].default_value,
    )
    await DShareKubeSpawner.dshare_ensure_rbac(stand_in, Identity(user, org, ("scientist",)))  # type: ignore[arg-type]
    return stand_in.dshare_object_name

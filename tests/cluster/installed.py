"""dshare's cluster objects installed into the test control plane as an operator would.

What the operator applies is what z2jh-values/manifests/ holds (rendered from the pure
builders of z2jh-values/dshare_manifests.py); every object must be accepted by the real
server. User namespaces are made as DShareKubeSpawner makes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from kube_cluster import REPO, KubeCluster

MANIFESTS = REPO / "z2jh-values" / "manifests"
HUB_NAMESPACE = "dshare"
USER_NAMESPACE_LABEL = "dshare.io/user-namespace"


def shipped_objects() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for path in sorted(Path(MANIFESTS).glob("*.yaml")):
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


def install(cluster: KubeCluster) -> list[dict[str, Any]]:
    """Apply the hub namespace and every shipped manifest; namespaces first."""
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": HUB_NAMESPACE}})
    objects = shipped_objects()
    objects.sort(key=lambda obj: obj["kind"] != "Namespace")
    return [cluster.apply(obj) for obj in objects]


def user_namespace(cluster: KubeCluster, name: str) -> str:
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {USER_NAMESPACE_LABEL: "true"}},
        }
    )
    return name

"""What the cluster suites send: the smallest Workflow and pod, a pod that kwok runs, and
the HTTP status an API call ends with (the server's answer is what the tests assert)."""

from __future__ import annotations

from typing import Any

from kube_cluster import KubeCluster
from kubernetes_asyncio.client.exceptions import ApiException


def workflow(namespace: str | None = None, **spec: Any) -> dict[str, Any]:
    """A one-step Workflow; `spec` adds or replaces top-level spec fields."""
    metadata: dict[str, Any] = {"generateName": "wf-"}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": metadata,
        "spec": {
            "entrypoint": "main",
            "templates": [{"name": "main", "container": {"image": "x", "command": ["true"]}}],
            **spec,
        },
    }


def pod(name: str, namespace: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {"containers": [{"name": "main", "image": "never-pulled"}]},
    }


def running_pod(cluster: KubeCluster, name: str, namespace: str) -> dict[str, Any]:
    """Apply `pod(name, namespace)` as admin and wait until kwok has it Running."""
    cluster.apply(pod(name, namespace))
    path = f"/api/v1/namespaces/{namespace}/pods/{name}"
    cluster.wait_for(
        lambda: (cluster.get(path) or {}).get("status", {}).get("phase") == "Running",
        30,
        f"pod {namespace}/{name} to run",
    )
    return cluster.get(path) or {}


async def status_of(call: Any) -> int:
    """200 when the awaited API call succeeds, else the status the server refused it with."""
    try:
        await call
    except ApiException as exc:
        return int(exc.status)
    return 200

"""dshare's admission policies on the real API server: what they promise to refuse, refused.

The broker's scope policy is attacked in test_broker_mounts.py; here, podSpecPatch (which
would let a workflow rewrite its own pods) and the server label that NetworkPolicies
trust, which no one but the hub may put on a pod in a user namespace, also not through a
Workflow's pod metadata.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from kube_cluster import KubeCluster

from dshare_hub.k8s.api import KubeApi

from .bodies import pod, workflow
from .installed import HUB_NAMESPACE, install, user_namespace

AsToken = Callable[[str, str], KubeApi]
pytestmark = pytest.mark.asyncio

NS = "dshare-u-ada"
SERVER_LABEL = {"component": "singleuser-server"}


@pytest.fixture(scope="module")
def ready(cluster: KubeCluster) -> KubeCluster:
    install(cluster)
    user_namespace(cluster, NS)
    return cluster


def _post_workflow(cluster: KubeCluster, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return cluster.request("POST", f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/workflows", body)


@pytest.mark.parametrize(
    "where",
    [
        {"podSpecPatch": '{"hostNetwork": true}'},
        {"templateDefaults": {"podSpecPatch": '{"hostNetwork": true}'}},
    ],
    ids=["spec", "templateDefaults"],
)
async def test_pod_spec_patch_is_refused_even_for_cluster_admin(
    ready: KubeCluster, where: dict[str, Any]
) -> None:
    status, body = _post_workflow(ready, workflow(NS, **where))
    assert status in (403, 422), body
    assert "podSpecPatch is not allowed in dshare clusters" in body["message"]
    templates = [
        {
            "name": "main",
            "podSpecPatch": '{"hostNetwork": true}',
            "container": {"image": "x", "command": ["true"]},
        }
    ]
    status, body = _post_workflow(ready, workflow(NS, templates=templates))
    assert "podSpecPatch is not allowed" in body.get("message", ""), (status, body)
    # The same workflow without it is accepted: the policy refuses the field, not workflows.
    status, body = _post_workflow(ready, workflow(NS))
    assert status == 201, body


async def test_only_the_hub_may_label_a_pod_as_a_users_server(
    ready: KubeCluster, as_token: AsToken
) -> None:
    status, body = ready.request(
        "POST", f"/api/v1/namespaces/{NS}/pods", pod("fake", NS, SERVER_LABEL)
    )
    assert status in (403, 422), body
    assert "only JupyterHub may create pods labelled component=singleuser-server" in body["message"]
    hub = as_token(HUB_NAMESPACE, "hub")
    assert await hub.create(pod("jupyter-ada", NS, SERVER_LABEL)) is True
    await hub.delete("Pod", "jupyter-ada", NS)
    # Other labels stay free: the policy reserves the one the NetworkPolicies grant on.
    status, body = ready.request(
        "POST", f"/api/v1/namespaces/{NS}/pods", pod("plain", NS, {"a": "b"})
    )
    assert status == 201, body


async def test_a_workflow_cannot_give_its_pods_the_servers_label(ready: KubeCluster) -> None:
    status, body = _post_workflow(ready, workflow(NS, podMetadata={"labels": SERVER_LABEL}))
    assert status == 201, body
    name = body["metadata"]["name"]
    deadline = time.monotonic() + 90
    wf: dict[str, Any] = {}
    while time.monotonic() < deadline:
        wf = ready.get(f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/workflows/{name}") or {}
        if (wf.get("status") or {}).get("phase") in ("Failed", "Error"):
            break
        time.sleep(0.5)
    assert wf["status"]["phase"] in ("Failed", "Error"), wf.get("status")
    messages = " ".join(n.get("message") or "" for n in wf["status"].get("nodes", {}).values())
    assert "only JupyterHub may create pods labelled" in messages + wf["status"].get("message", "")
    pods = ready.get(f"/api/v1/namespaces/{NS}/pods?labelSelector=component=singleuser-server")
    assert (pods or {}).get("items") == []

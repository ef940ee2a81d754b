"""A scientist's per-user token, from where the scientist stands: the token in their pod.

The hub makes the user's ServiceAccount, Role and RoleBinding with its own ClusterRole
(as DShareKubeSpawner does at every spawn) and requests the token; then every call the
scientist could make with it goes to the real API server. DESIGN.md boundary 5: only its
own namespace, reading workflows and pods; no pod log (a job that reads leased data could
print it there, past the output gate), no pod, no workflow, no Secret, no volume.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kube_cluster import KubeCluster
from kubernetes_asyncio import client

from dshare_hub.k8s import objects
from dshare_hub.k8s.api import KubeApi

from .bodies import pod, running_pod, status_of, workflow
from .conftest import api_config
from .installed import HUB_NAMESPACE, install, spawn_rbac, user_namespace

AsToken = Callable[[str, str], KubeApi]
pytestmark = pytest.mark.asyncio

NS = "dshare-u-ulla"
OTHER_NS = "dshare-u-otto"
NAME = "dshare-ulla"


@pytest.fixture(scope="module")
def ready(cluster: KubeCluster) -> KubeCluster:
    install(cluster)
    user_namespace(cluster, NS)
    user_namespace(cluster, OTHER_NS)
    return cluster


async def _spawn_rbac(hub: KubeApi) -> None:
    await spawn_rbac(hub, user="ulla", org="UiO", namespace=NS)


async def _user_token(hub: KubeApi) -> str:
    issued = await hub.request_token(
        NAME, NS, objects.make_token_request(audiences=[], expiration_seconds=3600)
    )
    return str(issued["status"]["token"])


async def test_the_hub_can_make_the_users_rights_at_every_spawn(
    ready: KubeCluster, as_token: AsToken
) -> None:
    hub = as_token(HUB_NAMESPACE, "hub")
    await _spawn_rbac(hub)
    # A second spawn replaces the Role and RoleBinding: the server lets the hub do so only
    # because it holds every right the Role grants.
    await _spawn_rbac(hub)
    role = ready.get(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/roles/{NAME}") or {}
    assert role["rules"] == objects.USER_ROLE_RULES


async def test_the_users_token_reads_its_own_workflows_and_pods_and_nothing_else(
    ready: KubeCluster, as_token: AsToken
) -> None:
    hub = as_token(HUB_NAMESPACE, "hub")
    await _spawn_rbac(hub)
    token = await _user_token(hub)
    # A pod of the user's (as a broker-submitted job would be), running on the kwok node:
    # it has a log the server could serve, so refusing it is RBAC's doing.
    running_pod(ready, "job-1", NS)
    async with client.ApiClient(api_config(ready, token)) as api_client:
        core = client.CoreV1Api(api_client)
        custom = client.CustomObjectsApi(api_client)
        wf = ("argoproj.io", "v1alpha1")
        allowed = {
            "list own workflows": custom.list_namespaced_custom_object(*wf, NS, "workflows"),
            "list own pods": core.list_namespaced_pod(NS),
            "read own pod": core.read_namespaced_pod("job-1", NS),
        }
        for what, call in allowed.items():
            assert await status_of(call) == 200, what
        refused = {
            # A job that reads leased data can write it to its stdout (/proc/1/fd/1): the
            # pod's log would carry it past the output gate. Job logs reach the scientist
            # only as gated outputs, in the home at .dshare/runs/<run_id>/logs/<job>.log.
            "read a pod's log": core.read_namespaced_pod_log("job-1", NS, container="main"),
            "create a workflow that mounts a claim": custom.create_namespaced_custom_object(
                *wf,
                NS,
                "workflows",
                workflow(
                    NS,
                    volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "dshare-any"}}],
                ),
            ),
            "delete workflows": custom.delete_collection_namespaced_custom_object(
                *wf, NS, "workflows"
            ),
            "create a pod": core.create_namespaced_pod(NS, pod("mine", NS)),
            "delete a pod": core.delete_namespaced_pod("job-1", NS),
            "exec into a pod": core.connect_get_namespaced_pod_exec(
                "job-1", NS, command=["sh"], stdout=True
            ),
            "list Secrets": core.list_namespaced_secret(NS),
            "read the token Secret": core.read_namespaced_secret("dshare-token", NS),
            "list ConfigMaps": core.list_namespaced_config_map(NS),
            "list claims": core.list_namespaced_persistent_volume_claim(NS),
            "create a claim": core.create_namespaced_persistent_volume_claim(
                NS,
                {
                    "metadata": {"name": "grab"},
                    "spec": {
                        "accessModes": ["ReadOnlyMany"],
                        "volumeName": "dshare-any",
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                },
            ),
            "list PersistentVolumes": core.list_persistent_volume(),
            "list another user's pods": core.list_namespaced_pod(OTHER_NS),
            "list another user's workflows": custom.list_namespaced_custom_object(
                *wf, OTHER_NS, "workflows"
            ),
            "list pods everywhere": core.list_pod_for_all_namespaces(),
            "list namespaces": core.list_namespace(),
            "list nodes": core.list_node(),
            "read the broker's Secrets": core.list_namespaced_secret("dshare-secrets-uio"),
            "mint a token for its account": core.create_namespaced_service_account_token(
                NAME, NS, {"spec": {"expirationSeconds": 3600}}
            ),
            "widen its own Role": client.RbacAuthorizationV1Api(api_client).patch_namespaced_role(
                NAME, NS, {"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}
            ),
        }
        for what, call in refused.items():
            assert await status_of(call) == 403, what

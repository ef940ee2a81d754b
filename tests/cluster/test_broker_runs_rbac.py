"""Who may submit and follow a user's runs on the real API server: the user's own org
broker, in that user's namespace only (the binding the hub makes at every spawn).

A job's log, and the workflow's status, may carry what a run computed from another org's
data: another org's broker reads neither, and submits nothing there. The user's token
submits nothing at all (test_user_token.py). This is the authorization of the broker's
own submission (test_trusted_submission.py).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kube_cluster import POD_LOG_LINE, KubeCluster
from kubernetes_asyncio import client

from dshare_hub.k8s.api import KubeApi

from .bodies import running_pod, status_of, workflow
from .conftest import api_config
from .installed import HUB_NAMESPACE, install, spawn_rbac, user_namespace

AsToken = Callable[[str, str], KubeApi]
pytestmark = pytest.mark.asyncio

UIO_USER, UIO_NS = "rita", "dshare-u-rita"
UIS_USER, UIS_NS = "sam", "dshare-u-sam"
WF = ("argoproj.io", "v1alpha1")


@pytest.fixture(scope="module")
def ready(cluster: KubeCluster) -> KubeCluster:
    install(cluster)
    user_namespace(cluster, UIO_NS)
    user_namespace(cluster, UIS_NS)
    return cluster


async def test_only_the_users_own_org_broker_runs_and_follows_jobs_there(
    ready: KubeCluster, as_token: AsToken
) -> None:
    hub = as_token(HUB_NAMESPACE, "hub")
    await spawn_rbac(hub, user=UIO_USER, org="UiO", namespace=UIO_NS)
    await spawn_rbac(hub, user=UIS_USER, org="UiS", namespace=UIS_NS)
    running_pod(ready, "job", UIO_NS)
    uio = ready.token_for(HUB_NAMESPACE, "dshare-uio")
    uis = ready.token_for(HUB_NAMESPACE, "dshare-uis")
    async with (
        client.ApiClient(api_config(ready, uio)) as as_uio,
        client.ApiClient(api_config(ready, uis)) as as_uis,
    ):
        own = client.CustomObjectsApi(as_uio)
        created = await own.create_namespaced_custom_object(*WF, UIO_NS, "workflows", workflow())
        name = created["metadata"]["name"]
        assert (
            await status_of(own.get_namespaced_custom_object(*WF, UIO_NS, "workflows", name)) == 200
        )
        stop = {"spec": {"shutdown": "Terminate"}}
        assert (
            await status_of(
                own.patch_namespaced_custom_object(
                    *WF,
                    UIO_NS,
                    "workflows",
                    name,
                    stop,
                    _content_type="application/merge-patch+json",
                )
            )
            == 200
        )
        log = await client.CoreV1Api(as_uio).read_namespaced_pod_log(
            "job", UIO_NS, container="main"
        )
        assert POD_LOG_LINE in log

        other = client.CustomObjectsApi(as_uis)
        refused = {
            "another org's broker submits": other.create_namespaced_custom_object(
                *WF, UIO_NS, "workflows", workflow()
            ),
            "...reads the workflow": other.get_namespaced_custom_object(
                *WF, UIO_NS, "workflows", name
            ),
            "...lists workflows": other.list_namespaced_custom_object(*WF, UIO_NS, "workflows"),
            "...reads the job's log": client.CoreV1Api(as_uis).read_namespaced_pod_log(
                "job", UIO_NS, container="main"
            ),
            "a broker anywhere else": own.create_namespaced_custom_object(
                *WF, "default", "workflows", workflow()
            ),
            "a broker in another org's user's namespace": own.list_namespaced_custom_object(
                *WF, UIS_NS, "workflows"
            ),
            "a broker everywhere": own.list_cluster_custom_object(*WF, "workflows"),
            "a broker creating pods": client.CoreV1Api(as_uio).create_namespaced_pod(
                UIO_NS,
                {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
            ),
        }
        for what, call in refused.items():
            assert await status_of(call) == 403, what
        # The UiS broker does hold these rights in its own user's namespace.
        assert await status_of(other.list_namespaced_custom_object(*WF, UIS_NS, "workflows")) == 200

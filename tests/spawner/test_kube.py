"""DShareKubeSpawner with KubeSpawner's own client pointed at the API server double.

The double is not a cluster: pods are not scheduled, so the test stops where KubeSpawner
would create the pod and wait for it; it exercises everything before (RBAC, token, the
pod manifest) and delete_forever.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import pytest_asyncio
from k8s.apiserver_double import ApiServerDouble
from k8s.checks import assert_pod_is_locked_down, assert_role_is_narrow, assert_valid
from kubernetes_asyncio.config import kube_config

from dshare_hub.spawner.base import DShareSpawnError
from dshare_hub.spawner.kube import DShareKubeSpawner

from .conftest import TOKEN, BrokerDouble, make_hub, make_user

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ApiServerDouble]:
    double = ApiServerDouble()
    await double.start()
    # KubeSpawner loads a kubeconfig when not in a cluster; point it at the double.
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: d\n"
        f"clusters: [{{name: d, cluster: {{server: '{double.url}'}}}}]\n"
        "contexts: [{name: d, context: {cluster: d, user: d}}]\n"
        "users: [{name: d, user: {token: not-a-real-token}}]\n"
    )
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(config))
    yield double
    await double.stop()


def _spawner(cluster: ApiServerDouble, broker: BrokerDouble, **kw: Any) -> DShareKubeSpawner:
    return DShareKubeSpawner(
        user=kw.pop("user", make_user()),
        hub=make_hub(),
        api_token=TOKEN,
        hub_url=broker.url,
        k8s_api_host=cluster.url,
        enable_user_namespaces=True,
        user_namespace_template="jhub-{username}",
        image="quay.io/jupyter/base-notebook:2025-01-01",
        uid=1000,
        cmd=["jupyterhub-singleuser"],
        **kw,
    )


async def _pod(spawner: DShareKubeSpawner) -> dict[str, Any]:
    pod = await spawner.get_pod_manifest()
    out: dict[str, Any] = spawner.api.api_client.sanitize_for_serialization(pod)
    return out


async def test_spawn_makes_rbac_and_a_locked_down_pod(
    cluster: ApiServerDouble, seeded: BrokerDouble
) -> None:
    seeded.mounts = {
        "L1": {
            "lease_id": "L1",
            "claim_name": "dshare-l1-s1",
            "namespace": "jhub-ann",
            "expires_at": "x",
        }
    }
    spawner = _spawner(cluster, seeded)
    await spawner.load_user_options()
    assert cluster.names("namespaces") == ["jhub-ann"]
    assert cluster.names("serviceaccounts") == ["jhub-ann/dshare-ann"]
    assert cluster.names("roles") == ["jhub-ann/dshare-ann"]
    assert cluster.names("rolebindings") == ["jhub-ann/dshare-ann", "jhub-ann/dshare-broker-runs"]
    role = cluster.get("roles", "dshare-ann", "jhub-ann")
    assert role is not None
    assert_role_is_narrow(role)
    # No pod logs: a job that read leased data could print it there, past the output gate.
    assert [r for r in role["rules"] if "pods/log" in r["resources"]] == []
    binding = cluster.get("rolebindings", "dshare-ann", "jhub-ann")
    assert binding is not None
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "dshare-ann", "namespace": "jhub-ann"}
    ]
    # The user's own org's broker (UiS) runs and follows the user's jobs here, no other.
    runs = cluster.get("rolebindings", "dshare-broker-runs", "jhub-ann")
    assert runs is not None
    assert runs["roleRef"]["name"] == "dshare-broker-runs"
    assert runs["subjects"] == [
        {"kind": "ServiceAccount", "name": "dshare-uis", "namespace": "dshare"}
    ]
    # Only the interactive lease was asked for as a session mount.
    assert seeded.bodies[0]["lease_ids"] == ["L1"]

    pod = await _pod(spawner)
    assert_valid(pod)
    assert_pod_is_locked_down(pod, token_path="/var/run/secrets/dshare")
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "dshare-ann"
    assert pod["metadata"]["labels"]["dshare.io/data-access"] == "interactive"
    assert pod["metadata"]["labels"]["dshare.io/org"] == "UiS"
    mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
    assert mounts["/home/jovyan/datasets/Weather"]["readOnly"] is True
    assert mounts["/home/jovyan/datasets/Census 2020"]["subPath"] == "Census 2020"
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert env["DSHARE_BROKER_URL"] == seeded.url + "services/dshare-uis/"
    assert env["DSHARE_ORG"] == "UiS"
    (init,) = spec["initContainers"]
    assert init["args"][1] == '{"Census 2020": ["a/b.csv", "c/"]}'


async def test_the_namespace_carries_the_labels_policies_trust(
    cluster: ApiServerDouble, seeded: BrokerDouble
) -> None:
    # the brokers' NetworkPolicies admit servers by their namespace's org, and Pod Security
    # baseline keeps job pods off the host network; the operator's own labels stay, but
    # cannot override dshare's
    spawner = _spawner(
        cluster,
        seeded,
        user_namespace_labels={
            "team": "x",
            "dshare.io/org": "UiO",
            "dshare.io/user-namespace": "no",
        },
    )
    await spawner.load_user_options()
    namespace = cluster.get("namespaces", "jhub-ann")
    assert namespace is not None
    assert namespace["metadata"]["labels"] == {
        "team": "x",
        "dshare.io/user-namespace": "true",
        "dshare.io/org": "UiS",
        "pod-security.kubernetes.io/enforce": "baseline",
    }


async def test_second_spawn_is_idempotent_and_restores_the_role(
    cluster: ApiServerDouble, seeded: BrokerDouble
) -> None:
    await _spawner(cluster, seeded).load_user_options()
    role = cluster.get("roles", "dshare-ann", "jhub-ann")
    assert role is not None
    role["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
    await _spawner(cluster, seeded).load_user_options()
    restored = cluster.get("roles", "dshare-ann", "jhub-ann")
    assert restored is not None
    assert_role_is_narrow(restored)
    assert cluster.calls("POST").count("POST /api/v1/namespaces/jhub-ann/serviceaccounts 409") == 1


async def test_transient_api_errors_are_retried(
    cluster: ApiServerDouble, seeded: BrokerDouble
) -> None:
    cluster.fail_next("POST", r"/serviceaccounts$", 500)
    cluster.fail_next("POST", r"/rolebindings$", 429)
    await _spawner(cluster, seeded).load_user_options()
    assert cluster.names("rolebindings") == ["jhub-ann/dshare-ann", "jhub-ann/dshare-broker-runs"]


async def test_without_a_claim_the_interactive_dataset_gets_its_skeleton(
    cluster: ApiServerDouble, seeded: BrokerDouble
) -> None:
    spawner = _spawner(cluster, seeded)
    await spawner.load_user_options()
    pod = await _pod(spawner)
    assert pod["metadata"]["labels"]["dshare.io/data-access"] == "skeleton"
    assert not [
        v
        for v in pod["spec"]["volumes"]
        if "persistentVolumeClaim" in v and v["name"].startswith("dshare")
    ]


async def test_refused_user_leaves_the_cluster_untouched(
    cluster: ApiServerDouble, seeded: BrokerDouble
) -> None:
    seeded.fail["leases"] = (403, {"code": "FORBIDDEN", "message": "no"})
    with pytest.raises(DShareSpawnError):
        await _spawner(cluster, seeded).load_user_options()
    with pytest.raises(DShareSpawnError):
        await _spawner(
            cluster, seeded, user=make_user(groups=("role:scientist",))
        ).load_user_options()
    assert cluster.requests == []


async def test_root_uid_is_refused(cluster: ApiServerDouble, seeded: BrokerDouble) -> None:
    spawner = _spawner(cluster, seeded)
    spawner.uid = 0
    await spawner.load_user_options()
    with pytest.raises(ValueError) as err:
        await spawner.get_pod_manifest()
    assert "run as uid 0 (root)" in str(err.value)


async def test_delete_forever_removes_the_users_objects(
    cluster: ApiServerDouble, seeded: BrokerDouble
) -> None:
    await _spawner(cluster, seeded).load_user_options()
    named = _spawner(cluster, seeded, delete_pvc=False)
    with mock.patch.object(DShareKubeSpawner, "name", "gpu"):
        await named.delete_forever()
    assert cluster.names("serviceaccounts") == ["jhub-ann/dshare-ann"]
    await _spawner(cluster, seeded, delete_pvc=False).delete_forever()
    for resource in ("serviceaccounts", "roles", "rolebindings"):
        assert cluster.names(resource) == [], resource
    # Again: everything is already gone, 404s are fine.
    await _spawner(cluster, seeded, delete_pvc=False).delete_forever()


async def test_stop_finishes_the_session_run(
    cluster: ApiServerDouble, seeded: BrokerDouble
) -> None:
    seeded.mounts = {"L1": {"lease_id": "L1", "claim_name": "c", "namespace": "jhub-ann"}}
    spawner = _spawner(cluster, seeded)
    await spawner.load_user_options()
    assert spawner.get_state()["dshare_session_run"] == "run-session-1"
    restored = _spawner(cluster, seeded)
    restored.load_state(spawner.get_state())
    await restored.dshare_close_session(restored.dshare_identity(), "run-session-1")
    assert seeded.calls[-1] == "POST /services/dshare-uis/api/v1/runs/run-session-1/finish"
    assert seeded.bodies[-1] == {"outcome": "succeeded"}

"""KubeMaterializer against the API server double: create, idempotency, release, rebuild."""

from __future__ import annotations

import base64
import json
import secrets

import pytest

from dshare_hub.broker.materialize import MaterializeError, Materializer
from dshare_hub.k8s.api import KubeApi
from dshare_hub.k8s.materialize import KubeMaterializer

from .apiserver_double import ApiServerDouble

pytestmark = pytest.mark.asyncio

ASSET = {
    "id": "weather",
    "owner_org": "UiO",
    "storage_type": "azurefile",
    "name": "Weather",
    "policy": {"release": {"mode": "review"}},
    "columns": [{"name": "station", "type": "string", "tags": ["identifier"]}],
}
LEASE = {"id": "L1", "expires_at": "2030-01-01T00:00:00Z"}


def _details() -> dict[str, str]:
    return {"account_name": "acct", "account_key": secrets.token_urlsafe(32), "share_name": "s"}


@pytest.fixture
def materializer(kube_api: KubeApi) -> KubeMaterializer:
    return KubeMaterializer(
        kube_api, hub_namespace="jhub", secret_namespace="dshare-secrets-uio", owner_org="UiO"
    )


async def test_it_is_a_materializer(materializer: KubeMaterializer) -> None:
    assert isinstance(materializer, Materializer)


async def test_materialize_makes_secret_volume_and_claim(
    materializer: KubeMaterializer, double: ApiServerDouble
) -> None:
    details = _details()
    mount = await materializer.materialize(
        asset=ASSET, details=details, lease=LEASE, run_id="R1", user="Ann@uis.no"
    )
    namespace = materializer.namespace_for("Ann@uis.no")
    assert namespace.startswith("jhub-ann")
    assert mount == {
        "lease_id": "L1",
        "claim_name": "dshare-l1-r1",
        "namespace": namespace,
        "expires_at": "2030-01-01T00:00:00Z",
        # The owner's release policy, which the user's broker writes into the gate step.
        "dataset_id": "weather",
        "dataset_name": "Weather",
        "release": {"mode": "review"},
        # The schema's names and tags, for the gate's disclosure checks (types left out).
        "columns": [{"name": "station", "tags": ["identifier"]}],
    }
    assert double.names("secrets") == ["dshare-secrets-uio/dshare-l1-r1"]
    assert double.names("persistentvolumes") == ["dshare-l1-r1"]
    assert double.names("persistentvolumeclaims") == [f"{namespace}/dshare-l1-r1"]
    # Secret first, claim last: a claim never exists without its volume and credentials.
    assert [c.split()[1].split("/")[-1] for c in double.calls("POST")] == [
        "secrets",
        "persistentvolumes",
        "persistentvolumeclaims",
    ]
    stored = double.get("secrets", "dshare-l1-r1", "dshare-secrets-uio")
    assert stored is not None
    assert (
        base64.b64decode(stored["data"]["azurestorageaccountkey"]).decode()
        == details["account_key"]
    )
    for resource in ("persistentvolumes", "persistentvolumeclaims"):
        for (r, _ns, _n), obj in double.objects.items():
            if r == resource:
                assert details["account_key"] not in json.dumps(obj)
    assert details["account_key"] not in json.dumps(mount)


async def test_materialize_again_is_idempotent(
    materializer: KubeMaterializer, double: ApiServerDouble
) -> None:
    first = await materializer.materialize(
        asset=ASSET, details=_details(), lease=LEASE, run_id="R1", user="ann"
    )
    second = await materializer.materialize(
        asset=ASSET, details=_details(), lease=LEASE, run_id="R1", user="ann"
    )
    assert first == second
    assert len(double.names("persistentvolumes")) == 1


async def test_transient_failures_are_retried(
    materializer: KubeMaterializer, double: ApiServerDouble
) -> None:
    double.fail_next("POST", r"/persistentvolumes$", 500)
    double.fail_next("POST", r"/persistentvolumeclaims$", 429)
    await materializer.materialize(
        asset=ASSET, details=_details(), lease=LEASE, run_id="R1", user="ann"
    )
    assert double.names("persistentvolumeclaims") == ["jhub-ann/dshare-l1-r1"]


async def test_bad_details_are_refused_before_anything_is_created(
    materializer: KubeMaterializer, double: ApiServerDouble
) -> None:
    with pytest.raises(MaterializeError) as err:
        await materializer.materialize(
            asset=ASSET, details={"account_name": "a"}, lease=LEASE, run_id="R1", user="ann"
        )
    assert err.value.code == "STORAGE_INVALID"
    assert err.value.message == (
        "asset 'weather': storage details for type 'azurefile' need a non-empty string "
        "'account_key'; ask the dataset's owner to update its storage details"
    )
    assert double.requests == []


async def test_api_failure_is_a_clear_error_without_details(
    materializer: KubeMaterializer, double: ApiServerDouble
) -> None:
    details = _details()
    double.fail_next("POST", r"/persistentvolumes$", 403)
    with pytest.raises(MaterializeError) as err:
        await materializer.materialize(
            asset=ASSET, details=details, lease=LEASE, run_id="R1", user="ann"
        )
    assert err.value.code == "STORAGE_UNAVAILABLE"
    assert err.value.message == (
        "could not create the volume for lease 'L1' (Kubernetes API HTTP 403 on create "
        "PersistentVolume dshare-l1-r1); try again, and if it persists ask your administrator"
    )
    assert details["account_key"] not in str(err.value)


async def test_release_by_run_or_lease_and_list_from_labels(
    materializer: KubeMaterializer, double: ApiServerDouble
) -> None:
    for run in ("R1", "R2"):
        await materializer.materialize(
            asset=ASSET, details=_details(), lease=LEASE, run_id=run, user="ann"
        )
    nfs = {**ASSET, "id": "climate", "storage_type": "nfs"}
    await materializer.materialize(
        asset=nfs,
        details={"server": "nfs", "path": "/x"},
        lease={"id": "L2", "expires_at": "2030-01-02T00:00:00Z"},
        run_id="R1",
        user="bob",
    )
    # A restarted broker: a new materializer over the same cluster sees the same mounts.
    fresh = KubeMaterializer(
        materializer.api,
        hub_namespace="jhub",
        secret_namespace="dshare-secrets-uio",
        owner_org="UiO",
    )
    listed = await fresh.list_materialized()
    assert [(m["lease_id"], m["run_id"], m["user"]) for m in listed] == [
        ("L1", "R1", "ann"),
        ("L1", "R2", "ann"),
        ("L2", "R1", "bob"),
    ]
    assert listed[2] == {
        "lease_id": "L2",
        "run_id": "R1",
        "owner_org": "UiO",
        "user": "bob",
        "claim_name": "dshare-l2-r1",
        "namespace": "jhub-bob",
        "expires_at": "2030-01-02T00:00:00Z",
    }
    assert await fresh.release(run_id="R2") == 1
    assert await fresh.release(lease_id="L1") == 1
    assert await fresh.release(lease_id="L1") == 0
    assert double.names("secrets") == ["dshare-secrets-uio/dshare-l2-r1"]
    assert double.names("persistentvolumes") == ["dshare-l2-r1"]
    assert double.names("persistentvolumeclaims") == ["jhub-bob/dshare-l2-r1"]


async def test_release_tolerates_objects_already_gone(
    materializer: KubeMaterializer, double: ApiServerDouble
) -> None:
    await materializer.materialize(
        asset=ASSET, details=_details(), lease=LEASE, run_id="R1", user="ann"
    )
    # Someone deleted the claim by hand between list and delete: 404 is fine.
    double.fail_next("DELETE", r"/persistentvolumeclaims/", 404)
    assert await materializer.release(run_id="R1") == 1
    assert double.names("persistentvolumes") == []


async def test_release_needs_a_selector(materializer: KubeMaterializer) -> None:
    with pytest.raises(ValueError) as err:
        await materializer.release()
    assert str(err.value) == "release needs a lease_id, a run_id or both"

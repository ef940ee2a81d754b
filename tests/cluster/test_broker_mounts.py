"""An org broker's mounts on the real API server, with the broker's own token and RBAC.

The broker materializes a lease for a run as Secret + PersistentVolume + claim; the
controller-manager binds the claim to the pre-bound volume; release and the reaper delete
all three. Then the broker is the attacker: everything its manifests do not grant, and
everything another organization owns, is refused by the server itself.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kube_cluster import KubeCluster

from dshare_hub.broker.reaper import Reaper
from dshare_hub.k8s.api import KubeApi, KubeApiError
from dshare_hub.k8s.materialize import KubeMaterializer

from .installed import HUB_NAMESPACE, install, user_namespace

AsToken = Callable[[str, str], KubeApi]
pytestmark = pytest.mark.asyncio

USER = "ann"
USER_NS = "dshare-u-ann"


@pytest.fixture(scope="module")
def installed(cluster: KubeCluster) -> KubeCluster:
    install(cluster)
    user_namespace(cluster, USER_NS)
    user_namespace(cluster, "dshare-u-bob")
    return cluster


def _details(kind: str) -> dict[str, str]:
    key = secrets.token_urlsafe(24)
    return {
        "s3": {
            "bucket": "b",
            "region": "eu-north-1",
            "access_key_id": "AKIA",
            "secret_access_key": key,
        },
        "azurefile": {"account_name": "acct", "account_key": key, "share_name": "share"},
        "gcs": {"bucket": "bucket", "service_account_json": json.dumps({"k": key})},
        "nfs": {"server": "nfs.uis.example", "path": "/export/corpus"},
        "local": {"path": "/srv/corpus", "node": "kwok-node-0"},
    }[kind]


def _broker(as_token: AsToken, org: str) -> KubeMaterializer:
    return KubeMaterializer(
        as_token(HUB_NAMESPACE, f"dshare-{org.lower()}"),
        namespace_template="dshare-u-{username}",
        hub_namespace=HUB_NAMESPACE,
        secret_namespace=f"dshare-secrets-{org.lower()}",
        owner_org=org,
    )


def _wait(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def _mounts_of(broker: KubeMaterializer, lease_id: str) -> list[str]:
    return [m["claim_name"] for m in await broker.list_materialized() if m["lease_id"] == lease_id]


def _asset(kind: str, org: str = "UiS") -> dict[str, str]:
    return {"id": f"{org.lower()}-corpus-{kind}", "owner_org": org, "storage_type": kind}


def _lease(lease_id: str) -> dict[str, str]:
    return {"id": lease_id, "expires_at": "2031-01-01T00:00:00Z"}


@pytest.mark.parametrize("kind", ["s3", "azurefile", "gcs", "nfs", "local"])
async def test_a_mount_is_bound_by_the_controller_and_released_whole(
    installed: KubeCluster, as_token: AsToken, kind: str
) -> None:
    broker = _broker(as_token, "UiS")
    lease_id = f"L-{kind}"
    details = _details(kind)
    mount = await broker.materialize(
        asset=_asset(kind), details=details, lease=_lease(lease_id), run_id="R1", user=USER
    )
    name = mount["claim_name"]
    assert mount["namespace"] == USER_NS
    claim_path = f"/api/v1/namespaces/{USER_NS}/persistentvolumeclaims/{name}"

    def bound() -> bool:
        claim = installed.get(claim_path) or {}
        return (claim.get("status") or {}).get("phase") == "Bound"

    _wait(bound, f"claim {name} to be Bound by the controller-manager")
    volume = installed.get(f"/api/v1/persistentvolumes/{name}") or {}
    assert volume["status"]["phase"] == "Bound"
    assert volume["spec"]["claimRef"]["namespace"] == USER_NS
    assert volume["spec"]["accessModes"] == ["ReadOnlyMany"]
    secret = installed.get(f"/api/v1/namespaces/dshare-secrets-uis/secrets/{name}")
    assert secret is not None
    # A credential reaches only the Secret, never the claim in the user's namespace.
    claim_text = str(installed.get(claim_path))
    assert all(value not in claim_text for value in details.values() if len(value) > 8)

    assert await _mounts_of(broker, lease_id) == [name]
    assert await broker.release(lease_id=lease_id) == 1
    _wait(lambda: installed.get(claim_path) is None, "the claim to be gone")
    _wait(lambda: installed.get(f"/api/v1/persistentvolumes/{name}") is None, "the volume to go")
    assert installed.get(f"/api/v1/namespaces/dshare-secrets-uis/secrets/{name}") is None
    assert await _mounts_of(broker, lease_id) == []


async def test_a_restarted_brokers_reaper_releases_mounts_the_ledger_no_longer_backs(
    installed: KubeCluster, as_token: AsToken, tmp_path: Path
) -> None:
    from dshare_hub.ledger.embedded import EmbeddedLedger

    first = _broker(as_token, "UiS")
    await first.materialize(
        asset=_asset("nfs"), details=_details("nfs"), lease=_lease("L-gone"), run_id="R9", user=USER
    )
    # A new broker process: nothing in memory, the same cluster and its own namespace.
    restarted = _broker(as_token, "UiS")
    ledger = EmbeddedLedger.open(tmp_path / "ledger.db", tmp_path / "ids", "UiS")
    try:
        report = await Reaper(org="UiS", ledger=ledger, materializer=restarted).reap_once()
    finally:
        await ledger.close()
    # Every mount the ledger does not back goes, this one among them (other suites' mounts
    # on this cluster are not on this test's ledger either).
    assert report.released_mounts >= 1
    assert await _mounts_of(restarted, "L-gone") == []


async def test_one_org_never_sees_or_releases_another_orgs_mounts(
    installed: KubeCluster, as_token: AsToken
) -> None:
    uis, uio = _broker(as_token, "UiS"), _broker(as_token, "UiO")
    mount = await uis.materialize(
        asset=_asset("s3"), details=_details("s3"), lease=_lease("L-x"), run_id="R1", user=USER
    )
    try:
        assert await _mounts_of(uis, "L-x") == [mount["claim_name"]]
        assert await _mounts_of(uio, "L-x") == []
        assert await uio.release(lease_id="L-x") == 0
        # UiO's broker trying UiS's objects directly: the server refuses every one.
        api = uio.api
        name = mount["claim_name"]
        for kind, ns in [
            ("Secret", "dshare-secrets-uis"),
            ("PersistentVolume", None),
            ("PersistentVolumeClaim", USER_NS),
        ]:
            with pytest.raises(KubeApiError) as refused:
                await api.delete(kind, name, ns)
            assert refused.value.status == 403, (kind, refused.value)
        with pytest.raises(KubeApiError) as refused:
            await api.read("Secret", name, "dshare-secrets-uis")
        assert refused.value.status == 403
        with pytest.raises(KubeApiError) as refused:
            await api.list("PersistentVolume", label_selector="app.kubernetes.io/managed-by=dshare")
        assert refused.value.status == 403
    finally:
        await uis.release(lease_id="L-x")


def _claim(namespace: str, org: str = "UiS") -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": "forged",
            "namespace": namespace,
            "labels": {"dshare.io/owner-org": org},
        },
        "spec": {
            "accessModes": ["ReadOnlyMany"],
            "storageClassName": "",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }


async def test_a_broker_is_refused_what_its_manifests_do_not_grant(
    installed: KubeCluster, as_token: AsToken
) -> None:
    api = as_token(HUB_NAMESPACE, "dshare-uis")
    refusals = {
        # claims outside user namespaces (admission policy)
        "claim in the hub namespace": _claim(HUB_NAMESPACE),
        "claim in kube-system": _claim("kube-system"),
        # another org's label on its own claim (admission policy)
        "claim labelled as UiO's": _claim(USER_NS, org="UiO"),
        # credentials anywhere but its own namespace (RBAC, then the policy)
        "Secret in a user namespace": {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "x",
                "namespace": USER_NS,
                "labels": {"dshare.io/owner-org": "UiS"},
            },
        },
        "Secret in UiO's namespace": {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "x",
                "namespace": "dshare-secrets-uio",
                "labels": {"dshare.io/owner-org": "UiS"},
            },
        },
        # a pod that could mount what it likes (no RBAC)
        "pod": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "x", "namespace": USER_NS},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
        },
    }
    for what, body in refusals.items():
        with pytest.raises(KubeApiError) as refused:
            await api.create(body)
        assert refused.value.status == 403, f"{what}: {refused.value}"
    # The policy's own words reach the caller, naming what to do.
    with pytest.raises(KubeApiError) as refused:
        await api.create(_claim("kube-system"))
    assert "only in user namespaces (dshare-u-*)" in refused.value.reason

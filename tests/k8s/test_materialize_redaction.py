"""On Kubernetes a PV leads straight to the storage: a dataset whose redaction policy hides
columns from the lessee is refused before anything is created, never mounted raw."""

from __future__ import annotations

import secrets

import pytest

from dshare_hub.broker.materialize import MaterializeError
from dshare_hub.demo.content import PAYMENT_COLUMNS, PAYMENTS_REDACTION
from dshare_hub.k8s.api import KubeApi
from dshare_hub.k8s.materialize import KubeMaterializer

from .apiserver_double import ApiServerDouble

pytestmark = pytest.mark.asyncio

ASSET = {
    "id": "uio-payments",
    "owner_org": "UiO",
    "storage_type": "azurefile",
    "name": "UiO mobile payments",
    "columns": PAYMENT_COLUMNS,
    "redaction": PAYMENTS_REDACTION,
    "policy": {"release": {"mode": "review"}},
}


def _details() -> dict[str, str]:
    return {"account_name": "acct", "account_key": secrets.token_urlsafe(32), "share_name": "s"}


@pytest.fixture
def materializer(kube_api: KubeApi) -> KubeMaterializer:
    return KubeMaterializer(
        kube_api, hub_namespace="jhub", secret_namespace="dshare-secrets-uio", owner_org="UiO"
    )


async def test_a_redacted_lease_creates_nothing(
    materializer: KubeMaterializer, double: ApiServerDouble
) -> None:
    lease = {"id": "L1", "lessee_org": "UiS", "expires_at": "2030-01-01T00:00:00Z"}
    with pytest.raises(MaterializeError) as info:
        await materializer.materialize(
            asset=ASSET, details=_details(), lease=lease, run_id="R1", user="ann"
        )
    assert (info.value.code, info.value.message) == (
        "REDACTION_UNAVAILABLE",
        "asset 'uio-payments' hides columns from UiS and the Kubernetes deployment cannot make "
        "redacted copies yet; nothing is mounted raw (run it on the embedded deployment, or "
        "ask the owner for a dataset without those columns)",
    )
    assert double.calls("POST") == []


async def test_the_owner_own_lease_is_mounted(
    materializer: KubeMaterializer, double: ApiServerDouble
) -> None:
    lease = {"id": "L2", "lessee_org": "UiO", "expires_at": "2030-01-01T00:00:00Z"}
    mount = await materializer.materialize(
        asset=ASSET, details=_details(), lease=lease, run_id="R2", user="ann"
    )
    assert mount["claim_name"] == "dshare-l2-r2"
    assert double.names("persistentvolumes") == ["dshare-l2-r2"]

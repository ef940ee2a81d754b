"""KubeApi against the API server double: status handling, idempotency and retries."""

from __future__ import annotations

import pytest

from dshare_hub.k8s import objects
from dshare_hub.k8s.api import KubeApi, KubeApiError, selector

from .apiserver_double import ApiServerDouble
from .conftest import SleepRecorder

pytestmark = pytest.mark.asyncio

SA_PATH = "/api/v1/namespaces/jhub-ann/serviceaccounts"


def _sa() -> dict:
    return objects.make_service_account(
        name="dshare-ann", namespace="jhub-ann", user="ann", org="UiS"
    )


async def test_create_is_idempotent_409_means_exists(
    kube_api: KubeApi, double: ApiServerDouble
) -> None:
    assert await kube_api.create(_sa()) is True
    assert await kube_api.create(_sa()) is False
    assert double.calls() == [f"POST {SA_PATH} 201", f"POST {SA_PATH} 409"]
    assert double.names("serviceaccounts") == ["jhub-ann/dshare-ann"]


async def test_create_with_replace_restores_a_widened_role(
    kube_api: KubeApi, double: ApiServerDouble
) -> None:
    role = objects.make_role(name="dshare-ann", namespace="jhub-ann", user="ann", org="UiS")
    widened = objects.make_role(name="dshare-ann", namespace="jhub-ann", user="ann", org="UiS")
    widened["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
    await kube_api.create(widened)
    assert await kube_api.create(role, replace=True) is False
    stored = double.get("roles", "dshare-ann", "jhub-ann")
    assert stored is not None and stored["rules"] == role["rules"]
    assert (
        double.calls()[-1]
        == "PUT /apis/rbac.authorization.k8s.io/v1/namespaces/jhub-ann/roles/dshare-ann 200"
    )


async def test_read_and_delete_treat_404_as_absent(kube_api: KubeApi) -> None:
    assert await kube_api.read("ServiceAccount", "dshare-ann", "jhub-ann") is None
    assert await kube_api.delete("ServiceAccount", "dshare-ann", "jhub-ann") is False
    await kube_api.create(_sa())
    read = await kube_api.read("ServiceAccount", "dshare-ann", "jhub-ann")
    assert read is not None and read["automountServiceAccountToken"] is False
    assert await kube_api.delete("ServiceAccount", "dshare-ann", "jhub-ann") is True


async def test_429_and_500_are_retried_with_backoff(
    kube_api: KubeApi, double: ApiServerDouble, sleeps: SleepRecorder
) -> None:
    double.fail_next("POST", SA_PATH, 500)
    double.fail_next("POST", SA_PATH, 429, headers={"Retry-After": "2"})
    assert await kube_api.create(_sa()) is True
    assert double.calls() == [f"POST {SA_PATH} 500", f"POST {SA_PATH} 429", f"POST {SA_PATH} 201"]
    assert len(sleeps.delays) == 2
    assert 0.05 <= sleeps.delays[0] <= 0.1  # jittered first backoff step
    assert sleeps.delays[1] == 2.0  # the server's Retry-After is honoured


async def test_retries_give_up_after_the_policy_with_the_status(
    kube_api: KubeApi, double: ApiServerDouble, sleeps: SleepRecorder
) -> None:
    double.fail_next("POST", SA_PATH, 503, times=10)
    with pytest.raises(KubeApiError) as err:
        await kube_api.create(_sa())
    assert err.value.status == 503
    assert str(err.value) == (
        "Kubernetes API refused to create ServiceAccount jhub-ann/dshare-ann: "
        "HTTP 503 injected HTTP 503"
    )
    assert len(double.requests) == 4 and len(sleeps.delays) == 3


async def test_client_errors_are_not_retried(kube_api: KubeApi, double: ApiServerDouble) -> None:
    double.fail_next("DELETE", SA_PATH, 403)
    with pytest.raises(KubeApiError) as err:
        await kube_api.delete("ServiceAccount", "dshare-ann", "jhub-ann")
    assert err.value.status == 403
    assert len(double.requests) == 1


async def test_invalid_body_gets_422_naming_the_problem(kube_api: KubeApi) -> None:
    body = _sa()
    body["automountServiceAccountToken"] = "no"
    with pytest.raises(KubeApiError) as err:
        await kube_api.create(body)
    assert err.value.status == 422
    assert "'no' is not of type 'boolean'" in err.value.reason


async def test_list_by_label_selector_across_namespaces(kube_api: KubeApi) -> None:
    await kube_api.create(_sa())
    other = objects.make_service_account(
        name="dshare-bob", namespace="jhub-bob", user="bob", org="UiO"
    )
    await kube_api.create(other)
    found = await kube_api.list("ServiceAccount", label_selector=selector({"dshare.io/org": "UiO"}))
    assert [o["metadata"]["name"] for o in found] == ["dshare-bob"]
    all_users = await kube_api.list(
        "ServiceAccount", label_selector="app.kubernetes.io/managed-by=dshare"
    )
    assert len(all_users) == 2


async def test_token_request_needs_the_service_account(
    kube_api: KubeApi, double: ApiServerDouble
) -> None:
    body = objects.make_token_request(audiences=["dshare"], expiration_seconds=3600)
    with pytest.raises(KubeApiError) as err:
        await kube_api.request_token("dshare-ann", "jhub-ann", body)
    assert err.value.status == 404
    await kube_api.create(_sa())
    result = await kube_api.request_token("dshare-ann", "jhub-ann", body)
    assert result["status"]["token"] == double.tokens[0]["token"]
    assert double.tokens[0]["expiration_seconds"] == 3600


async def test_unknown_kind_is_a_programming_error(kube_api: KubeApi) -> None:
    with pytest.raises(ValueError) as err:
        kube_api._method("create", "Deployment", "x")
    assert str(err.value) == "dshare does not manage objects of kind 'Deployment'"

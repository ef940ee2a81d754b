"""The thesis experiment's compiled DAG on the real Argo controller (pods simulated by kwok).

The leased corpora are mounted for the run by each owner's broker (KubeMaterializer with
its own token); the workflow is what dshare's compiler makes of listing 5.2; the controller
schedules its pods through the real API server and scheduler, and kwok plays each pod's
life as tests/support/kwok-stages.yaml says: a template labelled dshare.test/outcome=fail
fails, =hang runs until its deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kube_cluster import KubeCluster

from dshare_hub.k8s.api import KubeApi
from dshare_hub.k8s.materialize import KubeMaterializer
from dshare_server.workflow import CompileContext, compile_workflow, parse
from dshare_server.workflow.argo import job_states

from .installed import HUB_NAMESPACE, install, user_namespace

AsToken = Callable[[str, str], KubeApi]
pytestmark = pytest.mark.asyncio

USER = "thea"
NS = "dshare-u-thea"
LISTINGS = Path(__file__).resolve().parents[1] / "workflow" / "listings"
ORG_OF = {"uis": "UiS", "uio": "UiO", "uib": "UiB"}


@pytest.fixture(scope="module")
def user_ns(cluster: KubeCluster) -> str:
    install(cluster)
    user_namespace(cluster, NS)
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "dshare-thea", "namespace": NS},
        }
    )
    # The home volume KubeSpawner would have made (no provisioner here: a static one).
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": "home-thea"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "hostPath": {"path": "/nonexistent/home-thea"},
                "claimRef": {"namespace": NS, "name": "claim-thea"},
            },
        }
    )
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "claim-thea", "namespace": NS},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "volumeName": "home-thea",
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    )
    return NS


async def _claims_for(spec: Any, run_id: str, as_token: AsToken) -> dict[str, str]:
    claims = {}
    for volume_org, lease_id in _leases(spec).items():
        org = ORG_OF[volume_org]
        broker = KubeMaterializer(
            as_token(HUB_NAMESPACE, f"dshare-{org.lower()}"),
            namespace_template="dshare-u-{username}",
            hub_namespace=HUB_NAMESPACE,
            secret_namespace=f"dshare-secrets-{org.lower()}",
            owner_org=org,
        )
        mount = await broker.materialize(
            asset={"id": f"{volume_org}-corpus", "owner_org": org, "storage_type": "nfs"},
            details={"server": f"nfs.{volume_org}.example", "path": "/corpus"},
            lease={"id": lease_id, "expires_at": "2031-01-01T00:00:00Z"},
            run_id=run_id,
            user=USER,
        )
        claims[lease_id] = mount["claim_name"]
    return claims


def _leases(spec: Any) -> dict[str, str]:
    return {vol.name: vol.lease_id for job in spec.jobs for vol in job.volumes}


async def _compiled(run_id: str, as_token: AsToken, **overrides: Any) -> dict[str, Any]:
    spec = parse((LISTINGS / "listing_5_2.yaml").read_text(), leases=None)
    claims = await _claims_for(spec, run_id, as_token)
    ctx = CompileContext(
        user=USER,
        run_id=run_id,
        image="quay.io/jupyter/scipy-notebook:2025-01-06",
        home_claim="claim-thea",
        service_account="dshare-thea",
        claims=claims,
        namespace=NS,
        **overrides,
    )
    return compile_workflow(spec, ctx)


def _submit(cluster: KubeCluster, manifest: dict[str, Any]) -> str:
    # Strict field validation: the server refuses any field the schema of the Argo version
    # it runs (its CRD, from the same module as the controller) does not know.
    status, body = cluster.request(
        "POST",
        f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/workflows?fieldValidation=Strict",
        manifest,
    )
    assert status == 201, body
    return str(body["metadata"]["name"])


async def test_the_server_holds_compiled_workflows_to_the_running_argos_schema(
    cluster: KubeCluster, user_ns: str, as_token: AsToken
) -> None:
    manifest = await _compiled("run-schema", as_token)
    manifest["spec"]["templates"][1]["container"]["securityContxt"] = {}
    status, body = cluster.request(
        "POST",
        f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/workflows?fieldValidation=Strict&dryRun=All",
        manifest,
    )
    assert status == 400, body
    assert 'unknown field "spec.templates[1].container.securityContxt"' in body["message"]


def _finished(cluster: KubeCluster, name: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        wf = cluster.get(f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/workflows/{name}") or {}
        if (wf.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Error"):
            return wf
        time.sleep(0.5)
    raise AssertionError(f"workflow {name} did not finish in {timeout:.0f} s: {wf.get('status')}")


def _label(manifest: dict[str, Any], template: str, outcome: str) -> None:
    for t in manifest["spec"]["templates"]:
        if t["name"] == template:
            t.setdefault("metadata", {}).setdefault("labels", {})["dshare.test/outcome"] = outcome
            return
    raise AssertionError(f"no template {template}")


async def test_the_thesis_experiment_runs_to_succeeded(
    cluster: KubeCluster, user_ns: str, as_token: AsToken
) -> None:
    manifest = await _compiled("run-ok", as_token)
    wf = _finished(cluster, _submit(cluster, manifest))
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    states = job_states(wf)
    jobs = [t["name"] for t in manifest["spec"]["templates"][0]["dag"]["tasks"]]
    assert {job: states[job]["state"] for job in jobs} == {job: "succeeded" for job in jobs}
    # Each job's pod mounted exactly the claims the compiler named, read-only.
    pods = cluster.get(f"/api/v1/namespaces/{NS}/pods?labelSelector=dshare.io/run=run-ok") or {}
    mounted = {
        v["persistentVolumeClaim"]["claimName"]: v["persistentVolumeClaim"].get("readOnly", False)
        for pod in pods["items"]
        for v in pod["spec"].get("volumes", [])
        if "persistentVolumeClaim" in v
    }
    assert mounted == {"claim-thea": False, **dict.fromkeys(_claim_names(manifest), True)}


def _claim_names(manifest: dict[str, Any]) -> list[str]:
    return [
        v["persistentVolumeClaim"]["claimName"]
        for v in manifest["spec"]["volumes"]
        if v["name"].startswith("lease-")
    ]


async def test_a_failing_job_fails_the_run_and_its_dependent_never_runs(
    cluster: KubeCluster, user_ns: str, as_token: AsToken
) -> None:
    manifest = await _compiled("run-fail", as_token)
    tasks = manifest["spec"]["templates"][0]["dag"]["tasks"]
    failing = tasks[1]["name"]  # one of the three counting jobs
    _label(manifest, failing, "fail")
    wf = _finished(cluster, _submit(cluster, manifest))
    assert wf["status"]["phase"] == "Failed"
    states = job_states(wf)
    assert states[failing]["state"] == "failed"
    last = tasks[-1]["name"]  # the aggregation depends on every count
    # Argo omits it; dshare shows it skipped.
    assert states[last]["state"] == "skipped"
    assert states[tasks[0]["name"]]["state"] == "succeeded"


async def test_the_deadline_stops_a_run_that_would_not_end(
    cluster: KubeCluster, user_ns: str, as_token: AsToken
) -> None:
    manifest = await _compiled("run-late", as_token)
    manifest["spec"]["activeDeadlineSeconds"] = 5
    _label(manifest, manifest["spec"]["templates"][1]["name"], "hang")
    wf = _finished(cluster, _submit(cluster, manifest), timeout=90)
    assert wf["status"]["phase"] in ("Failed", "Error")
    messages = [n.get("message") or "" for n in wf["status"]["nodes"].values()]
    assert [m for m in messages if "deadline" in m.lower()], messages

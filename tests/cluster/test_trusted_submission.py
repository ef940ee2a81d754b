"""Trusted submission on the real API server and Argo controller: the broker, with its own
token, submits the run; the jobs never mount the home; what they wrote reaches the home
only through the gate, dshare's exit handler.

The broker here is `ArgoRunner` over the UiS broker's ServiceAccount token, given what
the broker's RunService gives it (the compiled workflow, each owner's mount record with
its release policy); the data claim is made by UiO's broker with its own token.

Where the simulation ends: kwok runs no container. So the test plays what would run in
the seed and gate pods: it reads each pod's DSHARE_GATE from the pod the controller made,
runs dshare's real gate step (`python -m dshare_hub.k8s.gate_step`) on local directories
standing in for the pod's mounts, plays a job by writing files into the staging copy,
and plays Argo's executor (argoexec) by reporting the gate's output parameter as a
WorkflowTaskResult with the workflow ServiceAccount's token, as argoexec's would be.
It also plays the volume provisioner: a static volume for each staging claim.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_cluster import KubeCluster

from dshare_hub.broker.app import BrokerApp
from dshare_hub.broker.errors import ApiError
from dshare_hub.broker.runner import Submission
from dshare_hub.broker.runs import HOME_PATH, home_claim, lease_claim, mount_record
from dshare_hub.broker.views import Caller
from dshare_hub.k8s.api import KubeApi
from dshare_hub.k8s.materialize import KubeMaterializer
from dshare_hub.k8s.runner import ArgoRunner
from dshare_hub.k8s.trusted import staging_claim_name, workflow_name
from dshare_hub.keys.kek import generate_kek_line
from dshare_hub.ledger.embedded import EmbeddedLedger
from dshare_server.workflow import CompileContext, compile_workflow, parse

from .installed import HUB_NAMESPACE, MANIFESTS, install, spawn_rbac, user_namespace

AsToken = Callable[[str, str], KubeApi]
pytestmark = pytest.mark.asyncio

USER, ORG, NS = "tess", "UiS", "dshare-u-tess"
LEASE = "a1b2c3d4e5f6"
CORPUS = "the quick brown fox jumps over the lazy dog while the owls keep watch at night\n"
SPEC = f"""
name: count
jobs:
- command: python count.py
  volumes: [{{id: {LEASE}, name: uio, path: /home/jovyan/uio}}]
- command: python sum.py
dags: ["1 >> 2"]
"""
WFS = "/apis/argoproj.io/v1alpha1/namespaces/" + NS
READ, LEASE_SCOPE, ADMIN = "custom:dshare:read", "custom:dshare:lease", "custom:dshare:admin"


@pytest.fixture(scope="module")
def ready(cluster: KubeCluster) -> KubeCluster:
    install(cluster)
    user_namespace(cluster, NS)
    # What the operator applies in each user namespace: default-deny, the server's policy,
    # and the workflow ServiceAccount only Argo's executor uses.
    for path in sorted((MANIFESTS / "per-user-namespace").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                doc["metadata"]["namespace"] = NS
                cluster.apply(doc)
    _static_volume(cluster, "home-tess", home_claim(USER), "ReadWriteOnce")
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": home_claim(USER), "namespace": NS},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "volumeName": "home-tess",
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    )
    return cluster


def _static_volume(cluster: KubeCluster, name: str, claim: str, mode: str) -> None:
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": "10Gi"},
                "accessModes": [mode],
                "storageClassName": "",
                "hostPath": {"path": f"/nonexistent/{name}"},
                "claimRef": {"namespace": NS, "name": claim},
            },
        }
    )


async def _submission(run_id: str, as_token: AsToken, manifest_edit: Any = None) -> Submission:
    uio = KubeMaterializer(
        as_token(HUB_NAMESPACE, "dshare-uio"),
        namespace_template="dshare-u-{username}",
        hub_namespace=HUB_NAMESPACE,
        secret_namespace="dshare-secrets-uio",
        owner_org="UiO",
    )
    lease = {"id": LEASE, "owner_org": "UiO", "expires_at": "2031-01-01T00:00:00Z"}
    mount = await uio.materialize(
        asset={
            "id": "uio-corpus",
            "name": "UiO corpus",
            "owner_org": "UiO",
            "storage_type": "nfs",
            "policy": {"release": {"mode": "checks"}},
        },
        details={"server": "nfs.uio.example", "path": "/corpus"},
        lease=lease,
        run_id=run_id,
        user=USER,
    )
    spec = parse(SPEC, leases=None)
    manifest = compile_workflow(
        spec,
        CompileContext(
            user=USER,
            run_id=run_id,
            image="quay.io/jupyter/scipy-notebook:2025-01-06",
            home_claim=home_claim(USER),
            service_account=f"dshare-{USER}",
            claims={LEASE: lease_claim(LEASE)},
            home_path=HOME_PATH,
            working_dir=HOME_PATH,
        ),
    )
    if manifest_edit is not None:
        manifest_edit(manifest)
    return Submission(
        run_id=run_id,
        org=ORG,
        user=USER,
        manifest=manifest,
        home_claim=home_claim(USER),
        mounts={lease_claim(LEASE): mount_record(lease, mount)},
    )


def _runner(as_token: AsToken) -> ArgoRunner:
    return ArgoRunner(
        as_token(HUB_NAMESPACE, "dshare-uis"),
        org=ORG,
        namespace_for=lambda user: f"dshare-u-{user}",
        gate_image="registry.example/dshare-gate@sha256:" + "0" * 64,
        job_image="quay.io/jupyter/scipy-notebook:2025-01-06",
    )


def _pods(cluster: KubeCluster, run_id: str, component: str | None = None) -> list[dict]:
    sel = f"dshare.io/run={run_id}" + (f",dshare.io/component={component}" if component else "")
    return list((cluster.get(f"/api/v1/namespaces/{NS}/pods?labelSelector={sel}") or {})["items"])


def _wait_pod(cluster: KubeCluster, run_id: str, component: str, phase: str) -> dict:
    found: list[dict] = []

    def check() -> bool:
        found[:] = [
            p for p in _pods(cluster, run_id, component) if p["status"].get("phase") == phase
        ]
        return bool(found)

    cluster.wait_for(check, 90, f"the {component} pod of run {run_id} to be {phase}")
    return found[0]


def _gate_config(pod: dict) -> dict[str, Any]:
    main = next(c for c in pod["spec"]["containers"] if c["name"] == "main")
    env = {e["name"]: e.get("value") for e in main.get("env") or []}
    return dict(json.loads(env["DSHARE_GATE"]))


def _step(command: str, config: dict[str, Any], top: Path) -> dict[str, Any]:
    """dshare's gate step as the pod would run it, on directories standing in for its
    mounts (the pod's paths, re-rooted under ``top``)."""
    local = dict(config)
    for key in ("run_dir", "home", "report"):
        local[key] = str(top / config[key].lstrip("/"))
    local["data"] = {k: str(top / v.lstrip("/")) for k, v in config["data"].items()}
    Path(local["report"]).parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "dshare_hub.k8s.gate_step", command],
        env={**os.environ, "DSHARE_GATE": json.dumps(local)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(Path(local["report"]).read_text()))


def _report_as_argoexec(cluster: KubeCluster, pod: dict, report: dict[str, Any]) -> None:
    """What argoexec's wait container does when the gate exits: its output parameter as a
    WorkflowTaskResult, with the workflow account's token; then the pod may succeed."""
    meta = pod["metadata"]
    workflow = meta["labels"]["workflows.argoproj.io/workflow"]
    result = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTaskResult",
        "metadata": {
            "name": meta["annotations"]["workflows.argoproj.io/node-id"],
            "namespace": NS,
            "labels": {
                "workflows.argoproj.io/workflow": workflow,
                "workflows.argoproj.io/report-outputs-completed": "true",
            },
        },
        "outputs": {"parameters": [{"name": "outputs", "value": json.dumps(report)}]},
    }
    token = cluster.token_for(NS, "dshare-workflow")
    status, body = cluster.request("POST", f"{WFS}/workflowtaskresults", result, token=token)
    assert status == 201, body
    status, body = cluster.request(
        "PATCH",
        f"/api/v1/namespaces/{NS}/pods/{meta['name']}",
        {"metadata": {"annotations": {"dshare.test/reported": "true"}}},
    )
    assert status == 200, body


async def _gated(runner: ArgoRunner, run_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        status = await runner.status(run_id, USER)
        if status and status["gate_done"]:
            return status
        await asyncio.sleep(0.5)
    raise AssertionError(f"run {run_id} was not gated in {timeout:.0f} s: {status}")


async def test_the_broker_submits_and_only_the_gate_writes_the_home(
    ready: KubeCluster, as_token: AsToken, tmp_path: Path
) -> None:
    await spawn_rbac(as_token(HUB_NAMESPACE, "hub"), user=USER, org=ORG, namespace=NS)
    run_id = "r-gate"
    _static_volume(ready, "staging-r-gate", staging_claim_name(run_id), "ReadWriteMany")
    runner = _runner(as_token)
    await runner.submit(await _submission(run_id, as_token))

    # The home as the scientist left it, and the leased corpus, where the pods mount them.
    home = tmp_path / "dshare" / "home"
    home.mkdir(parents=True)
    (home / "count.py").write_text("print('count')\n")
    data = tmp_path / "dshare" / "data" / "lease-1"
    data.mkdir(parents=True)
    (data / "corpus.txt").write_text(CORPUS * 4)

    seed = _wait_pod(ready, run_id, "seed", "Succeeded")
    _step("seed", _gate_config(seed), tmp_path)
    # job-1 as it would run: in the staging copy of the home, its streams in the logs.
    work = tmp_path / "dshare" / "run" / "work"
    assert (work / "count.py").read_text() == "print('count')\n"
    (work / "counts.csv").write_text("word,count\nfox,4\n")
    (work / "copy.txt").write_text(CORPUS * 2)
    (tmp_path / "dshare" / "run" / "logs" / "job-1.log").write_text("counted 1 file\n")

    gate = _wait_pod(ready, run_id, "gate", "Running")
    report = _step("gate", _gate_config(gate), tmp_path)

    # The scientist, holding their own token, cannot forge the gate's verdict, change the
    # run, or reach its staging claim.
    user_token = ready.token_for(NS, f"dshare-{USER}")
    forged = {"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTaskResult"}
    forged["metadata"] = {"name": "forged", "namespace": NS}
    refused = {
        "report the gate's outputs": ("POST", f"{WFS}/workflowtaskresults", forged),
        "change the run's Workflow": (
            "PATCH",
            f"{WFS}/workflows/{workflow_name(run_id)}",
            {"spec": {"onExit": None}},
        ),
        "delete the staging claim": (
            "DELETE",
            f"/api/v1/namespaces/{NS}/persistentvolumeclaims/{staging_claim_name(run_id)}",
            None,
        ),
        "read the gate's log": (
            "GET",
            f"/api/v1/namespaces/{NS}/pods/{gate['metadata']['name']}/log",
            None,
        ),
    }
    for what, (method, path, body) in refused.items():
        assert ready.request(method, path, body, token=user_token)[0] == 403, what

    _report_as_argoexec(ready, gate, report)
    status = await _gated(runner, run_id)
    assert status["state"] == "succeeded", status["message"]
    assert sorted(j["name"] for j in status["jobs"]) == ["job-1", "job-2"]
    assert {j["state"] for j in status["jobs"]} == {"succeeded"}
    decisions = {o["path"]: o["decision"] for o in status["outputs"]}
    assert decisions == {
        "counts.csv": "released",
        "copy.txt": "held",  # it copies the leased corpus verbatim
        f".dshare/runs/{run_id}/logs/job-1.log": "released",
    }
    assert (home / "counts.csv").read_text() == "word,count\nfox,4\n"
    assert not (home / "copy.txt").exists()

    # The pods the controller made: jobs mount the staging claim and never the home; only
    # the seed (read-only) and the gate mount the home.
    pods = _pods(ready, run_id)
    home_mounts: dict[str, list[bool]] = {}
    for pod in pods:
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in pod["spec"].get("volumes") or []
            if "persistentVolumeClaim" in v
        }
        kind = pod["metadata"]["labels"].get("dshare.io/component", "job")
        main = next(c for c in pod["spec"]["containers"] if c["name"] == "main")
        for m in main.get("volumeMounts") or []:
            if claims.get(m["name"]) == home_claim(USER):
                home_mounts.setdefault(kind, []).append(bool(m.get("readOnly")))
        if kind == "job":
            assert staging_claim_name(run_id) in claims.values(), pod["metadata"]["name"]
    assert home_mounts == {"seed": [True], "gate": [False]}
    assert len(pods) == 4  # seed, two jobs, gate

    claim = ready.get(
        f"/api/v1/namespaces/{NS}/persistentvolumeclaims/{staging_claim_name(run_id)}"
    )
    assert claim is not None
    assert claim["status"]["phase"] == "Bound"
    assert [(o["kind"], o["name"]) for o in claim["metadata"]["ownerReferences"]] == [
        ("Workflow", workflow_name(run_id))
    ]

    # The data's owner approves the held file on the ledger: the user's broker runs
    # dshare's decide step, which delivers it into the home.
    held = next(o for o in status["outputs"] if o["path"] == "copy.txt")
    ledger_entry = {**held, "held_by": ["UiO"], "decisions": {"UiO": {"approve": True}}}
    await runner.decide(run_id, USER, output=ledger_entry, approve=True, org="UiO", reason="fine")
    decide = _wait_pod(ready, run_id, "decide", "Succeeded")
    assert _step("decide", _gate_config(decide), tmp_path)["delivered"] is True
    assert (home / "copy.txt").read_text() == CORPUS * 2


async def test_a_stopped_run_still_passes_through_the_gate(
    ready: KubeCluster, as_token: AsToken, tmp_path: Path
) -> None:
    await spawn_rbac(as_token(HUB_NAMESPACE, "hub"), user=USER, org=ORG, namespace=NS)
    run_id = "r-stop"
    _static_volume(ready, "staging-r-stop", staging_claim_name(run_id), "ReadWriteMany")

    def hang(manifest: dict[str, Any]) -> None:
        job = next(t for t in manifest["spec"]["templates"] if t["name"] == "job-1")
        job["metadata"]["labels"]["dshare.test/outcome"] = "hang"

    runner = _runner(as_token)
    await runner.submit(await _submission(run_id, as_token, hang))
    (tmp_path / "dshare" / "home").mkdir(parents=True)
    (tmp_path / "dshare" / "data" / "lease-1").mkdir(parents=True)
    _step("seed", _gate_config(_wait_pod(ready, run_id, "seed", "Succeeded")), tmp_path)
    ready.wait_for(
        lambda: any(
            p["status"].get("phase") == "Running"
            for p in _pods(ready, run_id)
            if "dshare.io/component" not in p["metadata"]["labels"]
        ),
        60,
        "job-1 to run",
    )
    (tmp_path / "dshare" / "run" / "work" / "partial.csv").write_text("fox,1\n")
    await runner.cancel(run_id, USER)

    gate = _wait_pod(ready, run_id, "gate", "Running")
    report = _step("gate", _gate_config(gate), tmp_path)
    _report_as_argoexec(ready, gate, report)
    status = await _gated(runner, run_id)
    assert status["state"] == "cancelled"
    assert {o["path"]: o["decision"] for o in status["outputs"]} == {"partial.csv": "released"}
    assert (tmp_path / "dshare" / "home" / "partial.csv").read_text() == "fox,1\n"


async def test_a_run_through_the_broker_ends_on_the_ledger_with_what_the_gate_released(
    ready: KubeCluster, as_token: AsToken, tmp_path: Path
) -> None:
    """The whole broker (RunService, ledger, its own materializer and ArgoRunner) as
    `%dshare_run` reaches it; the dataset is UiS's own, so UiS's broker mounts it too."""
    await spawn_rbac(as_token(HUB_NAMESPACE, "hub"), user=USER, org=ORG, namespace=NS)
    kek = tmp_path / "kek"
    kek.write_text(generate_kek_line() + "\n")
    config = BrokerApp(
        org=ORG,
        data_dir=str(tmp_path / "broker"),
        ledger_db=str(tmp_path / "ledger.sqlite"),
        identity_dir=str(tmp_path / "identities"),
        kek_file=str(kek),
        materializer_kind="kubernetes",
        kube_hub_namespace=HUB_NAMESPACE,
        kube_namespace_template="dshare-u-{username}",
        kube_secret_namespace="dshare-secrets-{org}",
        kube_gate_image="registry.example/dshare-gate@sha256:" + "0" * 64,
    )
    ledger = EmbeddedLedger.open(config.ledger_db, config.identity_dir, ORG)
    materializer = KubeMaterializer(
        as_token(HUB_NAMESPACE, "dshare-uis"),
        namespace_template=config.kube_namespace_template,
        hub_namespace=HUB_NAMESPACE,
        secret_namespace="dshare-secrets-uis",
        owner_org=ORG,
    )
    app, broker, _reaper = config.build(ledger, materializer)
    runs = app.settings["runs"]
    assert isinstance(runs.runner, ArgoRunner)
    admin = Caller("ada", ORG, ("admin",), frozenset({READ, LEASE_SCOPE, ADMIN}))
    scientist = Caller(USER, ORG, ("scientist",), frozenset({READ, LEASE_SCOPE}))
    try:
        await broker.register_dataset(
            admin,
            {
                "id": "uis-corpus",
                "name": "UiS corpus",
                "description": "newspaper text",
                "storage": {"type": "nfs", "details": {"server": "nfs.uis.example", "path": "/c"}},
                "policy": {"release": {"mode": "checks"}},
            },
        )
        lease = await broker.request_lease(scientist, "uis-corpus", 3600, "counting words")
        if lease.get("state") != "active":
            lease = await broker.decide_lease(admin, lease["id"], True)
        text = SPEC.replace(LEASE, lease["id"])
        started = await runs.submit(scientist, {"spec": text, "workspace": ""})
        run_id = started["run"]["id"]
        _static_volume(
            ready, f"staging-{run_id.lower()}", staging_claim_name(run_id), "ReadWriteMany"
        )

        (tmp_path / "dshare" / "home").mkdir(parents=True)
        (tmp_path / "dshare" / "data" / "lease-1").mkdir(parents=True)
        (tmp_path / "dshare" / "data" / "lease-1" / "c.txt").write_text(CORPUS * 4)
        _step("seed", _gate_config(_wait_pod(ready, run_id, "seed", "Succeeded")), tmp_path)
        (tmp_path / "dshare" / "run" / "work" / "counts.csv").write_text("fox,4\n")
        (tmp_path / "dshare" / "run" / "work" / "copy.txt").write_text(CORPUS)
        gate = _wait_pod(ready, run_id, "gate", "Running")
        _report_as_argoexec(ready, gate, _step("gate", _gate_config(gate), tmp_path))

        deadline = time.monotonic() + 90
        while (record := await broker.own_run(scientist, run_id))["state"] == "running":
            assert time.monotonic() < deadline, "the broker did not end the run"
            await asyncio.sleep(0.5)
        assert (record["state"], record["outcome"]) == ("finished", "succeeded")
        recorded = {o["path"]: (o["decision"], o["held_by"]) for o in record["outputs"]}
        assert recorded == {"counts.csv": ("released", []), "copy.txt": ("held", ["UiS"])}
        # The run ended: its data claim went with it; the logs are the gate's to give.
        claims = ready.get(f"/api/v1/namespaces/{NS}/persistentvolumeclaims") or {}
        names = [c["metadata"]["name"] for c in claims["items"]]
        assert not [n for n in names if n.startswith(f"dshare-{lease['id'][:8]}")], names
        with pytest.raises(ApiError) as caught:
            await runs.logs(scientist, run_id, "job-1")
        assert caught.value.message.startswith(
            "on Kubernetes the log of job 'job-1' reaches you through the output gate"
        )
    finally:
        await runs.close()
        await ledger.close()

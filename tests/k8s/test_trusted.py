"""What the broker submits to Argo: the compiled DAG made trusted, tested as whole dicts.

The promise (DESIGN.md data flow): no job mounts the scientist's home; everything a job
writes, its logs too, lands on the run's staging claim and reaches the home only through
the gate; the seed and the gate run dshare's image, never the scientist's.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from argo_schema import assert_valid_workflow

from dshare_hub.k8s.runner import run_status
from dshare_hub.k8s.trusted import (
    TrustedRun,
    TrustedRunError,
    make_decide_workflow,
    make_staging_claim,
    make_trusted_workflow,
)
from dshare_server.workflow import CompileContext, compile_workflow, parse

from .checks import assert_valid

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LEASE = "abcdef123456"
SECURE = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
POLICY = {
    "owner_org": "UiO",
    "dataset_id": "corpus",
    "dataset_name": "Corpus",
    "release": {"mode": "review"},
}
RUN = TrustedRun(
    run_id="r-7",
    user="alice",
    org="UiS",
    namespace="dshare-u-alice",
    gate_image="dshare/gate@sha256:00",
    service_account="dshare-workflow",
    home_claim="claim-alice",
    claims={f"dshare-lease-{LEASE}": "dshare-abcdef123456-r-7"},
    leases={f"dshare-lease-{LEASE}": LEASE},
    policies={LEASE: POLICY},
)
SPEC = """
name: count
jobs:
- command: python count.py
  volumes: [{id: abcdef123456, name: uio, path: /home/jovyan/uio}]
- command: python sum.py
dags: ["1 >> 2"]
"""


def compiled(text: str = SPEC) -> dict[str, Any]:
    spec = parse(text, leases=None)
    ctx = CompileContext(
        user="alice",
        run_id="r-7",
        image="quay.io/jupyter/scipy-notebook:2025-01-06",
        home_claim="claim-alice",
        service_account="dshare-alice",
        claims={i: f"dshare-lease-{i[:16]}" for i in spec.lease_ids},
        namespace="dshare-u-alice",
        now=NOW,
    )
    return compile_workflow(spec, ctx)


def gate_env(data: dict[str, str], **extra: Any) -> list[dict[str, str]]:
    config = {
        "data": data,
        "home": "/dshare/home",
        "policies": {LEASE: POLICY},
        "report": "/tmp/dshare-gate.json",
        "run_dir": "/dshare/run",
        "run_id": "r-7",
        "scan_cap": 8 * 1024 * 1024,
        "seed_cap": 64 * 1024 * 1024,
        **extra,
    }
    return [{"name": "DSHARE_GATE", "value": json.dumps(config, sort_keys=True)}]


def step(name: str, command: str, mounts: list[dict[str, Any]], env: list, data: str) -> dict:
    template = {
        "name": name,
        "metadata": {"labels": {"dshare.io/component": command, "dshare.io/data-access": data}},
        "container": {
            "name": "main",
            "image": "dshare/gate@sha256:00",
            "command": ["python", "-m", "dshare_hub.k8s.gate_step", command],
            "env": env,
            "volumeMounts": mounts,
            "securityContext": SECURE,
        },
    }
    if command != "seed":  # the seed reports nothing
        template["outputs"] = {
            "parameters": [{"name": "outputs", "valueFrom": {"path": "/tmp/dshare-gate.json"}}]
        }
    return template


STAGING = {"name": "dshare-staging", "mountPath": "/dshare/run"}


def test_whole_trusted_workflow() -> None:
    wf = make_trusted_workflow(compiled(), RUN)
    spec = wf["spec"]
    assert wf["metadata"] == {
        "name": "dshare-run-r-7",
        "namespace": "dshare-u-alice",
        "labels": {
            "dshare.io/user": "alice",
            "dshare.io/run": "r-7",
            "app.kubernetes.io/managed-by": "dshare",
        },
        "annotations": {"dshare.io/user": "alice", "dshare.io/run": "r-7"},
    }
    assert spec["onExit"] == "dshare-gate"
    assert spec["serviceAccountName"] == "dshare-workflow"
    assert spec["executor"] == {"serviceAccountName": "dshare-workflow"}
    assert spec["automountServiceAccountToken"] is False
    assert spec["volumes"] == [
        {"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}},
        {
            "name": "lease-1",
            "persistentVolumeClaim": {"claimName": "dshare-abcdef123456-r-7", "readOnly": True},
        },
        {"name": "dshare-staging", "persistentVolumeClaim": {"claimName": "dshare-run-r-7"}},
    ]
    templates = {t["name"]: t for t in spec["templates"]}
    assert templates["dshare-dag"]["dag"]["tasks"] == [
        {"name": "dshare-seed", "template": "dshare-seed"},
        {"name": "job-1", "template": "job-1", "dependencies": ["dshare-seed"]},
        {"name": "job-2", "template": "job-2", "dependencies": ["job-1"]},
    ]
    assert templates["job-1"] == {
        "name": "job-1",
        "metadata": {"labels": {"dshare.io/data-access": "true"}},
        "container": {
            "name": "main",
            "image": "quay.io/jupyter/scipy-notebook:2025-01-06",
            "command": ["/bin/sh", "-c"],
            "args": ["exec >>/dshare/logs/job-1.log 2>&1\npython count.py"],
            "workingDir": "/home/jovyan",
            "volumeMounts": [
                {"name": "dshare-staging", "mountPath": "/home/jovyan", "subPath": "work"},
                {"name": "dshare-staging", "mountPath": "/dshare/logs", "subPath": "logs"},
                {"name": "lease-1", "mountPath": "/home/jovyan/uio", "readOnly": True},
            ],
            "securityContext": SECURE,
        },
    }
    home_ro = {"name": "home", "mountPath": "/dshare/home", "readOnly": True}
    home_rw = {"name": "home", "mountPath": "/dshare/home"}
    data = {"name": "lease-1", "mountPath": "/dshare/data/lease-1", "readOnly": True}
    assert templates["dshare-seed"] == step(
        "dshare-seed", "seed", [home_ro, STAGING], gate_env({}), "false"
    )
    assert templates["dshare-gate"] == step(
        "dshare-gate",
        "gate",
        [home_rw, STAGING, data],
        gate_env({LEASE: "/dshare/data/lease-1"}),
        "true",
    )
    assert_valid_workflow(wf)


def test_no_job_mounts_the_home_and_every_job_writes_its_streams_to_staging() -> None:
    wf = make_trusted_workflow(compiled(), RUN)
    jobs = [t for t in wf["spec"]["templates"] if t["name"].startswith("job-")]
    assert len(jobs) == 2
    for job in jobs:
        names = {m["name"] for m in job["container"]["volumeMounts"]}
        assert "home" not in names, job["name"]
        assert job["container"]["args"][0].startswith(f"exec >>/dshare/logs/{job['name']}.log")
    # Only dshare's own steps, in dshare's image, mount the home.
    with_home = {
        t["name"]
        for t in wf["spec"]["templates"]
        if any(m["name"] == "home" for m in (t.get("container") or {}).get("volumeMounts", []))
    }
    assert with_home == {"dshare-seed", "dshare-gate"}
    images = {t["container"]["image"] for t in wf["spec"]["templates"] if t["name"] in with_home}
    assert images == {"dshare/gate@sha256:00"}


def test_the_compiled_input_is_left_as_it_was() -> None:
    manifest = compiled()
    before = json.dumps(manifest, sort_keys=True)
    make_trusted_workflow(manifest, RUN)
    assert json.dumps(manifest, sort_keys=True) == before


def test_a_job_named_like_a_dshare_step_is_refused() -> None:
    manifest = compiled()
    manifest["spec"]["templates"][1]["name"] = "dshare-gate"
    with pytest.raises(TrustedRunError) as caught:
        make_trusted_workflow(manifest, RUN)
    assert str(caught.value) == (
        "job 'dshare-gate' has a name dshare keeps for its own steps; rename the job"
    )


def test_a_volume_no_owner_materialized_is_refused() -> None:
    run = TrustedRun(**{**RUN.__dict__, "claims": {}})
    with pytest.raises(TrustedRunError) as caught:
        make_trusted_workflow(compiled(), run)
    assert str(caught.value) == (
        "no claim was materialized for volume claim 'dshare-lease-abcdef123456'"
    )


def test_staging_claim_belongs_to_the_users_org_broker() -> None:
    claim = make_staging_claim(RUN)
    assert claim == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": "dshare-run-r-7",
            "namespace": "dshare-u-alice",
            "labels": {
                "app.kubernetes.io/managed-by": "dshare",
                "dshare.io/user": "alice",
                "dshare.io/run": "r-7",
                "dshare.io/owner-org": "UiS",
                "dshare.io/component": "run-staging",
            },
        },
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "volumeMode": "Filesystem",
            "resources": {"requests": {"storage": "10Gi"}},
        },
    }
    assert_valid(claim)


def test_decide_workflow_runs_only_dshares_step() -> None:
    wf = make_decide_workflow(RUN, "out/table.csv", True)
    assert wf["metadata"]["namespace"] == "dshare-u-alice"
    assert [t["name"] for t in wf["spec"]["templates"]] == ["dshare-decide"]
    env = json.loads(wf["spec"]["templates"][0]["container"]["env"][0]["value"])
    assert (env["stage"], env["approve"]) == ("out/table.csv", True)
    assert_valid_workflow(wf)


def _node(template: str, phase: str, display: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "Pod",
        "templateName": template,
        "phase": phase,
        "displayName": display,
        **extra,
    }


def test_status_waits_for_the_gate_and_reads_its_verdict() -> None:
    report = {"outputs": [{"path": "a.txt", "decision": "released"}], "warnings": ["w"]}
    wf: dict[str, Any] = {
        "spec": {},
        "status": {
            "phase": "Running",
            "nodes": {
                "1": _node("dshare-seed", "Succeeded", "dshare-seed"),
                "2": _node("job-1", "Succeeded", "job-1"),
                "3": _node("dshare-gate", "Running", "dshare-run-r-7.onExit"),
            },
        },
    }
    running = run_status(wf)
    assert (running["state"], running["gate_done"], running["outputs"]) == ("running", False, [])
    assert [j["name"] for j in running["jobs"]] == ["job-1"]
    wf["status"]["phase"] = "Succeeded"
    wf["status"]["nodes"]["3"] = _node(
        "dshare-gate",
        "Succeeded",
        "dshare-run-r-7.onExit",
        outputs={"parameters": [{"name": "outputs", "value": json.dumps(report)}]},
    )
    done = run_status(wf)
    assert (done["state"], done["gate_done"]) == ("succeeded", True)
    assert (done["outputs"], done["warnings"]) == (report["outputs"], ["w"])


def test_a_stopped_run_is_cancelled_and_a_failed_gate_releases_nothing() -> None:
    wf = {
        "spec": {"shutdown": "Stop"},
        "status": {
            "phase": "Failed",
            "nodes": {"3": _node("dshare-gate", "Failed", "dshare-run-r-7.onExit")},
        },
    }
    status = run_status(wf)
    assert (status["state"], status["gate_done"], status["outputs"]) == ("cancelled", True, [])
    assert status["warnings"] == [
        "the output gate did not finish; nothing of this run was released"
    ]

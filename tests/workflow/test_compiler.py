"""The Argo compiler: whole manifests, Argo's schema with unknown keys forbidden, goldens."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from argo_schema import assert_valid_workflow

from dshare_server.workflow import CompileContext, CompileError, compile_workflow, parse, to_yaml
from dshare_server.workflow.compiler import MAX_MANIFEST_BYTES, label_value

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
UPDATE = os.environ.get("DSHARE_UPDATE_GOLDEN") == "1"


def context(spec, **kw) -> CompileContext:
    base = dict(
        user="alice@uis.no",
        run_id="run-7",
        image="quay.io/jupyter/scipy-notebook:2025-01-06",
        home_claim="claim-alice",
        service_account="dshare-alice",
        claims={i: f"dshare-{i[:8]}" for i in spec.lease_ids},
        lease_expiry={i: NOW + timedelta(hours=2) for i in spec.lease_ids},
        working_dir="/home/jovyan/project",
        namespace="dshare-alice",
        now=NOW,
    )
    base.update(kw)
    return CompileContext(**base)


SECURE = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def test_whole_manifest_of_a_two_job_workflow():
    spec = parse(
        """
name: count
env: {MODE: fast}
jobs:
- command: python count.py
  timeout: 10m
  resources: {cpu: "1", memory: 2Gi}
  volumes: [{id: abcdef123456, name: uis, path: /home/jovyan/uis}]
- command: python sum.py
  image: python:3.12
dags: ["1 >> 2"]
""",
        leases=None,
        now=NOW,
    )
    manifest = compile_workflow(spec, context(spec))
    assert manifest == {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "annotations": {"dshare.io/user": "alice@uis.no", "dshare.io/run": "run-7"},
            "generateName": "count-",
            "labels": {"dshare.io/user": "alice-uis.no", "dshare.io/run": "run-7"},
            "namespace": "dshare-alice",
        },
        "spec": {
            "activeDeadlineSeconds": 7200,
            "automountServiceAccountToken": False,
            "entrypoint": "dshare-dag",
            "executor": {"serviceAccountName": "dshare-alice"},
            "podGC": {"deleteDelayDuration": "10m", "strategy": "OnWorkflowCompletion"},
            "podMetadata": {"labels": {"dshare.io/user": "alice-uis.no", "dshare.io/run": "run-7"}},
            "securityContext": {
                "fsGroup": 100,
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "serviceAccountName": "dshare-alice",
            "templates": [
                {
                    "dag": {
                        "tasks": [
                            {"name": "job-1", "template": "job-1"},
                            {"dependencies": ["job-1"], "name": "job-2", "template": "job-2"},
                        ]
                    },
                    "name": "dshare-dag",
                },
                {
                    "activeDeadlineSeconds": "600",
                    "container": {
                        "args": ["python count.py"],
                        "command": ["/bin/sh", "-c"],
                        "env": [{"name": "MODE", "value": "fast"}],
                        "image": "quay.io/jupyter/scipy-notebook:2025-01-06",
                        "name": "main",
                        "resources": {
                            "limits": {"cpu": "1", "memory": "2Gi"},
                            "requests": {"cpu": "1", "memory": "2Gi"},
                        },
                        "securityContext": SECURE,
                        "volumeMounts": [
                            {"mountPath": "/home/jovyan", "name": "home"},
                            {"mountPath": "/home/jovyan/uis", "name": "lease-1", "readOnly": True},
                        ],
                        "workingDir": "/home/jovyan/project",
                    },
                    "metadata": {"labels": {"dshare.io/data-access": "true"}},
                    "name": "job-1",
                },
                {
                    "container": {
                        "args": ["python sum.py"],
                        "command": ["/bin/sh", "-c"],
                        "env": [{"name": "MODE", "value": "fast"}],
                        "image": "python:3.12",
                        "name": "main",
                        "securityContext": SECURE,
                        "volumeMounts": [{"mountPath": "/home/jovyan", "name": "home"}],
                        "workingDir": "/home/jovyan/project",
                    },
                    "metadata": {"labels": {"dshare.io/data-access": "false"}},
                    "name": "job-2",
                },
            ],
            "ttlStrategy": {"secondsAfterCompletion": 86400},
            "volumes": [
                {"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}},
                {
                    "name": "lease-1",
                    "persistentVolumeClaim": {"claimName": "dshare-abcdef12", "readOnly": True},
                },
            ],
        },
    }
    assert_valid_workflow(manifest)


@pytest.mark.parametrize("name", ["listing_2_1", "listing_4_7", "listing_5_1", "listing_5_2"])
def test_thesis_listings_compile_to_golden_yaml(listing, name):
    spec = parse(listing(name), leases=None, now=NOW)
    manifest = compile_workflow(spec, context(spec))
    assert_valid_workflow(manifest)
    golden = GOLDEN / f"{name}.yaml"
    text = to_yaml(manifest)
    if UPDATE:
        golden.write_text(text)
    assert text == golden.read_text()
    assert yaml.safe_load(golden.read_text()) == manifest


def test_deadline_is_the_shortest_of_lease_and_spec():
    spec = parse(
        "deadline: 30m\njobs:\n- command: ls\n  volumes: [{id: a1, path: /d}]\n"
        "- command: ls\n  volumes: [{id: b2, path: /d}]\n",
        leases=None,
        now=NOW,
    )
    ctx = context(spec, lease_expiry={"a1": NOW + timedelta(minutes=20), "b2": NOW})
    with pytest.raises(CompileError) as info:
        compile_workflow(spec, ctx)
    assert str(info.value) == (
        "lease b2 ended at 2030-01-01T12:00:00+00:00; nothing can run after it. "
        "Lease the dataset again or choose a later deadline."
    )
    ctx = context(spec, lease_expiry={"a1": NOW + timedelta(minutes=20)})
    assert compile_workflow(spec, ctx)["spec"]["activeDeadlineSeconds"] == 1200
    ctx = context(spec, lease_expiry={})
    assert compile_workflow(spec, ctx)["spec"]["activeDeadlineSeconds"] == 1800


def test_lease_without_materialized_claim_is_refused():
    spec = parse("jobs:\n- command: ls\n  volumes: [{id: a1b2c3, path: /d}]\n", leases=None)
    with pytest.raises(CompileError) as info:
        compile_workflow(spec, context(spec, claims={}))
    assert str(info.value) == (
        "no volume was materialized for lease a1b2c3; ask the broker to start the run "
        "before compiling"
    )


def test_too_large_for_argo_is_refused():
    command = "echo " + "x" * 400
    text = "jobs:\n" + "".join(f"- {command} {i}\n" for i in range(2500))
    spec = parse(text, leases=None)
    with pytest.raises(CompileError) as info:
        compile_workflow(spec, context(spec))
    message = str(info.value)
    assert message.startswith("the compiled workflow is ")
    size = int(message.split()[4])
    assert size > MAX_MANIFEST_BYTES
    assert message.endswith(
        f"bytes; Argo stores a workflow in one Kubernetes object, which is limited to "
        f"{MAX_MANIFEST_BYTES} bytes. Split it into smaller workflows or move long commands "
        "into scripts in your home directory."
    )


def test_label_values_are_always_valid():
    assert label_value("alice@uis.no") == "alice-uis.no"
    assert label_value("-x-") == "x"
    assert label_value("@@@") == "unknown"
    assert len(label_value("a" * 100)) == 63


def test_pods_with_data_are_labelled_for_network_policies():
    spec = parse("jobs:\n- command: ls\n  volumes: [{id: a1, path: /d}]\n- pwd\n", leases=None)
    templates = {t["name"]: t for t in compile_workflow(spec, context(spec))["spec"]["templates"]}
    assert templates["job-1"]["metadata"]["labels"]["dshare.io/data-access"] == "true"
    assert templates["job-2"]["metadata"]["labels"]["dshare.io/data-access"] == "false"

"""Reading Argo workflows: job states from a workflow's status and Argo's pod names. The
scientist's server submits nothing (the broker does); the real controller runs compiled
workflows in tests/cluster/test_argo_runs.py.
"""

from __future__ import annotations

from dshare_server.workflow.argo import job_states, pod_name


def test_pod_names_follow_argo():
    # Argo v2 pod names: <workflow>-<template>-<fnv32a(node name)>; FNV-1a reference
    # vectors: "a" -> 0xe40c292c, "foobar" -> 0xbf9cf968.
    assert pod_name("wf", "a", "job-1") == f"wf-job-1-{0xE40C292C}"
    assert pod_name("wf", "foobar", "t") == f"wf-t-{0xBF9CF968}"
    assert pod_name("wf-abc", "wf-abc", "dag") == "wf-abc"


def test_job_states_from_status():
    wf = {
        "status": {
            "nodes": {
                "a": {"type": "DAG", "displayName": "wf"},
                "b": {
                    "type": "Pod",
                    "displayName": "job-1",
                    "phase": "Error",
                    "outputs": {"exitCode": "137"},
                    "message": "OOMKilled",
                },
                "c": {"type": "Omitted", "displayName": "job-2", "phase": "Omitted"},
            }
        }
    }
    assert job_states(wf) == {
        "job-1": {
            "state": "failed",
            "exit_code": 137,
            "started_at": None,
            "finished_at": None,
            "message": "OOMKilled",
        },
        "job-2": {
            "state": "skipped",
            "exit_code": None,
            "started_at": None,
            "finished_at": None,
            "message": "",
        },
    }

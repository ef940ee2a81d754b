"""Argo submission against a DOUBLE of the Kubernetes API server (aiohttp on 127.0.0.1).

This is not Kubernetes: a small HTTP server that checks the bearer token, validates the
POSTed Workflow against Argo's schema (unknown keys forbidden), and answers create, get,
watch, patch and pods/log the way the API server does for the requests ArgoClient makes.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp import web

from dshare_server.workflow import parse
from dshare_server.workflow.argo import ArgoClient, ArgoError, job_states, pod_name
from dshare_server.workflow.exit_report import build_request, outcome_for
from dshare_server.workflow.orchestrate import RunContext, run_workflow

from .broker_double import InMemoryBroker
from .conftest import strict_workflow_validator

NS = "dshare-alice"
BASE = f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/workflows"


class FakeApiServer:
    def __init__(self, token: str) -> None:
        self.token = token
        self.validator = strict_workflow_validator()
        self.workflows: dict[str, dict] = {}
        self.patches: list[dict] = []
        self.fail_job: str | None = None
        app = web.Application(middlewares=[self.auth])
        app.router.add_post(BASE, self.create)
        app.router.add_get(BASE, self.list_or_watch)
        app.router.add_get(BASE + "/{name}", self.get)
        app.router.add_patch(BASE + "/{name}", self.patch)
        app.router.add_get(f"/api/v1/namespaces/{NS}/pods/{{pod}}/log", self.log)
        self.app = app

    @web.middleware
    async def auth(self, request, handler):
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response(
                {"kind": "Status", "status": "Failure", "message": "Unauthorized", "code": 401},
                status=401,
            )
        return await handler(request)

    async def create(self, request):
        body = await request.json()
        errors = [f"{list(e.path)}: {e.message}" for e in self.validator.iter_errors(body)]
        if errors:
            return web.json_response(
                {"kind": "Status", "status": "Failure", "message": "; ".join(errors), "code": 422},
                status=422,
            )
        name = body["metadata"]["generateName"] + "x7k2p"
        body["metadata"].update(name=name, namespace=NS, resourceVersion="1")
        body["status"] = {"phase": "Running"}
        self.workflows[name] = body
        return web.json_response(body, status=201)

    async def get(self, request):
        wf = self.workflows.get(request.match_info["name"])
        if wf is None:
            return web.json_response({"kind": "Status", "code": 404, "message": "not found"}, 404)
        return web.json_response(wf)

    async def patch(self, request):
        self.patches.append(await request.json())
        return web.json_response(self.workflows[request.match_info["name"]])

    def _finish(self, wf: dict) -> dict:
        """Argo's outcome: every DAG task runs its pod; a failing one fails the workflow."""
        name = wf["metadata"]["name"]
        nodes = {}
        phase = "Succeeded"
        for task in wf["spec"]["templates"][0]["dag"]["tasks"]:
            failed = task["name"] == self.fail_job
            phase = "Failed" if failed else phase
            nodes[f"{name}-{task['name']}"] = {
                "name": f"{name}.{task['name']}",
                "displayName": task["name"],
                "templateName": task["template"],
                "type": "Pod",
                "phase": "Failed" if failed else "Succeeded",
                "startedAt": "2030-01-01T12:00:00Z",
                "finishedAt": "2030-01-01T12:00:05Z",
                "outputs": {"exitCode": "1" if failed else "0"},
            }
        return {**wf, "status": {"phase": phase, "nodes": nodes}}

    async def list_or_watch(self, request):
        assert request.query.get("watch") in ("true", "True")
        name = request.query["fieldSelector"].removeprefix("metadata.name=")
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        wf = self.workflows[name]
        running = {**wf, "metadata": {**wf["metadata"], "resourceVersion": "2"}}
        await response.write(json.dumps({"type": "MODIFIED", "object": running}).encode() + b"\n")
        self.workflows[name] = done = self._finish(wf)
        await response.write(json.dumps({"type": "MODIFIED", "object": done}).encode() + b"\n")
        await response.write_eof()
        return response

    async def log(self, request):
        pod = request.match_info["pod"]
        for wf in self.workflows.values():
            for node in (wf.get("status", {}).get("nodes") or {}).values():
                expected = pod_name(wf["metadata"]["name"], node["name"], node["templateName"])
                if pod == expected and request.query.get("container") == "main":
                    return web.Response(text=f"log of {node['displayName']}\n")
        return web.json_response({"kind": "Status", "code": 404, "message": "pod not found"}, 404)


@pytest.fixture
def token_dir(tmp_path: Path) -> Path:
    d = tmp_path / "secrets"
    d.mkdir()
    (d / "token").write_text("test-token-generated-at-runtime\n")
    (d / "namespace").write_text(NS + "\n")
    return d


async def serve(api: FakeApiServer) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(api.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}"


class ArgoBroker(InMemoryBroker):
    """On Kubernetes the broker answers with claim names instead of directories."""

    async def start_run(self, name, lease_ids, spec_sha256):
        started = await super().start_run(name, lease_ids, spec_sha256)
        for mount in started["mounts"].values():
            mount["claim_name"] = f"dshare-{mount.pop('handle').rsplit('/', 1)[-1]}"
            mount["namespace"] = NS
        return started


def test_run_on_argo_submits_watches_and_collects_logs(tmp_path, token_dir, listing):
    api = FakeApiServer("test-token-generated-at-runtime")
    broker = ArgoBroker()
    for org in ("uis", "uio", "uib"):
        (tmp_path / org).mkdir()
    spec = parse(listing("listing_5_2"), leases=None)
    for lease_id, org in zip(spec.lease_ids, ("uis", "uio", "uib"), strict=True):
        broker.add_lease(lease_id, tmp_path / org)

    async def scenario():
        runner, url = await serve(api)
        try:
            ctx = RunContext(
                user="alice",
                mode="argo",
                home_dir=str(tmp_path),
                cwd=str(tmp_path),
                image="quay.io/jupyter/scipy-notebook:2025-01-06",
                argo_factory=lambda: ArgoClient(host=url, token_file=str(token_dir / "token")),
            )
            states = []
            run = await run_workflow(
                listing("listing_5_2"), broker, ctx, on_update=lambda r: states.append(r.state)
            )
        finally:
            await runner.cleanup()
        return run, states

    run, states = asyncio.run(scenario())
    assert run.state == "succeeded"
    assert run.workflow_name == "workflow-x7k2p"
    assert [j.state for j in run.jobs.values()] == ["succeeded"] * 5
    assert run.logs("job-3") == "log of job-3\n"
    assert "running" in states
    assert broker.finished[0][:2] == (run.id, "succeeded")
    submitted = api.workflows["workflow-x7k2p"]
    claims = [v["persistentVolumeClaim"]["claimName"] for v in submitted["spec"]["volumes"]]
    assert claims == ["claim-alice", "dshare-uis", "dshare-uio", "dshare-uib"]


def test_failed_job_on_argo(tmp_path, token_dir):
    api = FakeApiServer("test-token-generated-at-runtime")
    api.fail_job = "job-1"

    async def scenario():
        runner, url = await serve(api)
        try:
            ctx = RunContext(
                user="alice",
                mode="argo",
                home_dir=str(tmp_path),
                cwd=str(tmp_path),
                argo_factory=lambda: ArgoClient(host=url, token_file=str(token_dir / "token")),
            )
            return await run_workflow("jobs: [exit 1]", InMemoryBroker(), ctx)
        finally:
            await runner.cleanup()

    run = asyncio.run(scenario())
    assert run.state == "failed"
    assert (run.jobs["job-1"].state, run.jobs["job-1"].exit_code) == ("failed", 1)


def test_refusals_name_the_request_and_never_the_token(tmp_path, token_dir):
    api = FakeApiServer("another-token")

    async def scenario():
        runner, url = await serve(api)
        try:
            client = ArgoClient(host=url, token_file=str(token_dir / "token"))
            try:
                with pytest.raises(ArgoError) as unauthorized:
                    await client.submit({"apiVersion": "argoproj.io/v1alpha1"})
            finally:
                await client.close()
            api.token = "test-token-generated-at-runtime"
            client = ArgoClient(host=url, token_file=str(token_dir / "token"))
            try:
                with pytest.raises(ArgoError) as invalid:
                    await client.submit(
                        {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "bogus": 1}
                    )
            finally:
                await client.close()
        finally:
            await runner.cleanup()
        return str(unauthorized.value), str(invalid.value)

    unauthorized, invalid = asyncio.run(scenario())
    assert unauthorized == (
        "submitting the workflow failed: 401 Unauthorized: Unauthorized "
        "(the token was refused: restart your server to get a fresh one)"
    )
    assert "test-token" not in unauthorized
    assert invalid.startswith("submitting the workflow failed: 422 Unprocessable Entity: ")
    assert "'bogus' was unexpected" in invalid


def test_missing_namespace_and_token(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ArgoError) as info:
        ArgoClient(token_file=str(tmp_path / "token"))
    assert str(info.value) == (
        "no Kubernetes API server: KUBERNETES_SERVICE_HOST is not set "
        "(use the local runner outside Kubernetes)"
    )
    with pytest.raises(ArgoError) as info:
        ArgoClient(host="http://127.0.0.1:1", token_file=str(tmp_path / "token"))
    assert str(info.value) == f"no namespace given and {tmp_path / 'namespace'} does not exist"


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


def test_exit_handler_request():
    assert [outcome_for(s) for s in ("Succeeded", "Failed", "Error", "")] == [
        "succeeded",
        "failed",
        "failed",
        "cancelled",
    ]
    req = build_request("http://broker/api/v1/", "run-3", "Failed", "tkn")
    assert req.full_url == "http://broker/api/v1/runs/run-3/finish"
    assert req.get_method() == "POST"
    assert json.loads(req.data) == {"outcome": "failed"}
    assert req.headers["Authorization"] == "token tkn"

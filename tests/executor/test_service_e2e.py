"""The executor service end to end: a broker's run, sandboxed as a per-run uid, gated,
delivered as the scientist, and an owner's decision releasing what the gate held."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from tornado.httpclient import AsyncHTTPClient
from tornado.web import RequestHandler

from dshare_hub.broker.materialize import LocalMaterializer
from dshare_hub.executor.handlers import routes
from dshare_hub.executor.jail import Sandbox

from .conftest import OTHER_UID, POOL, SCIENTIST_UID, home_of, tgz
from .service_world import (
    PREFIX,
    World,
    account,
    data_dir,
    later,
    manifest,
    run_body,
    start_executor,
    start_hub,
)

COUNT = """
id -u > uid.txt
wc -l < /data/words/x.txt | tr -d ' ' > count.txt
cp /data/words/x.txt copy.txt
if touch /data/words/planted 2>/dev/null; then echo writable; else echo read-only; fi \
  > data-write.txt
python -c "import socket; s = socket.socket(); s.settimeout(3); \
print('connected' if s.connect_ex(('127.0.0.1', {port})) == 0 else 'no-network')" > net.txt
cat /proc/self/mountinfo > mountinfo.txt
ls /data/words
"""
TOTAL = 'echo "words: $(cat count.txt)" > summary.txt; cat count.txt'


@pytest_asyncio.fixture
async def world(world: Path, sandbox: Sandbox) -> AsyncIterator[tuple[World, Path]]:
    hub, hub_url = start_hub()
    broker_dir = world / "uio-broker"
    broker_dir.mkdir(mode=0o700)
    LocalMaterializer(broker_dir)  # creates <data_dir>/mounts as the broker would
    roots = {"UiO": str(broker_dir / "mounts")}
    app, web_app, server, url = start_executor(world, sandbox, hub_url, roots)
    w = World(world, url, app, web_app, sandbox, [hub, server])
    try:
        yield w, broker_dir
    finally:
        await web_app.settings["executor"].close()
        w.stop()


async def materialize(broker_dir: Path, data: Path, run_id: str) -> str:
    made = await LocalMaterializer(broker_dir).materialize(
        asset={
            "id": "ds-words",
            "name": "words",
            "storage_type": "local",
            "policy": {"release": {"mode": "checks"}},
        },
        details={"path": str(data)},
        lease={"id": "lease-1", "expires_at": later()},
        run_id=run_id,
        user="sam",
    )
    return str(made["handle"])


async def wait_gate(w: World, run_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = await w.call("GET", f"/runs/{run_id}")
        assert r.code == 200, r.body
        view = json.loads(r.body)
        if view["gate_done"]:
            return view
        await asyncio.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish: {view}")


async def run_one_job(w: World, broker_dir: Path, run_id: str, job: str, **over: Any):
    """Submit a run of `job` (then `true`) over the words lease as UiS's broker and wait for
    the gate; (its view, the scientist's home, the owner's data directory)."""
    data = data_dir(w.top)
    home = home_of(w.top)
    handle = await materialize(broker_dir, data, run_id)
    body = run_body(run_id, home, handle, manifest(run_id, job, "true"), "", **over)
    assert (await w.call("POST", "/runs", "uis-token", body)).code == 202
    return await wait_gate(w, run_id), home, data


@pytest.mark.asyncio
async def test_a_two_job_run_is_sandboxed_gated_and_delivered(world) -> None:
    w, broker_dir = world
    data = data_dir(w.top)
    home = home_of(w.top)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    handle = await materialize(broker_dir, data, "run-e2e")
    archive = base64.b64encode(tgz({"analysis.ipynb": b"{}", "notes/readme.txt": b"hi"}))
    body = run_body(
        "run-e2e",
        home,
        handle,
        manifest("run-e2e", COUNT.format(port=port), TOTAL),
        archive.decode(),
    )

    # who may submit: brokers named in allowed_services, acting for the run's own org
    assert (await w.call("POST", "/runs", None, body)).code == 401
    as_user = await w.call("POST", "/runs", "sam-token", body)
    assert (as_user.code, json.loads(as_user.body)["code"]) == (403, "FORBIDDEN")
    assert (await w.call("POST", "/runs", "rogue-token", body)).code == 403
    assert (await w.call("POST", "/runs", "uio-token", body)).code == 403  # not UiO's run

    created = await w.call("POST", "/runs", "uis-token", body)
    assert created.code == 202, created.body
    assert json.loads(created.body)["id"] == "run-e2e"
    again = await w.call("POST", "/runs", "uis-token", body)
    assert again.code == 202  # idempotent per run id
    other = await w.call("POST", "/runs", "uis-token", {**body, "workspace": ""})
    assert (other.code, json.loads(other.body)["code"]) == (409, "RUN_CONFLICT")

    view = await wait_gate(w, "run-e2e")
    listener.close()
    assert view["state"] == "succeeded", view
    assert [(j["name"], j["state"]) for j in view["jobs"]] == [
        ("count", "succeeded"),
        ("total", "succeeded"),
    ]
    record = json.loads((w.top / "executor/runs/run-e2e/run.json").read_text())
    job_uid = int((home / "uid.txt").read_text())
    assert job_uid == record["job_uid"] and job_uid in POOL
    assert job_uid not in (0, SCIENTIST_UID)
    assert (home / "net.txt").read_text().strip() == "no-network"
    assert (home / "data-write.txt").read_text().strip() == "read-only"
    assert not (data / "planted").exists()
    assert (home / "count.txt").read_text().strip() == "30"
    assert (home / "summary.txt").read_text().strip() == "words: 30"
    assert (home / "count.txt").stat().st_uid == SCIENTIST_UID
    assert not (home / "copy.txt").exists()  # held
    assert not (home / "analysis.ipynb").exists()  # seeded, unchanged: not an output

    outputs = {o["path"]: o for o in view["outputs"]}
    assert set(outputs) == {
        "uid.txt",
        "count.txt",
        "copy.txt",
        "data-write.txt",
        "net.txt",
        "summary.txt",
        "mountinfo.txt",
        ".dshare/runs/run-e2e/logs/count.log",
        ".dshare/runs/run-e2e/logs/total.log",
    }
    # The job's own mount table names its run's view, never where the owner keeps the data.
    mountinfo = (home / "mountinfo.txt").read_text()
    assert " /data/words " in mountinfo
    assert str(data) not in mountinfo, mountinfo
    assert not (w.top / "executor/runs/run-e2e/data").exists()  # the view went, not the data
    assert (data / "x.txt").read_text().count("\n") == 30
    held = outputs["copy.txt"]
    assert (held["decision"], held["owners"]) == ("held", ["UiO"])
    (failed,) = [c for c in held["checks"] if not c["passed"]]
    assert failed["name"] == "verbatim_input"
    assert "contains a verbatim copy of lease lease-1's input (x.txt)" in failed["message"]
    assert outputs["count.txt"]["decision"] == "released"
    assert str(w.top) not in json.dumps(view)  # no storage or state path goes back

    logs = await w.call("GET", "/runs/run-e2e/logs/total")
    assert logs.code == 200 and logs.body.decode().strip() == "30"
    assert logs.headers["Content-Type"].startswith("text/plain")
    listing = (await w.call("GET", "/runs/run-e2e/logs/count")).body.decode()
    assert "x.txt" in listing

    # who may read and decide: the run's org and the owners of its mounts only
    assert (await w.call("GET", "/runs/run-e2e", "uio-token")).code == 200
    assert (await w.call("GET", "/runs/run-e2e", "uib-token")).code == 404
    decide = {"path": "copy.txt", "approve": True, "org": "UiS", "reason": "mine"}
    refused = await w.call("POST", "/runs/run-e2e/outputs/decide", "uis-token", decide)
    assert refused.code == 403
    decide["org"] = "UiO"
    approved = await w.call("POST", "/runs/run-e2e/outputs/decide", "uio-token", decide)
    assert approved.code == 200, approved.body
    done = {o["path"]: o for o in json.loads(approved.body)["outputs"]}
    assert done["copy.txt"]["decision"] == "released"
    assert (home / "copy.txt").read_bytes() == (data / "x.txt").read_bytes()
    assert (home / "copy.txt").stat().st_uid == SCIENTIST_UID
    twice = await w.call("POST", "/runs/run-e2e/outputs/decide", "uio-token", decide)
    assert twice.code == 409

    # the workspace (a copy of the home) is gone; the decisions survive a restart
    assert not (w.top / "executor/runs/run-e2e/workspace").exists()
    _app2, web2, server2, _url = start_executor(w.top, w.sandbox, "http://127.0.0.1:9", {})
    w.servers.append(server2)
    view2 = web2.settings["executor"].get("UiS", "run-e2e")
    assert {o["path"]: o["decision"] for o in view2["outputs"]}["copy.txt"] == "released"


@pytest.mark.asyncio
async def test_a_log_that_shows_leased_data_is_held_like_a_file(world) -> None:
    w, broker_dir = world
    data = data_dir(w.top)
    home = home_of(w.top)
    handle = await materialize(broker_dir, data, "run-log")
    body = run_body(
        "run-log", home, handle, manifest("run-log", "cat /data/words/x.txt", "echo done"), ""
    )
    assert (await w.call("POST", "/runs", "uis-token", body)).code == 202
    view = await wait_gate(w, "run-log")
    decisions = {o["path"]: o["decision"] for o in view["outputs"]}
    assert decisions == {
        ".dshare/runs/run-log/logs/count.log": "held",
        ".dshare/runs/run-log/logs/total.log": "released",
    }
    shown = (await w.call("GET", "/runs/run-log/logs/count")).body.decode()
    corpus = (data / "x.txt").read_text()
    assert corpus.splitlines()[0] not in shown
    assert "the output gate held the log of count" in shown and "verbatim" in shown
    assert (await w.call("GET", "/runs/run-log/logs/total")).body.decode() == "done\n"
    assert not (home / ".dshare/runs/run-log/logs/count.log").exists()
    assert (home / ".dshare/runs/run-log/logs/total.log").read_text() == "done\n"


@pytest.mark.asyncio
async def test_a_denied_output_is_deleted_and_never_delivered(world) -> None:
    w, broker_dir = world
    data = data_dir(w.top)
    home = home_of(w.top)
    handle = await materialize(broker_dir, data, "run-deny")
    body = run_body(
        "run-deny", home, handle, manifest("run-deny", "cp /data/words/x.txt c.txt", "true"), ""
    )
    assert (await w.call("POST", "/runs", "uis-token", body)).code == 202
    view = await wait_gate(w, "run-deny")
    assert [o["decision"] for o in view["outputs"]] == ["held"]
    staged = w.top / "executor/runs/run-deny/outputs/c.txt"
    assert staged.exists()
    denied = await w.call(
        "POST",
        "/runs/run-deny/outputs/decide",
        "uio-token",
        {"path": "c.txt", "approve": False, "org": "UiO", "reason": "raw rows"},
    )
    assert json.loads(denied.body)["outputs"][0]["decision"] == "denied"
    assert not staged.exists() and not (home / "c.txt").exists()


@pytest.mark.asyncio
async def test_a_lessee_broker_cannot_loosen_the_owners_release_policy(world) -> None:
    # The submitting broker is the lessee's (UiS here). It claims the owner lets everything
    # out; the owner's record beside the handle says "checks", and the copy is held.
    w, broker_dir = world
    lax = {"lease-1": {"owner_org": "UiO", "release": {"mode": "auto", "checks": []}}}
    view, home, _data = await run_one_job(
        w, broker_dir, "run-lax", "cp /data/words/x.txt c.txt", policies=lax
    )
    assert [(o["path"], o["decision"]) for o in view["outputs"]] == [("c.txt", "held")]
    assert not (home / "c.txt").exists()


@pytest.mark.asyncio
async def test_a_broker_delivers_only_to_its_own_users_own_account(world) -> None:
    # UiS's broker names the run's user and account; the executor checks both itself, so a
    # broker cannot have results written (as root) into another org's scientist's home.
    w, broker_dir = world
    data = data_dir(w.top)
    home = home_of(w.top)
    other_home = home_of(w.top, OTHER_UID, "other-home")
    account("olga", OTHER_UID, other_home)
    handle = await materialize(broker_dir, data, "run-acct")
    body = run_body("run-acct", home, handle, manifest("run-acct", "true", "true"), "")
    cases = [
        (
            {"uid": OTHER_UID, "gid": OTHER_UID, "home": str(other_home)},
            403,
            "uid, gid and home must be those of sam's own account (sam); the executor "
            "delivers nowhere else",
        ),
        (
            {"user": "olga", "uid": OTHER_UID, "gid": OTHER_UID, "home": str(other_home)},
            403,
            "user 'olga' is not a member of UiS; a broker submits runs of its own "
            "organization's users only",
        ),
        (
            {"user": "nobody-here"},
            400,
            "user: 'nobody-here' has no OS account (nobody-here) on this host",
        ),
    ]
    for change, status, message in cases:
        reply = await w.call("POST", "/runs", "uis-token", {**body, **change})
        assert (reply.code, json.loads(reply.body)["message"]) == (status, message)
    assert not (w.top / "executor/runs/run-acct").exists(), "a refused run left state behind"
    assert (await w.call("POST", "/runs", "uis-token", body)).code == 202


@pytest.mark.asyncio
async def test_a_failed_jobs_message_does_not_carry_its_log_past_the_gate(world) -> None:
    # The log is gated like a file; the run's message must not quote it on the side.
    w, broker_dir = world
    view, _home, _data = await run_one_job(
        w, broker_dir, "run-tail", "head -n 5 /data/words/x.txt; exit 3"
    )
    assert (view["state"], view["message"]) == ("failed", "job count failed (exit code 3)")
    assert "quick brown fox" not in json.dumps(view)


@pytest.mark.asyncio
async def test_a_file_named_after_the_data_is_held_and_shown_redacted(world) -> None:
    # Names leave a run as surely as contents: the job names a file with the data's first
    # 120 bytes. Nobody but the home, after the owner's release, learns that name.
    w, broker_dir = world
    job = "python3 -c \"open(open('/data/words/x.txt').read()[:120], 'w').write('42')\""
    view, home, data = await run_one_job(w, broker_dir, "run-name", job)
    secret = (data / "x.txt").read_text()[:120]
    (named,) = [o for o in view["outputs"] if o["size"] == 2]
    assert named["path"].startswith("redacted-") and named["decision"] == "held"
    assert named["checks"][0]["message"].startswith("the name of this file copies lease")
    assert secret.splitlines()[0] not in json.dumps(view)
    assert not (home / secret).exists()
    released = await w.call(
        "POST",
        "/runs/run-name/outputs/decide",
        "uio-token",
        {"path": named["path"], "approve": True, "org": "UiO", "reason": ""},
    )
    assert released.code == 200, released.body
    assert (home / secret).read_text() == "42", "the owner's release delivers it under its name"


@pytest.mark.asyncio
async def test_a_file_the_ledger_cannot_record_is_not_delivered(world) -> None:
    w, broker_dir = world
    deep = "/".join(["d" * 200] * 6)
    job = f"mkdir -p {deep} && echo 42 > {deep}/r.txt && echo ok > ok.txt"
    view, home, _data = await run_one_job(w, broker_dir, "run-deep", job)
    assert [o["path"] for o in view["outputs"] if not o["path"].startswith(".dshare")] == ["ok.txt"]
    assert any("longer than 1024 characters" in warning for warning in view["warnings"])
    assert (home / "ok.txt").exists() and not (home / ("d" * 200)).exists()


@pytest.mark.asyncio
async def test_jobs_run_under_the_configured_limits(world) -> None:
    w, broker_dir = world
    view, home, _data = await run_one_job(
        w, broker_dir, "run-lim", "cat /proc/self/limits > limits.txt"
    )
    assert view["state"] == "succeeded", view
    rows = {
        line[:26].strip(): line[26:].split()[:2]
        for line in (home / "limits.txt").read_text().splitlines()[1:]
    }
    assert rows["Max processes"] == ["300", "300"]
    assert rows["Max address space"] == [str(3 * 1024**3)] * 2
    assert rows["Max file size"] == [str(1024**3)] * 2


@pytest.mark.asyncio
async def test_a_lease_expiring_mid_run_kills_the_jobs(world) -> None:
    w, broker_dir = world
    data = data_dir(w.top)
    home = home_of(w.top)
    handle = await materialize(broker_dir, data, "run-exp")
    body = run_body(
        "run-exp",
        home,
        handle,
        manifest("run-exp", "sleep 60", "true"),
        "",
        expires_at=later(2),
    )
    started = time.monotonic()
    assert (await w.call("POST", "/runs", "uis-token", body)).code == 202
    view = await wait_gate(w, "run-exp", timeout=40)
    assert time.monotonic() - started < 30
    assert view["state"] == "failed"
    assert view["message"].startswith("lease lease-1 expired at ")
    assert view["jobs"][0]["state"] == "failed"
    assert view["jobs"][1]["state"] == "skipped"


@pytest.mark.asyncio
async def test_a_mount_outside_the_owners_root_is_refused_over_the_api(world) -> None:
    w, _broker_dir = world
    data = data_dir(w.top)
    home = home_of(w.top)
    fake = w.top / "fake"
    (fake / "run-x").mkdir(parents=True)
    (fake / "run-x" / "lease-1").symlink_to(data)
    (fake / "run-x" / "lease-1.json").write_text(
        json.dumps({"run_id": "run-x", "lease_id": "lease-1", "user": "sam"})
    )
    body = run_body(
        "run-x", home, str(fake / "run-x/lease-1"), manifest("run-x", "true", "true"), ""
    )
    r = await w.call("POST", "/runs", "uis-token", body)
    error = json.loads(r.body)
    assert (r.code, error["code"]) == (403, "MOUNT_REFUSED")
    assert "lease lease-1" in error["message"] and str(w.top) not in error["message"]
    assert (await w.call("GET", "/runs/run-x")).code == 404


@pytest.mark.asyncio
async def test_without_a_sandbox_no_run_starts(world) -> None:
    w, broker_dir = world
    w.web_app.settings["executor"].sandbox = Sandbox(None, "bwrap is not installed")
    home = home_of(w.top)
    handle = await materialize(broker_dir, data_dir(w.top), "run-ns")
    body = run_body("run-ns", home, handle, manifest("run-ns", "true", "true"), "")
    r = await w.call("POST", "/runs", "uis-token", body)
    error = json.loads(r.body)
    assert (r.code, error["code"]) == (503, "SANDBOX_UNAVAILABLE")
    assert "apt-get install bubblewrap" in error["message"]
    assert "user namespaces" in error["message"]


@pytest.mark.asyncio
async def test_a_restart_fails_running_runs_and_frees_their_uid(world, sandbox) -> None:
    w, _ = world
    service = w.web_app.settings["executor"]
    record = {
        "id": "run-old",
        "org": "UiS",
        "user": "sam",
        "owners": [],
        "state": "running",
        "job_uid": POOL.first + 3,
        "jobs": [{"name": "a", "state": "running"}, {"name": "b", "state": "pending"}],
        "outputs": [],
        "gate_done": False,
    }
    service.store.save(record)
    _app, web2, server2, _ = start_executor(w.top, sandbox, "http://127.0.0.1:9", {})
    w.servers.append(server2)
    view = web2.settings["executor"].get("UiS", "run-old")
    assert view["state"] == "failed" and "executor restarted" in view["message"]
    assert [j["state"] for j in view["jobs"]] == ["failed", "skipped"]
    assert view["gate_done"]
    assert os.stat(w.top / "executor/runs/run-old/run.json").st_mode & 0o077 == 0


@pytest.mark.asyncio
async def test_cancel_kills_the_jobs_and_a_job_sees_no_hub_token(world, monkeypatch) -> None:
    w, broker_dir = world
    # the executor's own credentials are in its environment; a job must not inherit them
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "executor-secret")
    home = home_of(w.top)
    handle = await materialize(broker_dir, data_dir(w.top), "run-cancel")
    first = "env > env.txt; sleep 60"
    body = run_body("run-cancel", home, handle, manifest("run-cancel", first, "true"), "")
    assert (await w.call("POST", "/runs", "uis-token", body)).code == 202
    for _ in range(100):
        view = json.loads((await w.call("GET", "/runs/run-cancel")).body)
        if view["state"] == "running":
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    assert (await w.call("POST", "/runs/run-cancel/cancel", "uio-token")).code == 403
    assert (await w.call("POST", "/runs/run-cancel/cancel", "uis-token")).code == 200
    view = await wait_gate(w, "run-cancel", timeout=30)
    assert view["state"] == "cancelled"
    env = (home / "env.txt").read_text()
    assert "executor-secret" not in env and "JUPYTERHUB" not in env


@pytest.mark.asyncio
async def test_a_body_over_the_limit_is_refused(world) -> None:
    w, _ = world
    w.web_app.settings["max_body_bytes"] = 100
    r = await w.call("POST", "/runs", "uis-token", {"run_id": "x" * 200})
    assert (r.code, json.loads(r.body)["code"]) == (413, "TOO_LARGE")


@pytest.mark.asyncio
async def test_every_route_and_method_needs_a_broker_token(world) -> None:
    """Fails when a handler is added without the brokers-only check."""
    w, _ = world
    api = PREFIX + "api/v1"
    checked = []
    for pattern, handler in routes(PREFIX):
        if not pattern.startswith(api + "/"):
            continue  # the service root and the catch-all: below
        for method in ("GET", "POST"):
            if getattr(handler, method.lower()) is getattr(RequestHandler, method.lower()):
                continue  # not implemented: tornado answers 405 to anyone
            path = re.sub(r"\([^)]*\)", "x", pattern).removeprefix(api)
            body = {} if method == "POST" else None
            anonymous = await w.call(method, path, None, body)
            as_user = await w.call(method, path, "sam-token", body)
            assert anonymous.code == 401, (handler.__name__, method, anonymous.body)
            assert as_user.code == 403, (handler.__name__, method, as_user.body)
            checked.append((handler.__name__, method))
    assert len(checked) == 5, checked
    # The service's own prefix answers JupyterHub's readiness check with its name only.
    root = await AsyncHTTPClient().fetch(w.url.removesuffix("api/v1"), raise_error=False)
    assert root.code == 200
    assert json.loads(root.body) == {"service": "dshare-executor", "api": "api/v1"}
    nothing = await AsyncHTTPClient().fetch(w.url.removesuffix("api/v1") + "x", raise_error=False)
    assert (nothing.code, json.loads(nothing.body)["code"]) == (404, "NOT_FOUND")

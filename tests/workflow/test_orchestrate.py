"""run_workflow with the in-memory broker double: the broker is always told the outcome."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from dshare_server.workflow import CompileError, LocalRunner, SpecError
from dshare_server.workflow.orchestrate import RunContext, run_workflow
from dshare_server.workflow.sandbox import bwrap_path

from .broker_double import BrokerRefused, InMemoryBroker
from .thesis import LABELS, LISTING_5_2_IDS, write_corpus, write_scripts


def context(tmp_path: Path, home: Path, **kw) -> RunContext:
    return RunContext(
        user="alice",
        mode="local",
        home_dir=str(home),
        cwd=kw.pop("cwd", str(home)),
        run_root=str(tmp_path / "runs"),
        sandbox=kw.pop("sandbox", False),
        **kw,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.mark.skipif(bwrap_path() is None, reason="the listing's absolute paths need bubblewrap")
def test_thesis_listing_5_2_runs_unchanged(tmp_path, home, listing):
    broker = InMemoryBroker()
    expected = {}
    for seed, (org, lease_id) in enumerate(LISTING_5_2_IDS.items()):
        expected[org] = write_corpus(tmp_path / "datasets" / org, files=3, lines=50, seed=seed)
        broker.add_lease(lease_id, tmp_path / "datasets" / org, name=org)
    write_scripts(home)
    updates = []
    run = asyncio.run(
        run_workflow(
            listing("listing_5_2"),
            broker,
            context(tmp_path, home, sandbox=True),
            on_update=lambda r: updates.append(r.counts()["succeeded"]),
        )
    )
    assert run.state == "succeeded", run.message
    result = (home / "result.txt").read_text()
    assert result == "".join(f"{LABELS[o]}: {expected[o]}\n\n" for o in ("uis", "uio", "uib"))
    assert broker.calls == ["list_leases", "start_run", "finish_run"]
    ((run_id, outcome, digest),) = broker.finished
    assert (run_id, outcome) == (run.id, "succeeded")
    assert digest is not None and len(digest) == 64
    assert broker.runs[run.id]["lease_ids"] == list(LISTING_5_2_IDS.values())
    assert updates[-1] == 5
    # Job 1 (`ls /home/jovyan/`) ran first, in the notebook's home as jobs see it.
    assert run.logs("job-1").split() == ["final-result.py", "uib.py", "uio.py", "uis.py"]


def test_failed_run_is_reported_failed(tmp_path, home):
    broker = InMemoryBroker()
    run = asyncio.run(
        run_workflow("jobs: ['exit 4', echo]\ndags: ['1 >> 2']", broker, context(tmp_path, home))
    )
    assert run.state == "failed"
    assert broker.finished == [(run.id, "failed", None)]


def test_refused_spec_starts_nothing(tmp_path, home):
    broker = InMemoryBroker()
    with pytest.raises(SpecError) as info:
        asyncio.run(
            run_workflow(
                "jobs:\n- command: ls\n  volumes: [{id: nope, path: /d}]\n",
                broker,
                context(tmp_path, home),
            )
        )
    assert [p.message for p in info.value.problems] == [
        "volume id `nope` is not one of your leases"
    ]
    assert broker.calls == ["list_leases"]
    assert broker.runs == {}


def test_broker_refusal_to_start_is_raised_and_nothing_runs(tmp_path, home):
    broker = InMemoryBroker()
    broker.add_lease("l1", tmp_path)
    broker.leases["l1"]["lessee_user"] = "alice"

    async def refuse(*args):
        raise BrokerRefused("LEASE_EXPIRED", "lease l1 has expired")

    broker.start_run = refuse  # type: ignore[method-assign]
    with pytest.raises(BrokerRefused) as info:
        asyncio.run(
            run_workflow(
                "jobs:\n- command: touch ran\n  volumes: [{id: l1, path: /home/jovyan/d}]\n",
                broker,
                context(tmp_path, home),
            )
        )
    assert str(info.value) == "LEASE_EXPIRED: lease l1 has expired"
    assert not (home / "ran").exists()


def test_compile_failure_after_start_is_still_reported(tmp_path, home):
    broker = InMemoryBroker()
    broker.add_lease("l1", tmp_path, expires_in=timedelta(seconds=30))
    original = broker.start_run

    async def start_with_expired_mount(name, lease_ids, sha):
        started = await original(name, lease_ids, sha)
        started["mounts"]["l1"]["expires_at"] = "2000-01-01T00:00:00Z"
        return started

    broker.start_run = start_with_expired_mount  # type: ignore[method-assign]
    with pytest.raises(CompileError):
        asyncio.run(
            run_workflow(
                "jobs:\n- command: ls\n  volumes: [{id: l1, path: /home/jovyan/d}]\n",
                broker,
                context(tmp_path, home),
            )
        )
    assert broker.finished == [("run-1", "failed", None)]


def test_cancel_is_reported_cancelled(tmp_path, home):
    broker = InMemoryBroker()

    async def scenario():
        runner = LocalRunner(tmp_path / "r", sandbox=False)
        task = asyncio.ensure_future(
            run_workflow(
                "jobs: ['touch started; sleep 60']", broker, context(tmp_path, home), runner=runner
            )
        )
        for _ in range(400):
            if (home / "started").exists():
                break
            await asyncio.sleep(0.025)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert broker.finished == [("run-1", "cancelled", None)]


def test_dry_run_compiles_without_starting(tmp_path, home):
    broker = InMemoryBroker()
    broker.add_lease("l1", tmp_path)
    run = asyncio.run(
        run_workflow(
            "jobs:\n- command: ls\n  volumes: [{id: l1, path: /home/jovyan/d}]\n",
            broker,
            context(tmp_path, home),
            dry_run=True,
        )
    )
    assert run.mode == "dry-run"
    assert run.manifest["spec"]["volumes"][1] == {
        "name": "lease-1",
        "persistentVolumeClaim": {"claimName": "dshare-lease-l1", "readOnly": True},
    }
    assert broker.calls == ["list_leases"]


def test_working_dir_follows_the_notebook(tmp_path, home):
    (home / "project").mkdir()
    ctx = context(tmp_path, home, cwd=str(home / "project"))
    assert ctx.working_dir() == "/home/jovyan/project"
    assert context(tmp_path, home, cwd=str(tmp_path)).working_dir() == "/home/jovyan"


def test_local_run_keeps_job_states_for_the_runs_panel(tmp_path, home):
    import json

    broker = InMemoryBroker()
    run = asyncio.run(
        run_workflow(
            "jobs: ['echo one', 'exit 3']\ndags: ['1 >> 2']", broker, context(tmp_path, home)
        )
    )
    recorded = json.loads((tmp_path / "runs" / run.id / "run.json").read_text())
    assert recorded["state"] == "failed"
    assert [(j["name"], j["state"], j["exit_code"]) for j in recorded["jobs"]] == [
        ("job-1", "succeeded", 0),
        ("job-2", "failed", 3),
    ]

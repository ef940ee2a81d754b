"""`%dshare_run` through the broker's executor, against a double of the broker's REST API:
what the server sends (the workflow, a snapshot of the home without skeletons or run
records, the working directory) and how it follows, reports and cancels the run."""

from __future__ import annotations

import asyncio
import base64
import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from dshare_server.workflow.orchestrate import RunContext, run_workflow

pytestmark = pytest.mark.asyncio

WORKFLOW = "name: count\njobs:\n- echo one\n- echo two\ndags: ['1 >> 2']\n"


class ExecutorBrokerDouble:
    """Answers like the broker: the run goes from running to finished after `polls`."""

    def __init__(self, polls: int = 2, outputs: list[dict[str, Any]] | None = None) -> None:
        self.polls = polls
        self.outputs = outputs or []
        self.submitted: dict[str, Any] = {}
        self.cancelled: list[str] = []

    async def list_leases(self) -> list[dict[str, Any]]:
        return []

    async def submit_run(self, body: dict[str, Any]) -> dict[str, Any]:
        self.submitted = body
        return {"run": {"id": "R-1", "state": "running"}}

    async def get_run(self, run_id: str) -> dict[str, Any]:
        self.polls -= 1
        done = self.polls <= 0
        state = "succeeded" if done else "running"
        return {
            "id": run_id,
            "state": "finished" if done else "running",
            "outcome": "succeeded" if done else None,
            "jobs": [{"name": "job-1", "state": state}, {"name": "job-2", "state": state}],
            "outputs": self.outputs if done else [],
        }

    async def run_logs(self, run_id: str, job: str) -> str:
        return f"log of {job}\n"

    async def cancel_run(self, run_id: str) -> None:
        self.cancelled.append(run_id)


def _context(home: Path, cwd: Path) -> RunContext:
    return RunContext(user="alice", home_dir=str(home), cwd=str(cwd))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    (h / "analysis").mkdir(parents=True)
    (h / "analysis" / "count.py").write_text("print(1)\n")
    (h / "datasets" / "UiS corpus").mkdir(parents=True)
    (h / "datasets" / "UiS corpus" / "part-0.txt").write_text("")
    (h / ".dshare" / "runs").mkdir(parents=True)
    (h / ".dshare" / "runs" / "old.json").write_text("{}")
    return h


def _members(body: dict[str, Any]) -> set[str]:
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(body["workspace"]))) as archive:
        return {m.name for m in archive.getmembers() if m.isfile()}


async def test_the_server_sends_spec_snapshot_and_working_dir_and_follows_to_the_end(home):
    held = {
        "path": "copy.txt",
        "decision": "held",
        "held_by": ["UiS"],
        "checks": [{"name": "verbatim_input", "passed": False, "message": "copied 4096 bytes"}],
    }
    released = {"path": "count.txt", "decision": "released", "checks": []}
    log = {"path": ".dshare/runs/R-1/logs/job-1.log", "decision": "released", "checks": []}
    broker = ExecutorBrokerDouble(outputs=[released, held, log])
    seen: list[str] = []
    run = await run_workflow(
        WORKFLOW,
        broker,
        _context(home, home / "analysis"),
        on_update=lambda r: seen.append(r.state),
    )
    body = broker.submitted
    assert (body["spec"], body["name"], body["working_dir"]) == (WORKFLOW, "count", "analysis")
    assert _members(body) == {"analysis/count.py"}  # no skeletons, no run records
    assert (run.id, run.state) == ("R-1", "succeeded")
    assert seen[0] == "running" and seen[-1] == "succeeded"
    assert run.logs("job-2") == "log of job-2\n"
    assert "released: count.txt" in run.message
    assert "held for review by UiS: copy.txt (copied 4096 bytes)" in run.message
    assert ".dshare/runs" not in run.message  # released logs are for %dshare_logs


async def test_interrupting_the_run_cancels_it_on_the_broker(home):
    broker = ExecutorBrokerDouble(polls=10_000)
    task = asyncio.ensure_future(run_workflow(WORKFLOW, broker, _context(home, home)))
    while not broker.submitted:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert broker.cancelled == ["R-1"]
    assert broker.submitted["working_dir"] == ""


async def test_no_wait_returns_once_the_broker_accepted_the_run(home):
    broker = ExecutorBrokerDouble(polls=10_000)
    run = await run_workflow(WORKFLOW, broker, _context(home, home), wait=False)
    assert (run.id, run.state, broker.polls) == ("R-1", "running", 10_000)

"""`%dshare_run --mock` on the server's side: the workflow is parsed without the lease
checks (a mock run needs no lease), sent with `mock: true`, and its end is labelled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dshare_server.magic import _arguments
from dshare_server.workflow.orchestrate import MockModeError, RunContext, run_workflow
from dshare_server.workflow.problems import SpecError

pytestmark = pytest.mark.asyncio

WORKFLOW = """\
name: try-it
jobs:
- command: python3 job.py
  volumes:
  - {id: uis-payments, name: payments, path: /data/payments}
"""


class MockBroker:
    def __init__(self) -> None:
        self.submitted: dict[str, Any] = {}
        self.listed = 0

    async def list_leases(self) -> list[dict[str, Any]]:
        self.listed += 1
        return []

    async def submit_run(self, body: dict[str, Any]) -> dict[str, Any]:
        self.submitted = body
        return {"run": {"id": "M-1", "state": "running"}}

    async def get_run(self, run_id: str) -> dict[str, Any]:
        return {
            "id": run_id,
            "state": "finished",
            "outcome": "succeeded",
            "mock": True,
            "jobs": [{"name": "job-1", "state": "succeeded"}],
            "outputs": [{"path": "mock-runs/M-1/out.txt", "decision": "released", "checks": []}],
        }

    async def run_logs(self, run_id: str, job: str) -> str:
        return "ok\n"

    async def cancel_run(self, run_id: str) -> None:
        raise AssertionError("not cancelled")


def _ctx(tmp_path: Path, mode: str = "broker") -> RunContext:
    ctx = RunContext(user="alice", home_dir=str(tmp_path), cwd=str(tmp_path))
    ctx.mode = mode  # type: ignore[assignment]
    return ctx


async def test_a_mock_run_needs_no_lease_and_is_labelled(tmp_path):
    broker = MockBroker()
    run = await run_workflow(WORKFLOW, broker, _ctx(tmp_path), mock=True)  # type: ignore[arg-type]
    assert broker.listed == 0, "a mock run does not look at leases"
    assert broker.submitted["mock"] is True
    assert broker.submitted["spec"] == WORKFLOW
    assert run.state == "succeeded"
    assert run.mode == "mock"
    assert run.message.splitlines()[0] == (
        "MOCK RUN M-1: the jobs read mock data (synthetic rows from each dataset's schema, "
        "not the real rows); its outputs are mock results, in ~/mock-runs/M-1/"
    )
    assert "released: mock-runs/M-1/out.txt" in run.message


async def test_without_mock_the_same_workflow_needs_its_lease(tmp_path):
    with pytest.raises(SpecError) as info:
        await run_workflow(WORKFLOW, MockBroker(), _ctx(tmp_path))  # type: ignore[arg-type]
    assert "volume id `uis-payments` is not one of your leases" in str(info.value)


async def test_a_local_server_refuses_mock_runs(tmp_path):
    with pytest.raises(MockModeError) as info:
        await run_workflow(WORKFLOW, MockBroker(), _ctx(tmp_path, "local"), mock=True)  # type: ignore[arg-type]
    assert str(info.value) == (
        "--mock runs through your organization's broker, which makes the mocks; "
        "this server runs workflows locally (DSHARE_RUNNER=local)"
    )


async def test_the_magic_takes_mock():
    args = _arguments().parse_args(["--mock", "workflow.yaml"])
    assert (args.mock, args.file) == (True, "workflow.yaml")

"""Mock runs in the broker, on a real embedded ledger, with a recording runner: what the
executor is sent (schemas, never a handle), what is refused and how, and that nothing of
it reaches the ledger."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import pytest_asyncio
from embedded_broker import broker_app
from traitlets import TraitError

from dshare_hub.broker.app import BrokerApp, load_openapi
from dshare_hub.broker.errors import ApiError
from dshare_hub.broker.mockruns import MockRuns
from dshare_hub.broker.runner import Submission
from dshare_hub.broker.runs import RunService
from dshare_hub.broker.views import Caller
from dshare_hub.demo.content import PAYMENT_COLUMNS
from dshare_hub.k8s.runner import ArgoRunner
from dshare_hub.ledger.embedded import EmbeddedLedger

pytestmark = pytest.mark.asyncio

SCOPES = frozenset({"custom:dshare:read", "custom:dshare:lease", "custom:dshare:admin"})
ADMIN = Caller("siri", "UiS", ("admin",), SCOPES)
SAM = Caller("sam", "UiS", ("scientist",), SCOPES - {"custom:dshare:admin"})
KIM = Caller("kim", "UiS", ("scientist",), SCOPES - {"custom:dshare:admin"})
WORKFLOW = """\
name: try-it
jobs:
- command: python3 job.py
  volumes:
  - {{id: '{volume}', name: payments, path: /data/payments}}
"""


class RecordingRunner:
    image = "dshare-local"
    supports_mock = True

    def __init__(self) -> None:
        self.submitted: list[Submission] = []

    def check_user(self, user: str) -> None:
        return None

    async def submit(self, run: Submission) -> None:
        self.submitted.append(run)

    async def status(self, run_id: str, user: str) -> dict[str, Any] | None:
        if not any(s.run_id == run_id for s in self.submitted):
            return None
        return {"state": "succeeded", "gate_done": True, "jobs": [], "outputs": []}

    async def logs(self, run_id: str, user: str, job: str) -> str:
        return "log\n"

    async def cancel(self, run_id: str, user: str) -> None:
        return None


@pytest_asyncio.fixture
async def world(tmp_path: Path, monkeypatch) -> AsyncIterator[tuple[MockRuns, Any, Any]]:
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:9/hub/api")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "unused")
    app = broker_app(tmp_path)
    ledger = EmbeddedLedger.open(app.ledger_db, app.identity_dir, "UiS")
    _web, broker, _reaper = app.build(ledger)
    data = tmp_path / "data"
    data.mkdir()
    (data / "transactions.csv").write_text("step\n1\n")
    await broker.register_dataset(
        ADMIN,
        {
            "id": "uis-payments",
            "name": "UiS payments",
            "columns": PAYMENT_COLUMNS,
            "skeleton": [{"path": "transactions.csv", "size": 8}],
            "storage": {"type": "local", "details": {"path": str(data)}},
        },
    )
    runner = RecordingRunner()
    runs = RunService(broker, runner, state_dir=tmp_path / "broker" / "runs")
    yield MockRuns(runs, rows=7), broker, runner
    await ledger.close()


def body(volume: str) -> dict[str, Any]:
    return {
        "spec": WORKFLOW.format(volume=volume),
        "workspace": base64.b64encode(b"").decode(),
        "mock": True,
    }


async def test_a_dataset_id_becomes_a_mock_mount_and_nothing_reaches_the_ledger(world):
    mocks, broker, runner = world
    started = await mocks.submit(SAM, body("uis-payments"))
    run = started["run"]
    assert run["id"].startswith("M-") and run["mock"] is True
    (sent,) = runner.submitted
    assert sent.mock is True
    assert sent.mounts == {
        "dshare-mock-0": {
            "kind": "mock",
            "dataset_id": "uis-payments",
            "dataset_name": "UiS payments",
            "owner_org": "UiS",
            "columns": PAYMENT_COLUMNS,
            "skeleton": [{"path": "transactions.csv", "size": 8}],
            "rows": 7,
        }
    }
    assert "handle" not in json.dumps(sent.mounts)
    # The compiled workflow mounts the mock's claim where the workflow said.
    volumes = {v["persistentVolumeClaim"]["claimName"] for v in sent.manifest["spec"]["volumes"]}
    assert "dshare-mock-0" in volumes
    # Not on the ledger; the caller's own record says mock, another user sees nothing.
    assert (await broker.runs_of(SAM)) == []
    view = await mocks.get(SAM, run["id"])
    assert (view["state"], view["outcome"], view["dataset_ids"]) == (
        "finished",
        "succeeded",
        ["uis-payments"],
    )
    spec = load_openapi()
    jsonschema.validate(
        view, {"$ref": "#/components/schemas/Run", "components": spec["components"]}
    )
    assert [r["id"] for r in await mocks.list(SAM)] == [run["id"]]
    # Finished, its view is kept: the executor is not asked again (nor need it remember).
    asked = []

    async def forgetful(run_id: str, user: str) -> None:
        asked.append(run_id)
        return None

    runner.status = forgetful
    assert await mocks.get(SAM, run["id"]) == view
    assert [r["id"] for r in await mocks.list(SAM)] == [run["id"]]
    assert asked == []
    assert await mocks.list(KIM) == []
    with pytest.raises(ApiError) as info:
        await mocks.get(KIM, run["id"])
    assert (info.value.code, info.value.message) == (
        "RUN_NOT_FOUND",
        f"run '{run['id']}' does not exist",
    )


async def test_my_own_lease_id_stands_for_its_dataset_in_a_mock_run(world):
    mocks, broker, runner = world
    lease = await broker.request_lease(SAM, "uis-payments", 600, "mock test")
    await mocks.submit(SAM, body(lease["id"]))
    (sent,) = runner.submitted
    assert sent.mounts["dshare-mock-0"]["kind"] == "mock"
    assert sent.mounts["dshare-mock-0"]["dataset_id"] == "uis-payments"
    # Another scientist's lease id names nothing of theirs.
    with pytest.raises(ApiError) as info:
        await mocks.submit(KIM, body(lease["id"]))
    assert (info.value.code, info.value.field) == ("INVALID_ARGUMENT", "spec")
    assert info.value.message == (
        f"spec: volume id `{lease['id']}` is neither a dataset of the catalog nor one of your "
        "leases; a mock run reads the mock of a dataset: write the dataset's id as the "
        "DataExplorer shows it, e.g. `id: uis-payments`"
    )
    assert len(runner.submitted) == 1


async def test_a_runner_without_mocks_refuses_them(world):
    # The Kubernetes runner is such a runner: mock runs are refused on Argo.
    assert not getattr(ArgoRunner, "supports_mock", False)
    mocks, _broker, runner = world
    runner.supports_mock = False
    with pytest.raises(ApiError) as info:
        await mocks.submit(SAM, body("uis-payments"))
    assert (info.value.code, info.value.field) == ("INVALID_STATE", "mock")
    assert info.value.message == (
        "mock runs need the embedded job executor; this broker runs workflows on Kubernetes "
        "(Argo), where mock runs are not supported yet. Lease the datasets and run without "
        "--mock"
    )
    assert runner.submitted == []


@pytest.mark.parametrize("volume", ["STORAGE", "../uis-payments", "uis-payments/../uis-payments"])
async def test_a_storage_path_or_a_traversal_as_volume_id_names_nothing(world, tmp_path, volume):
    """The owner's real storage path (a scientist might guess it) or a path around a
    dataset id: refused with the exact message, nothing sent to the executor."""
    mocks, _broker, runner = world
    volume = str(tmp_path / "data") if volume == "STORAGE" else volume
    with pytest.raises(ApiError) as info:
        await mocks.submit(SAM, body(volume))
    assert (info.value.code, info.value.field) == ("INVALID_ARGUMENT", "spec")
    assert info.value.message == (
        f"spec: volume id `{volume}` is neither a dataset of the catalog nor one of your "
        "leases; a mock run reads the mock of a dataset: write the dataset's id as the "
        "DataExplorer shows it, e.g. `id: uis-payments`"
    )
    assert runner.submitted == [] and await mocks.list(SAM) == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"rows": 100_000},
            "rows: unknown field; allowed fields: spec, workspace, working_dir, name",
        ),
        (
            {"mounts": {"dshare-mock-0": {"kind": "lease", "handle": "h"}}},
            "mounts: unknown field; allowed fields: spec, workspace, working_dir, name",
        ),
    ],
)
async def test_a_scientist_cannot_choose_rows_or_mounts_of_a_mock_run(world, extra, message):
    mocks, _broker, runner = world
    with pytest.raises(ApiError) as info:
        await mocks.submit(SAM, {**body("uis-payments"), **extra})
    assert (info.value.code, info.value.message) == ("INVALID_ARGUMENT", message)
    assert runner.submitted == []


async def test_more_mock_rows_than_the_executor_takes_is_refused_when_configured():
    # Not at the first mock run, where every scientist would get the executor's refusal.
    with pytest.raises(TraitError) as info:
        BrokerApp(mock_run_rows=100_001)
    assert str(info.value) == (
        "The value of the 'mock_run_rows' trait of a BrokerApp instance should not be "
        "greater than 100000, but a value of 100001 was specified"
    )
    assert BrokerApp(mock_run_rows=100_000).mock_run_rows == 100_000

"""Owner-approved code through the whole broker (RunService, the embedded ledger, the local
materializer); only the runner is a recorder, so what the broker would hand the executor
can be looked at: a refused run reaches neither the materializer nor the runner.

The kernel-to-sandbox version of this story is tests/hub/test_code_approval_e2e.py.
"""

from __future__ import annotations

import base64
import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from archives import tgz

from dshare_hub.broker.app import BrokerApp
from dshare_hub.broker.errors import ApiError
from dshare_hub.broker.runner import Submission
from dshare_hub.broker.runs import SUBMIT_FIELDS, RunService
from dshare_hub.broker.service import ADMIN, LEASE, READ
from dshare_hub.broker.views import Caller
from dshare_hub.keys.kek import generate_kek_line
from dshare_hub.ledger.embedded import EmbeddedLedger

pytestmark = pytest.mark.asyncio

SCRIPT = b"print(open('/data/rows/rows.csv').read().count('\\n'))\n"
HELPER = b"print('never approved')\n"


class RecordingRunner:
    """What the broker hands its runner, kept; the run never ends by itself."""

    image = "dshare-job"

    def __init__(self) -> None:
        self.submitted: list[Submission] = []

    def check_user(self, user: str) -> None:
        return None

    async def submit(self, run: Submission) -> None:
        self.submitted.append(run)

    async def status(self, run_id: str, user: str) -> dict[str, Any] | None:
        return {"state": "running", "jobs": []}

    async def logs(self, run_id: str, user: str, job: str) -> str:
        return ""

    async def cancel(self, run_id: str, user: str) -> None:
        return None

    async def decide(self, *args: Any, **kwargs: Any) -> None:
        return None


def _workspace(files: dict[str, bytes]) -> str:
    return base64.b64encode(tgz(files)).decode()


def _shipped(workspace: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(workspace), mode="r:*") as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar
            if m.isfile()
        }


SPEC = """\
name: counted
jobs:
- name: count
  command: python count.py
  volumes:
  - id: '{dataset}'
    name: rows
    path: /data/rows
"""


async def _broker(tmp_path: Path, org: str, storage: Path) -> tuple[Any, Any, RunService]:
    kek = tmp_path / f"kek-{org}"
    kek.write_text(generate_kek_line() + "\n")
    config = BrokerApp(
        org=org,
        data_dir=str(tmp_path / f"broker-{org}"),
        ledger_db=str(tmp_path / "ledger.sqlite"),
        identity_dir=str(tmp_path / "identities"),
        kek_file=str(kek),
        storage_roots=[str(storage)],
    )
    ledger = EmbeddedLedger.open(config.ledger_db, config.identity_dir, org)
    _app, broker, _reaper = config.build(ledger)
    runs = RunService(broker, RecordingRunner(), state_dir=tmp_path / f"runs-{org}")
    return ledger, broker, runs


@pytest_asyncio.fixture
async def world(tmp_path: Path):
    storage = tmp_path / "storage"
    (storage / "rows").mkdir(parents=True)
    (storage / "rows" / "rows.csv").write_text("id\n1\n2\n")
    uis = await _broker(tmp_path, "UiS", storage)
    uio = await _broker(tmp_path, "UiO", storage)
    yield {"uis": uis, "uio": uio, "tmp": tmp_path}
    for ledger, _, runs in (uis, uio):
        await runs.close()
        await ledger.close()


ADA = Caller("ada", "UiS", ("admin",), frozenset({READ, LEASE, ADMIN}))
BEA = Caller("bea", "UiS", ("admin",), frozenset({READ, LEASE, ADMIN}))
SAM = Caller("sam", "UiS", ("scientist",), frozenset({READ, LEASE}))
OLA = Caller("ola", "UiO", ("admin",), frozenset({READ, LEASE, ADMIN}))


async def _dataset(broker, storage: Path, *, required: bool = True) -> str:
    asset = await broker.register_dataset(
        ADA,
        {
            "name": "rows",
            "description": "rows",
            "storage": {"type": "local", "details": {"path": str(storage / "rows")}},
            "policy": {"code_approval_required": required},
        },
    )
    return str(asset["id"])


def _mounts(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "broker-UiS" / "mounts").glob("*/*"))


async def _refused(call, code: str, message: str) -> ApiError:
    with pytest.raises(ApiError) as info:
        await call
    assert (info.value.code, info.value.message) == (code, message)
    return info.value


async def test_request_review_approve_run_and_refuse_the_changed_script(world):
    tmp: Path = world["tmp"]
    _, uis, runs = world["uis"]
    _, _, uio_runs = world["uio"]
    dataset = await _dataset(uis, tmp / "storage")
    await uis.request_lease(SAM, dataset, 3600, "counting")
    body = {
        "spec": SPEC.format(dataset=dataset),
        "workspace": _workspace({"count.py": SCRIPT, "helper.py": HELPER}),
    }
    runner: RecordingRunner = runs.runner  # type: ignore[assignment]

    await _refused(
        runs.submit(SAM, body),
        "POLICY_DENIED",
        f"dataset(s) {dataset} of UiS require code approved by UiS, and no code was approved "
        "for them yet; request approval (My runs, or %dshare_run --request-approval)",
    )
    assert _mounts(tmp) == [] and runner.submitted == []
    assert (await uis.runs_of(SAM)) == []

    reply = await runs.request_approval(SAM, body)
    [request] = reply["items"]
    assert (request["state"], [f["path"] for f in request["files"]]) == ("pending", ["count.py"])
    assert request["files"][0]["content"] == SCRIPT.decode()
    assert reply["code_sha256"] == request["code_sha256"]
    await _refused(
        runs.request_approval(SAM, body),
        "INVALID_STATE",
        f"this code is already waiting for the decision of UiS for {dataset} "
        f"(request '{request['id']}')",
    )

    # Who may not decide: a scientist, the owner's admin who asked, another org's admin.
    await _refused(
        runs.approvals.decide(SAM, request["id"], {"decision": "approve"}),
        "FORBIDDEN",
        "your token lacks the scope custom:dshare:admin; ask an administrator of UiS for the "
        "role that grants it",
    )
    await _refused(
        uio_runs.approvals.decide(OLA, request["id"], {"decision": "approve"}),
        "NOT_OWNER",
        f"only the owner organization 'UiS' may decide on code approval request "
        f"'{request['id']}'; you submitted as 'UiO'",
    )
    for decision, message in (
        ({"decision": "yes"}, "decision: must be 'approve' or 'deny'"),
        ({"decision": "deny"}, "reason: say why the code is denied: the scientist reads it"),
        (
            {"decision": "approve", "why": "x"},
            "why: unknown field; allowed fields: decision, reason",
        ),
    ):
        await _refused(
            runs.approvals.decide(ADA, request["id"], decision), "INVALID_ARGUMENT", message
        )

    review = await runs.approvals.list_requests(ADA, {"scope": "review"})
    [item] = review["items"]
    assert item["previous"] is None
    assert item["diff"].startswith("--- /dev/null\n+++ b/workflow.yaml\n")
    assert "+++ b/count.py\n" in item["diff"]
    await _refused(
        runs.approvals.list_requests(SAM, {"scope": "review"}),
        "FORBIDDEN",
        "your token lacks the scope custom:dshare:admin; ask an administrator of UiS for the "
        "role that grants it",
    )
    approved = await runs.approvals.decide(ADA, request["id"], {"decision": "approve"})
    assert approved["state"] == "approved"

    started = await runs.submit(SAM, body)
    [submitted] = runner.submitted
    assert submitted.run_id == started["run"]["id"]
    # Only the approved file is shipped: the helper a job could exec is not there.
    assert _shipped(submitted.workspace) == {"count.py": SCRIPT}
    # On Kubernetes the seed step copies these from the home, checking each digest.
    assert submitted.code_files == {f["path"]: f["sha256"] for f in request["files"]}
    record = await uis.own_run(SAM, submitted.run_id)
    assert record["code_sha256"] == request["code_sha256"]
    mounted = _mounts(tmp)
    assert mounted, "the approved run's data was not mounted"

    # The script changes: refused on the ledger, naming it; nothing more is mounted.
    changed = {**body, "workspace": _workspace({"count.py": SCRIPT + b"import helper\n"})}
    await _refused(
        runs.submit(SAM, changed),
        "POLICY_DENIED",
        f"dataset(s) {dataset} of UiS require code approved by UiS; this run's code is not "
        f"approved (files changed since approval '{request['id']}': count.py); request "
        "approval again",
    )
    assert len(runner.submitted) == 1 and _mounts(tmp) == mounted

    # Asked again: the owner's review diffs against the approved version; a denial's
    # reason is what the scientist reads.
    second = (await runs.request_approval(SAM, changed))["items"][0]
    review = await runs.approvals.list_requests(ADA, {"scope": "review"})
    item = next(r for r in review["items"] if r["id"] == second["id"])
    assert item["previous"]["id"] == request["id"]
    assert "+import helper\n" in item["diff"]
    assert "workflow.yaml" not in item["diff"]
    await runs.approvals.decide(
        BEA, second["id"], {"decision": "deny", "reason": "imports code nobody approved"}
    )
    mine = await runs.approvals.list_requests(SAM, {})
    assert [(r["state"], r["reason"]) for r in mine["items"]] == [
        ("approved", None),
        ("denied", "imports code nobody approved"),
    ]


async def test_forged_identity_and_bad_requests(world):
    tmp: Path = world["tmp"]
    _, uis, runs = world["uis"]
    free = await _dataset(uis, tmp / "storage", required=False)
    await uis.request_lease(SAM, free, 3600, "counting")
    body = {"spec": SPEC.format(dataset=free), "workspace": _workspace({"count.py": SCRIPT})}
    for field in ("code_sha256", "code"):
        await _refused(
            runs.submit(SAM, {**body, field: "0" * 64}),
            "INVALID_ARGUMENT",
            f"{field}: unknown field; allowed fields: {', '.join(SUBMIT_FIELDS)}",
        )
        await _refused(
            runs.request_approval(SAM, {**body, field: "0" * 64}),
            "INVALID_ARGUMENT",
            f"{field}: unknown field; allowed fields: {', '.join(SUBMIT_FIELDS)}",
        )
    await _refused(
        runs.request_approval(SAM, body),
        "INVALID_STATE",
        "no dataset this workflow reads requires approved code; run it as it is",
    )
    # A dataset without the policy runs as before, with the whole workspace.
    await runs.submit(SAM, body)
    [submitted] = runs.runner.submitted  # type: ignore[attr-defined]
    assert _shipped(submitted.workspace) == {"count.py": SCRIPT}
    assert submitted.code_files is None
    assert "code_sha256" not in await uis.own_run(SAM, submitted.run_id)
    await _refused(
        runs.approvals.list_requests(SAM, {"scope": "everything"}),
        "INVALID_ARGUMENT",
        "scope: must be mine or review",
    )
    await _refused(
        runs.approvals.decide(ADA, "CA-missing", {"decision": "approve"}),
        "APPROVAL_NOT_FOUND",
        "code approval request 'CA-missing' does not exist",
    )

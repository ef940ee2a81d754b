"""Mock runs (`POST runs` with `mock: true`): a workflow run on mocks, before any lease.

Volumes name datasets (or one of the caller's leases, which stands for its dataset);
each becomes a mount of kind "mock" that carries the dataset's public schema only, and
the executor writes the mock files into the run's view itself (executor/mockrun.py). No
lease is checked or used, no owner's broker is asked, nothing is materialized.

Mock runs are not recorded on the ledger. The ledger is the owners' record of how their
data was used and what left runs over it; a mock run uses no one's data and releases
nothing of anyone's, so an entry would only put runs that never touched an owner's data
into its audit trail and cost a transaction per test of the code. The broker keeps its
own record of each (`<data_dir>/mock-runs/<user's folder>/<id>.json`, for My runs) and
logs it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dshare_server.workflow.problems import SpecError
from dshare_server.workflow.spec import parse

from .errors import ApiError, bad
from .mocks import public_asset
from .runner import Submission
from .runs import FINAL, HOME_PATH, RunService, check_submit, compile_run, home_claim
from .service import LEASE, READ
from .views import Caller, check_id, require_object

log = logging.getLogger("dshare.broker")

PREFIX = "M-"
LABEL = "mock run: the jobs read mock data (synthetic rows from each dataset's schema)"
DEFAULT_ROWS = 1000


def is_mock_run(run_id: str) -> bool:
    return run_id.startswith(PREFIX)


def mock_claim(n: int) -> str:
    return f"dshare-mock-{n}"


def mock_mount(asset: dict[str, Any], rows: int) -> dict[str, Any]:
    """What the executor gets of a dataset for a mock run: its public schema, no handle."""
    return {
        "kind": "mock",
        "dataset_id": asset["id"],
        "dataset_name": asset.get("name") or "",
        "owner_org": asset.get("owner_org") or "",
        "columns": asset.get("columns") or [],
        "skeleton": asset.get("skeleton") or [],
        "rows": rows,
    }


class MockRuns:
    def __init__(self, runs: RunService, *, rows: int = DEFAULT_ROWS) -> None:
        self.runs = runs
        self.broker = runs.broker
        self.runner = runs.runner
        self.rows = rows
        self.state_dir = runs.state_dir.parent / "mock-runs"
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- submit ---------------------------------------------------------------------------

    async def submit(self, caller: Caller, body: Any) -> dict[str, Any]:
        self.broker.require(caller, LEASE)
        data = dict(require_object(body, "{spec, workspace, working_dir?, name?, mock}"))
        data.pop("mock", None)
        text, workspace, working_dir, name = check_submit(data, self.runs.max_workspace_bytes)
        if not getattr(self.runner, "supports_mock", False):
            raise ApiError(
                "INVALID_STATE",
                "mock runs need the embedded job executor; this broker runs workflows on "
                "Kubernetes (Argo), where mock runs are not supported yet. Lease the datasets "
                "and run without --mock",
                "mock",
            )
        self.runner.check_user(caller.user)
        try:
            spec = parse(text, leases=None, user=caller.user, home_path=HOME_PATH)
        except SpecError as error:
            raise ApiError("INVALID_ARGUMENT", str(error), "spec") from None
        assets = await self._assets(caller, spec.lease_ids)
        run_id = PREFIX + secrets.token_hex(12)
        claims = {vid: mock_claim(n) for n, vid in enumerate(spec.lease_ids)}
        manifest = compile_run(spec, caller.user, run_id, self.runner.image, claims, working_dir)
        record = {
            "id": run_id,
            "name": name or spec.name or "workflow",
            "user": caller.user,
            "org": self.broker.org,
            "mock": True,
            "lease_ids": [],
            "dataset_ids": [assets[vid]["id"] for vid in spec.lease_ids],
            "spec_sha256": spec.sha256(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        self._save(record)
        try:
            await self.runner.submit(
                Submission(
                    run_id=run_id,
                    org=self.broker.org,
                    user=caller.user,
                    manifest=manifest,
                    home_claim=home_claim(caller.user),
                    mounts={claims[v]: mock_mount(assets[v], self.rows) for v in spec.lease_ids},
                    workspace=workspace,
                    mock=True,
                )
            )
        except BaseException:
            self._path(caller.user, run_id).unlink(missing_ok=True)
            raise
        log.info(
            "mock run %s of %s/%s handed to the executor", run_id, self.broker.org, caller.user
        )
        return {"run": await self._view(record)}

    async def _assets(self, caller: Caller, volume_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Each volume id's dataset: a dataset id, or one of the caller's leases standing
        for its dataset (a mock run reads the mock of it, never the lease's data)."""
        listed = await self.broker.list_leases(caller, {"scope": "mine"})
        lease_assets = {lease["id"]: lease["asset_id"] for lease in listed["items"]}
        out: dict[str, dict[str, Any]] = {}
        for vid in volume_ids:
            try:
                out[vid] = await public_asset(self.broker, caller, lease_assets.get(vid, vid))
            except ApiError as error:
                if error.code not in ("ASSET_NOT_FOUND", "INVALID_ARGUMENT"):
                    raise
                raise bad(
                    "spec",
                    f"volume id `{vid}` is neither a dataset of the catalog nor one of your "
                    "leases; a mock run reads the mock of a dataset: write the dataset's id "
                    "as the DataExplorer shows it, e.g. `id: uis-payments`",
                ) from None
        return out

    # -- records ----------------------------------------------------------------------------

    def _folder(self, user: str) -> Path:
        # A folder per user: My runs, polled by every Lab, reads only its user's records.
        return self.state_dir / hashlib.sha256(user.encode()).hexdigest()[:32]

    def _path(self, user: str, run_id: str) -> Path:
        return self._folder(user) / f"{check_id(run_id, 'run_id')}.json"

    def _save(self, record: dict[str, Any]) -> None:
        path = self._path(record["user"], record["id"])
        path.parent.mkdir(mode=0o700, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, sort_keys=True))
        os.replace(tmp, path)

    def _own(self, caller: Caller, run_id: str) -> dict[str, Any]:
        self.broker.require(caller, READ)
        try:
            record: dict[str, Any] = json.loads(self._path(caller.user, run_id).read_text())
        except (OSError, ValueError):
            record = {}
        if record.get("user") != caller.user or record.get("org") != caller.org:
            # Another user's run does not exist as far as this caller is concerned.
            raise ApiError("RUN_NOT_FOUND", f"run '{run_id}' does not exist")
        return record

    async def _view(self, record: dict[str, Any]) -> dict[str, Any]:
        # A finished run's view never changes: kept in its record, My runs' polling does
        # not ask the executor about it again.
        final: dict[str, Any] | None = record.get("final")
        if final is not None:
            return final
        try:
            found = await self.runner.status(record["id"], record["user"])
        except ApiError:
            found = {}  # the executor is away: the run is shown as still going
        # The executor never heard of it (its state was lost): the run is over, failed.
        status = (
            found
            if found is not None
            else {
                "state": "failed",
                "gate_done": True,
                "message": "the executor has no record of this mock run; run it again",
            }
        )
        state = status.get("state")
        done = state in FINAL and bool(status.get("gate_done"))
        message = str(status.get("message") or "")
        view = {
            **{k: record.get(k) for k in ("id", "name", "user", "org", "lease_ids")},
            "dataset_ids": record.get("dataset_ids") or [],
            "spec_sha256": record.get("spec_sha256"),
            "state": "finished" if done else "running",
            "outcome": state if done else None,
            "started_at": record.get("started_at"),
            "finished_at": status.get("finished_at") if done else None,
            "result_sha256": None,
            "mock": True,
            "label": LABEL,
            "jobs": status.get("jobs", []),
            "message": message,
            "warnings": status.get("warnings", []),
            "outputs": status.get("outputs", []) if done else [],
        }
        if done:
            self._save({**record, "final": view})
        return view

    # -- what the scientist asks about a mock run -------------------------------------------

    async def get(self, caller: Caller, run_id: str) -> dict[str, Any]:
        return await self._view(self._own(caller, run_id))

    async def list(self, caller: Caller, newest: int = 20) -> list[dict[str, Any]]:
        self.broker.require(caller, READ)
        records = []
        for path in self._folder(caller.user).glob(f"{PREFIX}*.json"):
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if record.get("user") == caller.user and record.get("org") == caller.org:
                records.append(record)
        records.sort(key=lambda r: (str(r.get("started_at")), str(r.get("id"))))
        return list(await asyncio.gather(*(self._view(r) for r in records[-newest:])))

    async def logs(self, caller: Caller, run_id: str, job: str) -> str:
        self._own(caller, run_id)
        return await self.runner.logs(run_id, caller.user, job)

    async def cancel(self, caller: Caller, run_id: str) -> dict[str, Any]:
        record = self._own(caller, run_id)
        await self.runner.cancel(run_id, caller.user)
        return await self._view(record)

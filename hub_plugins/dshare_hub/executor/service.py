"""`ExecutorService`: accepts runs from brokers, runs them sandboxed, gates and delivers outputs.

The HTTP layer (handlers.py) only authenticates and shapes errors; every rule lives
here: who may see or decide what, the life of a run, and what survives a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dshare_server.workflow.local_runner import LocalRunner
from dshare_server.workflow.runs import Run

from ..webapi import ApiError, bad
from . import dataview, joblogs, mockrun
from . import workspace as ws
from .deliver import deliver
from .gate import saved_policy
from .identity import JobIdentity, PoolExhausted, UidPool, kill_uid
from .intake import RunRequest, check_run_request, refuse_sandbox
from .jail import Sandbox
from .limits import JobLimits
from .mounts import OpenMount, OrgPlaces, open_mount
from .outputs import corpora_of, gate_run
from .store import ACTIVE_STATES, RunStore

log = logging.getLogger("dshare.executor")
OUTPUT_FIELDS = ("path", "sha256", "size", "decision", "checks", "owners")


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class ExecutorService:
    def __init__(
        self,
        store: RunStore,
        pool: UidPool,
        sandbox: Sandbox,
        orgs: dict[str, OrgPlaces],
        *,
        scan_cap: int = 16 * 1024 * 1024,
        workspace_max_bytes: int = 1024**3,
        parallelism: int | None = None,
        limits: JobLimits | None = None,
        max_mock_runs: int = 3,
    ) -> None:
        self.limits = limits or JobLimits()
        self.max_mock_runs = max_mock_runs
        self.store = store
        self.pool = pool
        self.sandbox = sandbox
        self.orgs = orgs
        self.scan_cap = scan_cap
        self.workspace_max_bytes = workspace_max_bytes
        self.parallelism = parallelism
        self.records: dict[str, dict[str, Any]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._runners: dict[str, LocalRunner] = {}
        self._lock = asyncio.Lock()

    # -- startup -------------------------------------------------------------------

    def recover(self) -> None:
        """Load every run; runs that were going when the executor stopped have failed."""
        for record in self.store.load_all():
            if record.get("state") in ACTIVE_STATES or not record.get("gate_done", True):
                uid = record.get("job_uid")
                if isinstance(uid, int) and uid in self.pool and not kill_uid(uid):
                    log.warning("run %s: processes of uid %s did not die", record["id"], uid)
                if record.get("state") in ACTIVE_STATES:
                    record["state"] = "failed"
                    record["message"] = "the executor restarted; submit the run again"
                    record["finished_at"] = now_iso()
                    for job in record.get("jobs", []):
                        if job.get("state") in ("pending", "running"):
                            job["state"] = "failed" if job["state"] == "running" else "skipped"
                            job["message"] = "the executor restarted"
                else:
                    record["message"] = (
                        record.get("message", "")
                        + " (the executor restarted before the output gate finished; "
                        "nothing more was delivered)"
                    ).strip()
                record["gate_done"] = True
                self.store.save(record)
                # What an interrupted run left: its workspace and its views of the data.
                run_dir = self.store.run_dir(record["id"])
                dataview.remove_views(run_dir)
                shutil.rmtree(run_dir / ws.WORKSPACE, ignore_errors=True)
            self.records[record["id"]] = record

    # -- access --------------------------------------------------------------------

    def _record(self, run_id: str) -> dict[str, Any]:
        record = self.records.get(run_id)
        if record is None:
            raise ApiError("RUN_NOT_FOUND", f"there is no run {run_id}")
        return record

    def _readable(self, org: str, run_id: str) -> dict[str, Any]:
        record = self._record(run_id)
        if org != record["org"] and org not in record.get("owners", []):
            # The same answer as a missing run: a broker learns nothing of others' runs.
            raise ApiError("RUN_NOT_FOUND", f"there is no run {run_id}")
        return record

    @staticmethod
    def view(record: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": record["id"],
            "org": record["org"],
            "user": record["user"],
            "state": record["state"],
            "message": record.get("message", ""),
            "warnings": record.get("warnings", []),
            "created_at": record.get("created_at"),
            "started_at": record.get("started_at"),
            "finished_at": record.get("finished_at"),
            "jobs": record.get("jobs", []),
            "outputs": [{k: o.get(k) for k in OUTPUT_FIELDS} for o in record.get("outputs", [])],
            "gate_done": bool(record.get("gate_done")),
            "mock": bool(record.get("mock")),
        }

    def get(self, org: str, run_id: str) -> dict[str, Any]:
        return self.view(self._readable(org, run_id))

    def logs(self, org: str, run_id: str, job: str) -> str:
        record = self._readable(org, run_id)
        if job not in {j["name"] for j in record.get("jobs", [])}:
            raise ApiError("NOT_FOUND", f"run {run_id} has no job {job!r}")
        return joblogs.shown(self.store.run_dir(run_id), record, job)

    # -- submit --------------------------------------------------------------------

    async def submit(self, org: str, body: Any) -> dict[str, Any]:
        req = check_run_request(body, self.pool)
        if req.org != org:
            raise ApiError(
                "FORBIDDEN", f"organization {org}'s broker cannot submit runs of {req.org}", "org"
            )
        async with self._lock:
            existing = self.records.get(req.run_id)
            if existing is not None:
                if existing.get("digest") != req.digest:
                    raise ApiError(
                        "RUN_CONFLICT",
                        f"run {req.run_id} was already submitted with a different body; "
                        "use a new run id",
                        "run_id",
                    )
                return self.view(existing)
            if not self.sandbox.usable:
                raise refuse_sandbox()
            if req.mock:
                mockrun.check_room(self.records.values(), req.org, req.user, self.max_mock_runs)
            # A mock run opens no owner's handle: its mounts are schemas (mockrun.py).
            opened = [] if req.mock else self._open_mounts(req)
            try:
                groups = tuple(sorted({m.data_gid for m in opened}))
                held = [r["job_uid"] for r in self.records.values() if _holds_uid(r)]
                uid = self.pool.allocate(held)
            except PoolExhausted as error:
                _close(opened)
                raise ApiError("NO_IDENTITY", str(error)) from None
            record = self._new_record(req, JobIdentity(uid, groups), opened)
            try:
                self.store.save(record)
            except OSError:
                _close(opened)
                raise
            self.records[req.run_id] = record
        task = asyncio.ensure_future(self._execute(record, req, opened))
        self._tasks[req.run_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(req.run_id, None))
        return self.view(record)

    def _open_mounts(self, req: RunRequest) -> list[OpenMount]:
        opened: list[OpenMount] = []
        try:
            for claim, mount in sorted(req.mounts.items()):
                opened.append(
                    open_mount(claim, mount, run_id=req.run_id, user=req.user, orgs=self.orgs)
                )
        except BaseException:
            _close(opened)
            raise
        return opened

    @staticmethod
    def _new_record(req: RunRequest, ident: JobIdentity, opened: list[OpenMount]) -> dict:
        return {
            "id": req.run_id,
            "digest": req.digest,
            "org": req.org,
            "user": req.user,
            "home": req.home,
            "uid": req.uid,
            "gid": req.gid,
            "job_uid": ident.uid,
            "job_groups": list(ident.groups),
            "owners": sorted({m.org for m in opened}),
            "leases": {
                m.lease_id: {"org": m.org, "claim": m.claim, "expires_at": m.expires_at.isoformat()}
                for m in opened
            },
            "policies": {m.lease_id: dataclasses.asdict(m.policy) for m in opened},
            "state": "pending",
            "message": "",
            "warnings": [],
            "created_at": now_iso(),
            "started_at": None,
            "finished_at": None,
            "jobs": [],
            "outputs": [],
            "gate_done": False,
            "mock": req.mock,
            "mocks": {c: m["dataset_id"] for c, m in req.mounts.items()} if req.mock else {},
        }

    # -- the run -------------------------------------------------------------------

    async def _execute(self, record: dict[str, Any], req: RunRequest, opened: list[OpenMount]):
        run_dir = self.store.run_dir(req.run_id)
        ident = JobIdentity(record["job_uid"], tuple(record["job_groups"]))
        ws_fd = -1
        view_fds: dict[str, int] = {}
        seeded: ws.Manifest = {}
        try:
            workspace = await asyncio.to_thread(ws.prepare, run_dir, ident.uid)
            seeded, skipped = await asyncio.to_thread(
                ws.seed, workspace, req.workspace, ident, self.workspace_max_bytes
            )
            if skipped:
                record["warnings"].append(
                    f"{len(skipped)} entries of the home were not copied into the run: "
                    + "; ".join(skipped[:5])
                )
            ws_fd = os.open(workspace, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            if req.mock:
                view_fds = await asyncio.to_thread(mockrun.open_mock_views, run_dir, req.mounts)
            else:
                view_fds = await asyncio.to_thread(dataview.open_views, run_dir, opened)
            mounts: dict[str, str | int] = {req.home_claim: ws_fd, **view_fds}
            await self._run_jobs(record, req, ident, opened, mounts, run_dir)
            await self._gate(record, opened, workspace, seeded, run_dir)
        except (ws.WorkspaceError, dataview.ViewError) as error:
            self._end(record, "failed", str(error))
        except asyncio.CancelledError:
            # cancelled before or while the jobs ran (LocalRunner already killed them)
            self._end(record, "cancelled", "the run was cancelled")
        except Exception:
            log.exception("run %s failed in the executor", req.run_id)
            if record["state"] in ACTIVE_STATES:
                self._end(record, "failed", "the executor failed running it; see its log")
        finally:
            if ws_fd >= 0:
                os.close(ws_fd)
            for fd in view_fds.values():
                os.close(fd)
            _close(opened)
            await asyncio.to_thread(dataview.remove_views, run_dir)
            await asyncio.to_thread(kill_uid, ident.uid)
            record["gate_done"] = True
            self.store.save(record)
            with contextlib.suppress(OSError):
                await asyncio.to_thread(shutil.rmtree, run_dir / ws.WORKSPACE)

    def _end(self, record: dict[str, Any], state: str, message: str) -> None:
        record["state"], record["message"] = state, message
        record["finished_at"] = now_iso()
        self.store.save(record)

    async def _run_jobs(
        self,
        record: dict[str, Any],
        req: RunRequest,
        ident: JobIdentity,
        opened: list[OpenMount],
        mounts: dict[str, str | int],
        run_dir: Path,
    ) -> None:
        # Job logs may show data-derived text: root's alone, whatever the umask.
        (run_dir / "logs").mkdir(mode=0o700, exist_ok=True)
        os.chmod(run_dir / "logs", 0o700)
        runner = LocalRunner(
            run_dir,
            parallelism=self.parallelism,
            home_path=req.home_path,
            command_prefix=[*self.limits.prefix(), *ident.setpriv()],
            bwrap=self.sandbox.bwrap,
            tail_in_message=False,  # the log is an output: the gate decides who reads it
        )
        self._runners[req.run_id] = runner

        def update(run: Run) -> None:
            record["jobs"] = [j.as_dict() for j in run.jobs.values()]
            if run.state == "running" and record["state"] == "pending":
                record["state"], record["started_at"] = "running", now_iso()
            self.store.save(record)

        expired: list[OpenMount] = []
        watchdog = None
        if opened:
            first = min(opened, key=lambda m: m.expires_at)

            async def expire() -> None:
                delay = (first.expires_at - datetime.now(UTC)).total_seconds()
                await asyncio.sleep(max(0.0, delay))
                expired.append(first)
                runner.cancel()

            watchdog = asyncio.ensure_future(expire())
        try:
            run = await runner.run(req.manifest, mounts, on_update=update)
        finally:
            self._runners.pop(req.run_id, None)
            if watchdog is not None:
                watchdog.cancel()
        record["jobs"] = [j.as_dict() for j in run.jobs.values()]
        record["warnings"].extend(w for w in run.warnings if "image" not in w)
        if expired:
            lease = expired[0]
            message = f"lease {lease.lease_id} expired at {lease.expires_at.isoformat()}"
            for job in record["jobs"]:
                if job["state"] == "cancelled":
                    job["state"], job["message"] = "failed", message
            self._end(record, "failed", message)
        else:
            self._end(record, run.state, run.message)

    async def _gate(
        self,
        record: dict[str, Any],
        opened: list[OpenMount],
        workspace: Path,
        seeded: ws.Manifest,
        run_dir: Path,
    ) -> None:
        # Nothing of the job uid may still run while its files are read.
        await asyncio.to_thread(kill_uid, record["job_uid"])
        if record.get("mock"):
            gated = await asyncio.to_thread(
                mockrun.gate_mock,
                run_id=record["id"],
                workspace=workspace,
                seeded=seeded,
                staging=run_dir / ws.OUTPUTS,
            )
            record["outputs"] = gated.outputs
            self.store.save(record)
            await self._deliver(record, gated.released)
            return
        policies = {k: saved_policy(k, v) for k, v in record["policies"].items()}

        def unreadable(lease_id: str) -> None:
            log.error("lease %s: cannot read its input for the gate", lease_id)

        corpora = await asyncio.to_thread(
            corpora_of, {m.lease_id: m.fd for m in opened}, policies, self.scan_cap, unreadable
        )
        gated = await asyncio.to_thread(
            gate_run,
            run_id=record["id"],
            workspace=workspace,
            seeded=seeded,
            staging=run_dir / ws.OUTPUTS,
            logs=run_dir / "logs" if opened else None,
            policies=policies,
            corpora=corpora,
            scan_cap=self.scan_cap,
        )
        record["warnings"].extend(gated.warnings)
        record["outputs"] = gated.outputs
        self.store.save(record)
        await self._deliver(record, gated.released)

    async def _deliver(self, record: dict[str, Any], files: dict[str, Path]) -> None:
        if not files:
            return
        result = await asyncio.to_thread(
            deliver, record["home"], record["uid"], record["gid"], files
        )
        for out in record["outputs"]:
            stage = out.get("stage", out["path"])
            why = result.get(stage)
            if why is None:
                continue
            out["delivered"] = not why
            if why:
                out["delivery_error"] = why
                record["warnings"].append(f"{out['path']} could not be written to the home: {why}")
            else:
                with contextlib.suppress(OSError):
                    files[stage].unlink()
        self.store.save(record)

    # -- cancel and decide ---------------------------------------------------------

    async def cancel(self, org: str, run_id: str) -> dict[str, Any]:
        record = self._readable(org, run_id)
        if org != record["org"]:
            raise ApiError("FORBIDDEN", f"only {record['org']}'s broker can cancel run {run_id}")
        runner = self._runners.get(run_id)
        if runner is not None:
            runner.cancel()
        elif record["state"] in ACTIVE_STATES:
            task = self._tasks.get(run_id)
            if task is not None:
                task.cancel()
        return self.view(record)

    async def decide(self, org: str, run_id: str, body: Any) -> dict[str, Any]:
        record = self._readable(org, run_id)
        if not isinstance(body, dict):
            raise bad("body", "must be {path, approve, org, reason}")
        path, approve = body.get("path"), body.get("approve")
        if not isinstance(path, str) or not isinstance(approve, bool):
            raise bad("path", "give the output's path and approve: true or false")
        if body.get("org", org) != org:
            raise ApiError("FORBIDDEN", "org must be the calling broker's organization", "org")
        reason = str(body.get("reason") or "")
        async with self._lock:
            out = next((o for o in record["outputs"] if o["path"] == path), None)
            if out is None:
                raise ApiError("NOT_FOUND", f"run {run_id} has no output {path!r}", "path")
            if out["decision"] != "held":
                raise ApiError("INVALID_STATE", f"output {path!r} is already {out['decision']}")
            if org not in out["owners"]:
                raise ApiError(
                    "FORBIDDEN", f"organization {org} did not hold {path!r}; it cannot decide it"
                )
            out.setdefault("decisions", {})[org] = {
                "approve": approve,
                "reason": reason,
                "at": now_iso(),
            }
            stage = out.get("stage", path)
            staged = self.store.run_dir(run_id) / ws.OUTPUTS / stage
            if not approve:
                out["decision"] = "denied"
                with contextlib.suppress(OSError):
                    staged.unlink()
                self.store.save(record)
            elif all(out["decisions"].get(o, {}).get("approve") for o in out["owners"]):
                out["decision"] = "released"
                self.store.save(record)
                await self._deliver(record, {stage: staged})
            else:
                self.store.save(record)
        return self.view(record)

    async def close(self) -> None:
        for runner in list(self._runners.values()):
            runner.cancel()
        tasks = list(self._tasks.values())
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 30)


def _holds_uid(record: dict[str, Any]) -> bool:
    return record.get("state") in ACTIVE_STATES or not record.get("gate_done", True)


def _close(opened: list[OpenMount]) -> None:
    for m in opened:
        m.close()

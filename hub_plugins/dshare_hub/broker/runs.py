"""Runs: the broker validates, binds the data, hands over to its runner (the job executor
embedded, Argo on Kubernetes: `runner`), follows the run and records how it ended and
what left it.

The scientist's server sends only the workflow text and a snapshot of their home. Here,
in one direction: prepare (parse, check leases, compile with placeholder claims, so a
bad or oversized workflow is refused before anything exists), start (the run on the
ledger), bind (each owner's broker materializes its data for this run only), run (the
runner). Nothing that resolves to the data ever goes back to the caller.

What the broker follows is durable: a file per run in `<data_dir>/runs/` from before the
runner is asked until the outcome is on the ledger, so a restarted broker finishes
what it started.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import os
import posixpath
from datetime import datetime
from pathlib import Path
from typing import Any

from dshare_server.workflow.compiler import CompileContext, CompileError, compile_workflow
from dshare_server.workflow.leases import leases_by_id, parse_timestamp
from dshare_server.workflow.problems import SpecError
from dshare_server.workflow.spec import Spec, parse

from .approvals import CodeApprovals
from .errors import ApiError, bad
from .runner import Runner, Submission
from .service import LEASE, Broker
from .views import Caller, check_id, held_view, require_object, run_view

log = logging.getLogger("dshare.broker")

HOME_PATH = "/home/jovyan"  # the home as jobs see it: the thesis's scripts use this path
FINAL = ("succeeded", "failed", "cancelled")
SUBMIT_FIELDS = ("spec", "workspace", "working_dir", "name")


def lease_claim(lease_id: str) -> str:
    return f"dshare-lease-{lease_id[:16]}"


def home_claim(user: str) -> str:
    return f"claim-{user}"


def check_submit(body: Any, max_workspace_bytes: int) -> tuple[str, bytes, str, str | None]:
    data = require_object(body, "{spec, workspace, working_dir?, name?}")
    unknown = sorted(set(data) - set(SUBMIT_FIELDS))
    if unknown:
        raise bad(unknown[0], f"unknown field; allowed fields: {', '.join(SUBMIT_FIELDS)}")
    spec = data.get("spec")
    if not isinstance(spec, str) or not spec.strip():
        raise bad("spec", "must be the text of workflow.yaml")
    raw = data.get("workspace", "")
    if not isinstance(raw, str):
        raise bad("workspace", "must be a base64 gzip tar of the files the jobs need")
    try:
        workspace = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise bad("workspace", "is not valid base64") from None
    if len(workspace) > max_workspace_bytes:
        raise ApiError(
            "WORKSPACE_TOO_LARGE",
            f"the workspace is {len(workspace):,} bytes; at most {max_workspace_bytes:,} are "
            "accepted. Move large files out of the home or ask for a larger "
            "BrokerApp.max_workspace_bytes",
            "workspace",
        )
    working_dir = data.get("working_dir", "") or ""
    parts = working_dir.split("/") if working_dir else []
    if not isinstance(working_dir, str) or working_dir.startswith("/") or ".." in parts:
        raise bad("working_dir", "must be a path relative to the home, without '..'")
    name = data.get("name")
    if name is not None and (not isinstance(name, str) or not 0 < len(name) <= 200):
        raise bad("name", "must be a string of 1 to 200 characters")
    return spec, workspace, working_dir, name


def mount_record(lease: dict[str, Any], mount: dict[str, Any]) -> dict[str, Any]:
    """What the runner gets of one owner's mount: where it is, and the owner's policy."""
    kept = ("handle", "claim_name", "dataset_id", "dataset_name", "release", "columns")
    return {
        "org": lease["owner_org"],
        "lease_id": lease["id"],
        **{k: mount[k] for k in kept if k in mount},
        "expires_at": mount.get("expires_at") or lease.get("expires_at"),
    }


def release_outputs(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The gate's decisions as the ledger records them."""
    return [
        {
            "path": o["path"],
            "sha256": o["sha256"],
            "size": o["size"],
            "decision": "held" if o.get("decision") == "held" else "released",
            "held_by": sorted(o.get("owners") or []) if o.get("decision") == "held" else [],
            "checks": [
                {"name": c["name"], "passed": bool(c["passed"]), "message": c.get("message", "")}
                for c in o.get("checks") or []
            ],
        }
        for o in outputs
    ]


def outputs_digest(outputs: list[dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for o in sorted(outputs, key=lambda o: o["path"]):
        h.update(f"{o['path']}\0{o['sha256']}\0".encode())
    return h.hexdigest()


def compile_run(
    spec: Spec,
    user: str,
    run_id: str,
    image: str,
    claims: dict[str, str],
    working_dir: str,
    expiry: dict[str, datetime] | None = None,
) -> dict[str, Any]:
    """The workflow the broker runs: compiled here from the spec, never taken from the
    server; `claims` maps each volume id to the claim its mount is bound to."""
    ctx = CompileContext(
        user=user,
        run_id=run_id,
        image=image,
        home_claim=home_claim(user),
        service_account=f"dshare-{user}",
        claims=claims,
        lease_expiry=expiry or {},
        home_path=HOME_PATH,
        working_dir=posixpath.normpath(posixpath.join(HOME_PATH, working_dir or ".")),
    )
    try:
        return compile_workflow(spec, ctx)
    except CompileError as error:
        raise ApiError("INVALID_ARGUMENT", str(error), "spec") from None


class RunService:
    def __init__(
        self,
        broker: Broker,
        runner: Runner,
        *,
        state_dir: Path,
        max_workspace_bytes: int = 64 * 1024 * 1024,
        poll_s: float = 0.5,
    ) -> None:
        self.broker = broker
        self.runner = runner
        self.state_dir = state_dir
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.max_workspace_bytes = max_workspace_bytes
        self.poll_s = poll_s
        self.following: dict[str, asyncio.Task[None]] = {}
        self.approvals = CodeApprovals(broker, image=runner.image, home_path=HOME_PATH)

    # -- prepare, start, bind, run ----------------------------------------------------------

    async def prepare(self, caller: Caller, text: str, working_dir: str) -> tuple[Spec, dict]:
        listed = await self.broker.list_leases(caller, {"scope": "mine"})
        leases = leases_by_id(listed["items"])
        try:
            spec = parse(text, leases=leases, user=caller.user, home_path=HOME_PATH)
        except SpecError as error:
            raise ApiError("INVALID_ARGUMENT", str(error), "spec") from None
        by_id = {lease["id"]: lease for lease in listed["items"]}
        # Compiled once before anything exists, so a workflow Argo would refuse (too large,
        # a bad deadline) is refused here and not after the owners mounted their data.
        self._compile(spec, caller.user, "pending", by_id, working_dir)
        return spec, by_id

    def _compile(
        self, spec: Spec, user: str, run_id: str, leases: dict[str, Any], working_dir: str
    ) -> dict[str, Any]:
        expiry = {
            lease_id: when
            for lease_id in spec.lease_ids
            if (when := parse_timestamp(leases[lease_id].get("expires_at"))) is not None
        }
        claims = {lease_id: lease_claim(lease_id) for lease_id in spec.lease_ids}
        return compile_run(spec, user, run_id, self.runner.image, claims, working_dir, expiry)

    async def submit(self, caller: Caller, body: Any) -> dict[str, Any]:
        self.broker.require(caller, LEASE)
        text, workspace, working_dir, name = check_submit(body, self.max_workspace_bytes)
        self.runner.check_user(caller.user)
        spec, leases = await self.prepare(caller, text, working_dir)
        run_name = name or spec.name or "workflow"
        # Refused on the ledger (RecordRun) when an owner did not approve this code: before
        # anything is mounted. Approved, the run ships only the files of its identity.
        code, workspace = await self.approvals.for_run(caller, spec, leases, workspace, working_dir)
        run = await self.broker.start_run(
            caller, run_name, spec.lease_ids, spec.sha256(), code.ledger_arg() if code else ""
        )
        run_id = str(run["id"])
        try:
            manifest = self._compile(spec, caller.user, run_id, leases, working_dir)
            mounts = await self._bind(run_id, spec, leases, caller.user)
            self._remember(run_id, caller.user)
            await self.runner.submit(
                Submission(
                    run_id=run_id,
                    org=self.broker.org,
                    user=caller.user,
                    manifest=manifest,
                    home_claim=home_claim(caller.user),
                    mounts=mounts,
                    workspace=workspace,
                    code_files=code.files if code else None,
                )
            )
        except BaseException:
            # A run that cannot start ends at once: what was mounted goes, the ledger says so.
            self._forget(run_id)
            await self.broker.end_run(run_id, caller.user, "cancelled")
            raise
        self.follow(run_id, caller.user)
        log.info("run %s of %s/%s handed to its runner", run_id, self.broker.org, caller.user)
        return {"run": run_view(run)}

    async def _bind(
        self, run_id: str, spec: Spec, leases: dict[str, Any], user: str
    ) -> dict[str, Any]:
        # Embedded, each owner's release policy travels in the owner's own mount record,
        # which the executor reads from the owner's side; on Kubernetes the owner's broker
        # returns it with the claim and this broker writes it into the gate step.
        mounts: dict[str, Any] = {}
        for lease_id in spec.lease_ids:
            lease = leases[lease_id]
            mount = await self.broker.materialize_for_run(lease, run_id, user)
            mounts[lease_claim(lease_id)] = mount_record(lease, mount)
        return mounts

    async def request_approval(self, caller: Caller, body: Any) -> dict[str, Any]:
        """POST /approvals: the same body as a run; the broker computes the identity."""
        self.broker.require(caller, LEASE)
        text, workspace, working_dir, _name = check_submit(body, self.max_workspace_bytes)
        spec, leases = await self.prepare(caller, text, working_dir)
        return await self.approvals.request(caller, text, spec, leases, workspace, working_dir)

    # -- following a run to its end ---------------------------------------------------------

    def _record(self, run_id: str) -> Path:
        return self.state_dir / f"{check_id(run_id, 'run_id')}.json"

    def _remember(self, run_id: str, user: str) -> None:
        path = self._record(run_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"run_id": run_id, "user": user}))
        os.replace(tmp, path)

    def _forget(self, run_id: str) -> None:
        self._record(run_id).unlink(missing_ok=True)

    def follow(self, run_id: str, user: str) -> None:
        if run_id not in self.following or self.following[run_id].done():
            self.following[run_id] = asyncio.ensure_future(self._follow(run_id, user))

    def resume(self) -> int:
        """Follow again every run a previous broker process handed over and did not finish."""
        count = 0
        for path in sorted(self.state_dir.glob("*.json")):
            try:
                record = json.loads(path.read_text())
                self.follow(str(record["run_id"]), str(record["user"]))
                count += 1
            except (OSError, ValueError, KeyError):
                log.warning("ignoring an unreadable run record %s", path.name)
        return count

    async def _follow(self, run_id: str, user: str) -> None:
        while True:
            try:
                status = await self.runner.status(run_id, user)
                if status is None:
                    await self._finish(run_id, user, "failed", [])
                    return
                if status.get("state") in FINAL and status.get("gate_done"):
                    await self._finish(run_id, user, status["state"], status.get("outputs") or [])
                    return
            except ApiError as error:
                log.warning("following run %s: %s", run_id, error.message)
            except Exception:
                log.exception("following run %s", run_id)
            await asyncio.sleep(self.poll_s)

    async def _finish(
        self, run_id: str, user: str, outcome: str, outputs: list[dict[str, Any]]
    ) -> None:
        recorded = release_outputs(outputs)
        try:
            await self.broker.end_run(
                run_id, user, outcome, outputs_digest(recorded) if recorded else "", recorded
            )
        except ApiError as error:
            if error.code != "INVALID_STATE":
                raise
            log.warning("run %s had already ended on the ledger: %s", run_id, error.message)
        self._forget(run_id)
        held = sum(1 for o in recorded if o["decision"] == "held")
        log.info("run %s ended %s: %d output(s), %d held", run_id, outcome, len(recorded), held)

    async def close(self) -> None:
        for task in self.following.values():
            task.cancel()

    # -- what the scientist and the owners' admins ask about a run -------------------------

    async def get(self, caller: Caller, run_id: str) -> dict[str, Any]:
        record = await self.broker.own_run(caller, run_id)
        return await self._with_runner(run_view(record), record)

    async def list(self, caller: Caller, newest: int = 50) -> dict[str, Any]:
        """The caller's runs; the newest also with their jobs and outputs."""
        records = await self.broker.runs_of(caller)
        views = [run_view(record) for record in records]
        recent = zip(views[-newest:], records[-newest:], strict=True)
        await asyncio.gather(*(self._with_runner(v, r) for v, r in recent))
        for view in views[:-newest]:
            view.setdefault("jobs", [])
        return {"items": views}

    async def _with_runner(self, view: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        try:
            status = await self.runner.status(view["id"], str(record.get("user") or ""))
        except ApiError:
            status = None
        view["jobs"] = (status or {}).get("jobs", [])
        view["message"] = (status or {}).get("message", "")
        view["warnings"] = (status or {}).get("warnings", [])
        view["outputs"] = record.get("outputs") or (status or {}).get("outputs") or []
        return view

    async def held(self, caller: Caller) -> dict[str, Any]:
        """An owner admin's review queue: held files of runs over this org's data."""
        return {"items": [held_view(run) for run in await self.broker.held_outputs(caller)]}

    async def logs(self, caller: Caller, run_id: str, job: str) -> str:
        await self.broker.own_run(caller, run_id)
        return await self.runner.logs(run_id, caller.user, job)

    async def cancel(self, caller: Caller, run_id: str) -> dict[str, Any]:
        run = await self.broker.get_run(caller, run_id)
        await self.runner.cancel(run_id, str(run.get("user") or caller.user))
        return run

    async def decide(self, caller: Caller, run_id: str, body: Any) -> dict[str, Any]:
        self.broker.require_admin(caller, "decide what leaves runs over its data")
        data = require_object(body, "{path, approve, reason}")
        path, approve, reason = data.get("path"), data.get("approve"), data.get("reason", "")
        if not isinstance(path, str) or not path:
            raise bad("path", "must name a held output of the run")
        if not isinstance(approve, bool):
            raise bad("approve", "must be true or false")
        if not isinstance(reason, str):
            raise bad("reason", "must be a string")
        record = await self.broker.decide_output(caller, run_id, path, approve, reason)
        # The ledger has the decision; the runner delivers (or deletes) the staged file.
        output = next((o for o in record.get("outputs") or [] if o.get("path") == path), None)
        await self.runner.decide(
            run_id,
            str(record.get("user") or ""),
            output=output or {"path": path},
            approve=approve,
            org=self.broker.org,
            reason=reason,
        )
        return record

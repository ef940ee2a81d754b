"""One workflow run from start to end: parse, ask the broker, compile, run, report.

The broker is told how the run ended in every case (success, failure, an exception,
cancellation), because that is what releases the mounts it materialized.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, cast

from .compiler import CompileContext, compile_workflow
from .leases import leases_by_id, parse_timestamp
from .local_runner import LocalRunner
from .runs import JobResult, Run, utcnow
from .spec import Spec, parse
from .workspace import pack_home

UpdateCallback = Callable[[Run], None]


class BrokerClient(Protocol):
    """What the orchestrator needs from the user's organization broker (docs/interfaces.md 3)."""

    async def list_leases(self) -> list[dict[str, Any]]:
        """The caller's leases (`GET /leases?scope=mine`), as Lease JSON."""
        ...

    async def start_run(self, name: str, lease_ids: list[str], spec_sha256: str) -> dict[str, Any]:
        """`POST /runs`: ``{"run": Run, "mounts": {lease_id: Mount}}``."""
        ...

    async def finish_run(
        self, run_id: str, outcome: str, result_sha256: str | None = None
    ) -> dict[str, Any]:
        """`POST /runs/{id}/finish` with succeeded | failed | cancelled."""
        ...


class ExecutorBroker(Protocol):
    """What a run through the broker's executor needs (embedded deployment)."""

    async def list_leases(self) -> list[dict[str, Any]]: ...

    async def submit_run(self, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /runs` with `{spec, workspace, working_dir, name}`: ``{"run": Run}``."""
        ...

    async def get_run(self, run_id: str) -> dict[str, Any]:
        """`GET /runs/{id}`: the ledger's record with the executor's jobs and outputs."""
        ...

    async def run_logs(self, run_id: str, job: str) -> str: ...

    async def cancel_run(self, run_id: str) -> None: ...


@dataclass
class RunContext:
    """Where and as whom a workflow runs; built by the magic or the CLI."""

    user: str
    # broker: the org broker compiles and runs it (its executor, or Argo on Kubernetes);
    # local: in this process, for runs without data. The scientist's server never submits
    # anything that mounts data itself (DESIGN.md, the way data flows).
    mode: Literal["broker", "local"] = "broker"
    home_dir: str = field(default_factory=lambda: os.path.expanduser("~"))  # host side
    cwd: str = field(default_factory=os.getcwd)
    home_path: str = "/home/jovyan"  # the notebook's home as jobs see it
    image: str = field(default_factory=lambda: os.environ.get("JUPYTER_IMAGE", "dshare-local"))
    run_root: str | None = None  # local run directories; default ~/.dshare/runs
    parallelism: int | None = None
    sandbox: bool | None = None
    namespace: str | None = None
    home_claim: str | None = None
    service_account: str | None = None
    filename: str = "workflow.yaml"
    default_name: str = "workflow"

    def working_dir(self) -> str:
        """The notebook's working directory as a path inside the job (jupyterflow's rule)."""
        rel = os.path.relpath(os.path.realpath(self.cwd), os.path.realpath(self.home_dir))
        if rel.startswith(".."):
            return self.home_path
        return posixpath.normpath(posixpath.join(self.home_path, *rel.split(os.sep)))

    def run_dir(self, run_id: str) -> Path:
        root = Path(self.run_root or os.path.join(self.home_dir, ".dshare", "runs"))
        return root / run_id


def local_claim(lease_id: str) -> str:
    return f"dshare-lease-{lease_id[:16]}"


def compile_context(
    spec: Spec, ctx: RunContext, run_id: str, mounts: Mapping[str, Mapping[str, Any]]
) -> CompileContext:
    claims: dict[str, str] = {}
    expiry = {}
    for lease_id in spec.lease_ids:
        mount = mounts.get(lease_id)
        if mount is None:
            raise RuntimeError(f"the broker did not mount lease {lease_id[:12]} for this run")
        claims[lease_id] = str(mount.get("claim_name") or local_claim(lease_id))
        when = parse_timestamp(mount.get("expires_at"))
        if when is not None:
            expiry[lease_id] = when
    return CompileContext(
        user=ctx.user,
        run_id=run_id,
        image=ctx.image,
        home_claim=ctx.home_claim or f"claim-{ctx.user}",
        service_account=ctx.service_account or f"dshare-{ctx.user}",
        claims=claims,
        lease_expiry=expiry,
        home_path=ctx.home_path,
        working_dir=ctx.working_dir(),
        namespace=ctx.namespace,
    )


def result_sha256(run: Run) -> str:
    """A fingerprint of what the jobs printed, recorded with the run's outcome."""
    h = hashlib.sha256()
    for name in sorted(run.jobs):
        h.update(name.encode() + b"\0" + run.jobs[name].logs().encode() + b"\0")
    return h.hexdigest()


def record(run: Run, path: Path) -> None:
    """Write the run's state where other processes can read it, never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(run.as_dict(), sort_keys=True))
    os.replace(tmp, path)


def new_run(spec: Spec, run_id: str, name: str, mode: str) -> Run:
    return Run(
        id=run_id,
        name=name,
        jobs={j.name: JobResult(j.name) for j in spec.jobs},
        edges=list(spec.edges),
        mode=mode,
        warnings=list(spec.warnings),
    )


async def run_workflow(
    text: str,
    broker: BrokerClient,
    ctx: RunContext,
    *,
    dry_run: bool = False,
    wait: bool = True,
    on_update: UpdateCallback | None = None,
    runner: LocalRunner | None = None,
    mock: bool = False,
) -> Run:
    """Run a workflow.yaml; raises SpecError (nothing started) or returns the finished Run.

    ``dry_run`` compiles without asking the broker to start anything (``run.manifest``).
    ``wait=False``: return once the broker has the run; it follows the run to its end.
    ``runner`` lets a caller keep a handle to cancel a local run.
    ``mock``: run on mocks of the datasets the volumes name, no lease needed (the broker
    resolves the ids and checks them; nothing of the real data is mounted).
    """
    notify = on_update or (lambda _run: None)
    if mock and ctx.mode != "broker":
        raise MockModeError(
            "--mock runs through your organization's broker, which makes the mocks; "
            "this server runs workflows locally (DSHARE_RUNNER=local)"
        )
    leases = {} if mock else leases_by_id(await broker.list_leases())
    spec = parse(text, leases=None if mock else leases, user=ctx.user, home_path=ctx.home_path)
    name = spec.name or ctx.default_name
    if dry_run:
        mounts = {
            i: {"claim_name": f"dshare-mock-{n}"}
            if mock
            else {"claim_name": local_claim(i), "expires_at": leases[i].expires_at}
            for n, i in enumerate(spec.lease_ids)
        }
        run = new_run(spec, "dry-run", name, "dry-run")
        run.manifest = compile_workflow(spec, compile_context(spec, ctx, "dry-run", mounts))
        run.state = "succeeded"
        notify(run)
        return run
    if ctx.mode == "broker":
        # The server's broker client speaks both protocols; test doubles may speak one.
        executor = cast(ExecutorBroker, broker)
        return await _run_on_executor(text, spec, name, executor, ctx, wait, notify, mock=mock)
    started = await broker.start_run(name, spec.lease_ids, spec.sha256())
    run_id = str(started["run"]["id"])
    run = new_run(spec, run_id, name, ctx.mode)
    if ctx.mode == "local":
        # The server extension's My runs panel reads job states from here.
        record_path = ctx.run_dir(run_id) / "run.json"
        user_notify = notify

        def notify(run: Run) -> None:
            record(run, record_path)
            user_notify(run)

    outcome = "failed"
    try:
        mounts = started.get("mounts") or {}
        run.manifest = compile_workflow(spec, compile_context(spec, ctx, run_id, mounts))
        if ctx.mode == "local":
            runner = runner or LocalRunner(
                ctx.run_dir(run_id),
                parallelism=ctx.parallelism,
                sandbox=ctx.sandbox,
                home_path=ctx.home_path,
            )
            host_dirs = {local_claim(i): str(m["handle"]) for i, m in mounts.items()}
            host_dirs[ctx.home_claim or f"claim-{ctx.user}"] = ctx.home_dir
            await runner.run(run.manifest, host_dirs, run=run, on_update=notify)
        outcome = run.state if run.state in ("succeeded", "failed", "cancelled") else "failed"
    except (asyncio.CancelledError, KeyboardInterrupt):
        outcome = "cancelled"
        run.state, run.message = "cancelled", "the run was cancelled"
        raise
    except Exception as exc:
        run.state, run.message = "failed", f"{exc.__class__.__name__}: {exc}"
        raise
    finally:
        # Reported even when cancelled: the broker releases what it mounted.
        digest = result_sha256(run) if outcome == "succeeded" else None
        await asyncio.shield(broker.finish_run(run_id, outcome, digest))
        run.finished_at = run.finished_at or utcnow()
        notify(run)
    return run


def _apply_broker_view(run: Run, view: dict[str, Any]) -> None:
    for info in view.get("jobs") or []:
        job = run.jobs.get(str(info.get("name")))
        if job is None:
            continue
        job.state = str(info.get("state") or job.state)
        job.exit_code = info.get("exit_code")
        job.message = str(info.get("message") or "")
        job.started_at = parse_timestamp(info.get("started_at"))
        job.finished_at = parse_timestamp(info.get("finished_at"))
    if view.get("state") == "finished":
        run.state = str(view.get("outcome") or "failed")
        run.finished_at = parse_timestamp(view.get("finished_at")) or utcnow()
    else:
        run.state = "running"
    run.message = str(view.get("message") or "")
    run.outputs = list(view.get("outputs") or [])
    # The magic and the CLI show warnings: what the executor left out of the run.
    for warning in view.get("warnings") or []:
        if str(warning) not in run.warnings:
            run.warnings.append(str(warning))


class MockModeError(RuntimeError):
    """A mock run asked of a server that cannot make one."""


def mock_banner(run_id: str) -> str:
    return (
        f"MOCK RUN {run_id}: the jobs read mock data (synthetic rows from each dataset's "
        f"schema, not the real rows); its outputs are mock results, in ~/mock-runs/{run_id}/"
    )


def outputs_summary(outputs: list[dict[str, Any]]) -> str:
    """What the output gate let out and what it held, in words for the notebook."""
    lines = []
    for o in outputs:
        if o.get("decision") == "released" and str(o["path"]).startswith(".dshare/"):
            continue  # a job's log: %dshare_logs shows it
        if o.get("decision") == "released":
            lines.append(f"released: {o['path']}")
            continue
        why = "; ".join(
            str(c.get("message") or c.get("name"))
            for c in o.get("checks") or []
            if not c.get("passed")
        )
        by = ", ".join(o.get("held_by") or o.get("owners") or [])
        what = "denied" if o.get("decision") == "denied" else f"held for review by {by}"
        lines.append(f"{what}: {o['path']}" + (f" ({why})" if why else ""))
    return "\n".join(lines)


async def snapshot_body(text: str, ctx: RunContext) -> dict[str, str]:
    """`{spec, working_dir, workspace}` as POST /runs and POST /approvals take them: the
    broker computes the code identity owners approve from these, so both send the same."""
    rel = os.path.relpath(os.path.realpath(ctx.cwd), os.path.realpath(ctx.home_dir))
    working_dir = "" if rel == "." or rel.startswith("..") else rel.replace(os.sep, "/")
    workspace = await asyncio.to_thread(pack_home, ctx.home_dir)
    return {
        "spec": text,
        "working_dir": working_dir,
        "workspace": base64.b64encode(workspace).decode(),
    }


async def _run_on_executor(
    text: str,
    spec: Spec,
    name: str,
    broker: ExecutorBroker,
    ctx: RunContext,
    wait: bool,
    notify: UpdateCallback,
    poll_s: float = 0.3,
    *,
    mock: bool = False,
) -> Run:
    """Send the spec and the home's snapshot; the broker compiles, binds and runs it."""
    started = await broker.submit_run(
        {
            **await snapshot_body(text, ctx),
            "name": name,
            **({"mock": True} if mock else {}),
        }
    )
    run = new_run(spec, str(started["run"]["id"]), name, "mock" if mock else "broker")
    run.state, run.started_at = "running", utcnow()
    notify(run)
    if not wait:
        return run
    try:
        while True:
            view = await broker.get_run(run.id)
            _apply_broker_view(run, view)
            notify(run)
            if run.done:
                break
            await asyncio.sleep(poll_s)
    except asyncio.CancelledError:
        await asyncio.shield(broker.cancel_run(run.id))
        run.state, run.message = "cancelled", "the run was cancelled"
        raise
    for job in run.jobs.values():
        if job.state in ("succeeded", "failed"):
            try:
                job.log_text = await broker.run_logs(run.id, job.name)
            except Exception as exc:  # a log is best effort once the run is over
                job.log_text = f"(log unavailable: {exc})"
    summary = outputs_summary(run.outputs)
    if summary:
        run.message = f"{run.message}\n{summary}".strip()
    if mock:
        run.message = f"{mock_banner(run.id)}\n{run.message}".strip()
    notify(run)
    return run

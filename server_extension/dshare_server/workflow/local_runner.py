"""The embedded runner: executes a compiled Argo Workflow manifest on this machine.

It reads the same manifest Argo would run (DAG dependencies, container command, args,
env, workingDir, volumeMounts, deadlines), so a workflow behaves the same in both places.
Each job is a process group, inside a bubblewrap sandbox when bwrap works. The exit
handler template is not run here: the orchestrator reports the outcome to the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import posixpath
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .runs import FINAL_JOB_STATES, JobResult, Run, utcnow
from .sandbox import Bind, bwrap_command, bwrap_path

log = logging.getLogger(__name__)

UpdateCallback = Callable[[Run], None]
LogCallback = Callable[[str, str], None]
TAIL_LINES = 10


class RunnerError(ValueError):
    """The manifest asks for something the local runner cannot do."""


class _JobPlan:
    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        workdir: str,
        binds: list[Bind],
        deps: list[str],
        timeout: int | None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.workdir = workdir
        self.binds = binds
        self.deps = deps
        self.timeout = timeout


def _int(value: Any, what: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise RunnerError(f"{what} `{value}` is not a number of seconds") from None


def plan(
    manifest: Mapping[str, Any], mounts: Mapping[str, str | int]
) -> tuple[list[_JobPlan], dict]:
    """Turn the manifest into job plans; ``mounts`` maps claim names to host directories,
    or to open directory descriptors (bound with bwrap's --bind-fd)."""
    spec = manifest.get("spec") or {}
    templates = {t["name"]: t for t in spec.get("templates", [])}
    entry = templates.get(spec.get("entrypoint", ""))
    if entry is None or "dag" not in entry:
        raise RunnerError("the workflow's entrypoint must be a DAG template")
    claims: dict[str, tuple[str | int, bool]] = {}
    for vol in spec.get("volumes", []):
        pvc = vol.get("persistentVolumeClaim")
        if pvc is None:
            raise RunnerError(f"volume `{vol.get('name')}` is not a persistent volume claim")
        claim = pvc["claimName"]
        if claim not in mounts:
            raise RunnerError(f"no local directory was given for claim `{claim}`")
        claims[vol["name"]] = (mounts[claim], bool(pvc.get("readOnly", False)))
    plans = []
    for task in entry["dag"].get("tasks", []):
        tmpl = templates.get(task["template"])
        if tmpl is None or "container" not in tmpl:
            raise RunnerError(f"task `{task['name']}` does not run a container template")
        if task.get("depends"):
            raise RunnerError("`depends` expressions are not supported locally; use dependencies")
        c = tmpl["container"]
        binds = []
        for vm in c.get("volumeMounts", []):
            if vm["name"] not in claims:
                raise RunnerError(f"task `{task['name']}` mounts unknown volume `{vm['name']}`")
            source, ro = claims[vm["name"]]
            read_only = ro or bool(vm.get("readOnly", False))
            if isinstance(source, int):
                binds.append(Bind(f"/proc/self/fd/{source}", vm["mountPath"], read_only, source))
            else:
                binds.append(Bind(source, vm["mountPath"], read_only))
        env = {e["name"]: e.get("value", "") for e in c.get("env", []) if "valueFrom" not in e}
        plans.append(
            _JobPlan(
                name=task["name"],
                argv=[*c.get("command", []), *c.get("args", [])],
                env=env,
                workdir=c.get("workingDir", "/"),
                binds=binds,
                deps=list(task.get("dependencies", [])),
                timeout=_int(tmpl.get("activeDeadlineSeconds"), "activeDeadlineSeconds"),
            )
        )
    if not all(p.argv for p in plans):
        raise RunnerError("every container template needs a command")
    images = sorted(
        {
            templates[t["template"]]["container"].get("image", "")
            for t in entry["dag"].get("tasks", [])
        }
        - {""}
    )
    meta = {
        "deadline": _int(spec.get("activeDeadlineSeconds"), "activeDeadlineSeconds"),
        "fail_fast": entry["dag"].get("failFast", True),
        "images": images,
        "run_id": (manifest.get("metadata") or {}).get("annotations", {}).get("dshare.io/run", ""),
    }
    return plans, meta


class LocalRunner:
    """Runs a compiled workflow's DAG as local processes, ``parallelism`` at a time."""

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        *,
        parallelism: int | None = None,
        sandbox: bool | None = None,
        home_path: str = "/home/jovyan",
        command_prefix: Sequence[str] = (),
        bwrap: str | None = None,
        tail_in_message: bool = True,
    ) -> None:
        """``command_prefix`` goes before bwrap (the executor's `setpriv ... --`, so jobs
        run as another uid); ``bwrap`` is a binary the caller already probed itself.
        ``tail_in_message=False`` keeps a failed job's last log lines out of the run's
        message: where logs pass an output gate, the message must not go around it."""
        self.tail_in_message = tail_in_message
        self.run_dir = Path(run_dir)
        self.parallelism = max(1, parallelism or os.cpu_count() or 1)
        self.home_path = home_path
        self.command_prefix = list(command_prefix)
        if bwrap is not None:
            self.bwrap: str | None = bwrap
        else:
            self.bwrap = bwrap_path() if sandbox in (None, True) else None
        if sandbox is True and self.bwrap is None:
            raise RunnerError("bubblewrap (bwrap) is not usable here; install `bubblewrap`")
        self._cancel = asyncio.Event()
        self._procs: dict[str, asyncio.subprocess.Process] = {}

    @property
    def sandboxed(self) -> bool:
        return self.bwrap is not None

    def cancel(self) -> None:
        """Stop the run: running jobs are killed with their whole process tree."""
        self._cancel.set()

    async def run(
        self,
        manifest: Mapping[str, Any],
        mounts: Mapping[str, str | int],
        *,
        run: Run | None = None,
        on_update: UpdateCallback | None = None,
        on_log: LogCallback | None = None,
    ) -> Run:
        plans, meta = plan(manifest, mounts)
        if run is None:
            run = Run(
                id=str(meta["run_id"]),
                name=manifest.get("metadata", {}).get("generateName", "workflow-").rstrip("-"),
                jobs={p.name: JobResult(p.name) for p in plans},
                edges=[(d, p.name) for p in plans for d in p.deps],
            )
        run.mode, run.run_dir = "local", self.run_dir
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for p in plans:
            run.jobs.setdefault(p.name, JobResult(p.name)).log_path = logs / f"{p.name}.log"
        if meta["images"]:
            self._warn(
                run,
                "the `image` of jobs is ignored locally: jobs run with the "
                "server's Python environment (" + sys.executable + ")",
            )
        if not self.sandboxed:
            self._warn(
                run,
                "WARNING: bubblewrap (bwrap) is not available, so jobs run "
                "WITHOUT a sandbox: they can use the network and write anywhere you can. "
                "Install the `bubblewrap` package to isolate them.",
            )
        notify = on_update or (lambda _run: None)
        run.state, run.started_at = "running", utcnow()
        notify(run)
        sem = asyncio.Semaphore(self.parallelism)
        running: dict[asyncio.Future[Any], str] = {}
        stop_reason = ""
        deadline = meta["deadline"]
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + deadline if deadline else None
        cancel_wait: asyncio.Future[Any] = asyncio.ensure_future(self._cancel.wait())
        try:
            while True:
                if not stop_reason:
                    for p in plans:
                        job = run.jobs[p.name]
                        if job.state != "pending":
                            continue
                        dep_states = [run.jobs[d].state for d in p.deps]
                        if any(s in ("failed", "skipped", "cancelled") for s in dep_states):
                            job.state, job.message = "skipped", "an upstream job did not succeed"
                            job.finished_at = utcnow()
                            notify(run)
                        elif all(s == "succeeded" for s in dep_states):
                            job.state = "running"  # claimed; starts when a slot frees up
                            task = asyncio.ensure_future(self._job(p, run, sem, notify, on_log))
                            running[task] = p.name
                if not running:
                    break
                timeout = None if ends_at is None else max(0.0, ends_at - loop.time())
                done, _ = await asyncio.wait(
                    [*running, cancel_wait], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                for fut in done:
                    if fut is cancel_wait:
                        continue
                    name = running.pop(fut)
                    fut.result()
                    failed = run.jobs[name].state == "failed"
                    if failed and meta["fail_fast"] and not stop_reason:
                        stop_reason = "failed"
                if self._cancel.is_set() and stop_reason != "cancelled":
                    stop_reason = "cancelled"
                    await self._kill_all(running, run, "cancelled", "the run was cancelled")
                elif ends_at is not None and loop.time() >= ends_at and stop_reason != "deadline":
                    stop_reason = "deadline"
                    await self._kill_all(
                        running, run, "failed", f"the workflow's deadline of {deadline} s passed"
                    )
        except asyncio.CancelledError:
            await self._kill_all(running, run, "cancelled", "the run was cancelled")
            self._finish(run, "cancelled", notify)
            raise
        finally:
            cancel_wait.cancel()
        if stop_reason == "cancelled":
            return self._finish(run, "cancelled", notify)
        return self._finish(run, "succeeded" if self._all_ok(run) else "failed", notify, deadline)

    @staticmethod
    def _warn(run: Run, message: str) -> None:
        if message not in run.warnings:
            run.warnings.append(message)
            # The magic and the CLI show run.warnings; logging it as a warning too would
            # print it twice in a notebook (Python's last-resort handler writes to stderr).
            log.info(message)

    @staticmethod
    def _all_ok(run: Run) -> bool:
        return all(j.state == "succeeded" for j in run.jobs.values())

    def _finish(
        self, run: Run, state: str, notify: UpdateCallback, deadline: int | None = None
    ) -> Run:
        deps: dict[str, list[str]] = {n: [] for n in run.jobs}
        for a, b in run.edges:
            deps[b].append(a)
        changed = True
        while changed:  # dependents of a failed job first, transitively
            changed = False
            for name, job in run.jobs.items():
                bad = {"failed", "skipped", "cancelled"}
                if job.state == "pending" and any(run.jobs[d].state in bad for d in deps[name]):
                    job.state, job.message = "skipped", "an upstream job did not succeed"
                    job.finished_at, changed = utcnow(), True
        for job in run.jobs.values():
            if job.state not in FINAL_JOB_STATES:
                job.state = "skipped" if job.state == "pending" else "cancelled"
                job.message = job.message or "not started: the run stopped"
                job.finished_at = job.finished_at or utcnow()
        run.state, run.finished_at = state, utcnow()
        if state == "failed":
            failed = [j for j in run.jobs.values() if j.state in ("failed", "cancelled")]
            if failed:
                j = failed[0]
                tail = "\n".join(j.tail(TAIL_LINES)) if self.tail_in_message else ""
                what = j.message or f"exit code {j.exit_code}"
                run.message = f"job {j.name} failed ({what})" + (f":\n{tail}" if tail else "")
        elif state == "cancelled":
            run.message = "the run was cancelled"
        notify(run)
        return run

    async def _kill_all(
        self, running: dict[asyncio.Future[Any], str], run: Run, state: str, message: str
    ) -> None:
        for name in list(running.values()):
            job = run.jobs[name]
            if job.state in ("pending", "running"):
                job.state, job.message = state, message
            proc = self._procs.get(name)
            if proc is not None:
                _kill_tree(proc)
        for task in list(running):
            task.cancel()
        for task in list(running):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        running.clear()

    def _local_paths(self, p: _JobPlan) -> tuple[list[str], str, dict[str, str], list[Path]]:
        """Without a sandbox: map the home path to the host home, link datasets into it."""
        home_bind = next((b for b in p.binds if b.target == self.home_path), None)
        if home_bind is None:
            raise RunnerError(f"job {p.name} does not mount the home directory")
        links: list[Path] = []
        for b in p.binds:
            if b is home_bind:
                continue
            rel = posixpath.relpath(b.target, self.home_path)
            if rel.startswith(".."):
                raise RunnerError(
                    f"job {p.name} mounts a dataset at {b.target}, outside {self.home_path}; "
                    "without bubblewrap only paths inside the home can be provided"
                )
            link = Path(home_bind.source, rel)
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(b.source, target_is_directory=True)
                links.append(link)
        rel = posixpath.relpath(p.workdir, self.home_path)
        workdir = home_bind.source if rel == "." else os.path.join(home_bind.source, rel)
        env = {**p.env, "HOME": home_bind.source}
        return p.argv, workdir, env, links

    def _environment(self, p: _JobPlan, home: str) -> dict[str, str]:
        # A clean environment: nothing of the server's (tokens, URLs) leaks into a job.
        path = os.pathsep.join(
            [os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"]
        )
        return {
            "PATH": path,
            "HOME": home,
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "DSHARE_JOB": p.name,
            **p.env,
        }

    async def _job(
        self,
        p: _JobPlan,
        run: Run,
        sem: asyncio.Semaphore,
        notify: UpdateCallback,
        on_log: LogCallback | None,
    ) -> None:
        job = run.jobs[p.name]
        async with sem:
            if self._cancel.is_set():
                return
            links: list[Path] = []
            env = self._environment(p, self.home_path)
            pass_fds = tuple(b.fd for b in p.binds if b.fd is not None)
            if self.bwrap:
                argv = bwrap_command(self.bwrap, p.argv, p.binds, p.workdir, env)
                argv = [*self.command_prefix, *argv]
                cwd = None
            else:
                argv, cwd, env_local, links = self._local_paths(p)
                env = {**self._environment(p, env_local["HOME"]), **env_local}
            job.state, job.started_at = "running", utcnow()
            notify(run)
            assert job.log_path is not None
            try:
                with job.log_path.open("wb") as out:
                    proc = await asyncio.create_subprocess_exec(
                        *argv,
                        stdin=asyncio.subprocess.DEVNULL,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.STDOUT,
                        cwd=cwd,
                        env=env,
                        start_new_session=True,
                        pass_fds=pass_fds,
                    )
                    self._procs[p.name] = proc
                    try:
                        await asyncio.wait_for(self._pump(proc, out, p.name, on_log), p.timeout)
                        code = await proc.wait()
                    except TimeoutError:
                        _kill_tree(proc)
                        await proc.wait()
                        job.state, job.exit_code = "failed", None
                        job.message = f"timed out after {p.timeout} s"
                        return
                    except asyncio.CancelledError:
                        _kill_tree(proc)
                        await proc.wait()
                        raise
                    job.exit_code = code
                    job.state = "succeeded" if code == 0 else "failed"
                    if code != 0:
                        job.message = f"exit code {code}"
            except OSError as exc:
                job.state, job.message = "failed", f"could not start: {exc.strerror or exc}"
            finally:
                self._procs.pop(p.name, None)
                job.finished_at = job.finished_at or utcnow()
                for link in links:
                    with contextlib.suppress(OSError):
                        link.unlink()
                notify(run)

    @staticmethod
    async def _pump(
        proc: asyncio.subprocess.Process, out: Any, name: str, on_log: LogCallback | None
    ) -> None:
        assert proc.stdout is not None
        while True:
            chunk = await proc.stdout.readline()
            if not chunk:
                return
            out.write(chunk)
            out.flush()
            if on_log is not None:
                on_log(name, chunk.decode(errors="replace"))


def _kill_tree(proc: asyncio.subprocess.Process) -> None:
    # Every job is its own session, so the group holds everything it started; inside
    # bwrap the PID namespace dies with its init, which --die-with-parent ties to bwrap.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)

"""`%dshare_run`, `%%dshare_run`, `%dshare_status` and `%dshare_logs` for notebooks.

The run happens on its own thread and event loop: a kernel's loop is already running
while a magic executes. The cell shows a picture of the DAG and a progress bar, both
updated in place; interrupting the kernel cancels the run (and the broker is told).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import html
import importlib
import os
import shlex
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.display import SVG, display

from .workflow.compiler import to_yaml
from .workflow.dag_svg import render
from .workflow.orchestrate import BrokerClient, RunContext, run_workflow
from .workflow.problems import SpecError
from .workflow.runs import Run


class Progress:
    """A progress bar with an HTML face for notebooks and a text face for terminals."""

    def __init__(self, run: Run) -> None:
        self.counts = run.counts()
        self.total = max(1, len(run.jobs))
        self.state = run.state
        self.name = run.name
        self.message = run.message

    @property
    def finished(self) -> int:
        return sum(self.counts[s] for s in ("succeeded", "failed", "skipped", "cancelled"))

    def summary(self) -> str:
        parts = [f"{v} {k}" for k, v in self.counts.items() if v]
        return f"{self.name}: {self.state} - {self.finished}/{self.total} jobs ({', '.join(parts)})"

    def __repr__(self) -> str:
        filled = round(20 * self.finished / self.total)
        return f"[{'#' * filled}{'.' * (20 - filled)}] {self.summary()}"

    def _repr_html_(self) -> str:
        msg = f"<pre>{html.escape(self.message)}</pre>" if self.message else ""
        return (
            f'<div class="dshare-progress"><progress value="{self.finished}" '
            f'max="{self.total}"></progress> {html.escape(self.summary())}{msg}</div>'
        )


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="%dshare_run", add_help=False, exit_on_error=False)
    parser.add_argument("file", nargs="?")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--no-wait", action="store_true")
    parser.add_argument("--mock", action="store_true")
    parser.add_argument("--request-approval", action="store_true")
    return parser


def default_broker() -> BrokerClient:
    # The lead's HTTP client, imported lazily so the magic loads without a broker configured.
    module = importlib.import_module(".broker_client", __package__)
    broker: BrokerClient = module.from_environment()
    return broker


def default_context() -> RunContext:
    ctx = RunContext(user=os.environ.get("JUPYTERHUB_USER") or getpass.getuser())
    runner = os.environ.get("DSHARE_RUNNER", "broker")
    if runner == "local":
        ctx.mode = "local"
    return ctx


@magics_class
class DShareMagics(Magics):
    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.broker_factory: Callable[[], BrokerClient] = default_broker
        self.context_factory: Callable[[], RunContext] = default_context
        self.runs: dict[str, Run] = {}
        self.threads: dict[str, threading.Thread] = {}

    @line_cell_magic
    def dshare_run(self, line: str, cell: str | None = None) -> Run | None:
        """Run a workflow: `%dshare_run workflow.yaml [--dry-run] [--no-wait] [--mock]` or a
        `%%dshare_run [--dry-run] [--no-wait] [--mock]` cell holding the YAML. `--mock` runs
        it on mocks of the datasets (no lease needed; outputs are mock results)."""
        try:
            args = _arguments().parse_args(shlex.split(line))
        except (argparse.ArgumentError, ValueError) as exc:
            print(
                f"%dshare_run: {exc}. "
                "Usage: %dshare_run workflow.yaml [--dry-run] [--no-wait] [--mock]"
            )
            return None
        ctx = self.context_factory()
        if cell is not None:
            text = cell
            ctx.filename = "cell"
        elif args.file:
            path = Path(os.path.expanduser(args.file))
            try:
                text = path.read_text()
            except OSError as exc:
                print(f"%dshare_run: cannot read {args.file}: {exc.strerror}")
                return None
            ctx.filename = path.name
            ctx.default_name = _name_from(path.stem)
        else:
            print("%dshare_run: give a workflow file, or use %%dshare_run with the YAML below it")
            return None
        if args.request_approval:
            self._request_approval(text, ctx)
            return None
        return self._start(text, ctx, dry_run=args.dry_run, wait=not args.no_wait, mock=args.mock)

    def _request_approval(self, text: str, ctx: RunContext) -> None:
        """`--request-approval`: ask the data's owners to approve this code; runs nothing."""
        from .workflow.approval import describe, request_approval

        broker: Any = self.broker_factory()
        outcome: dict[str, Any] = {}

        def work() -> None:
            # Its own thread and loop: the kernel's loop is running while a magic executes.
            try:
                outcome["reply"] = asyncio.run(request_approval(text, broker, ctx))
            except Exception as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=work, name="dshare-approval", daemon=True)
        thread.start()
        thread.join()
        error = outcome.get("error")
        if isinstance(error, SpecError):
            error.filename = ctx.filename
            print(str(error))
        elif error is not None:
            print(f"%dshare_run: {error}")
        else:
            print(describe(outcome["reply"]))

    def _start(
        self, text: str, ctx: RunContext, *, dry_run: bool, wait: bool, mock: bool = False
    ) -> Run | None:
        broker = self.broker_factory()
        state: dict[str, Any] = {"run": None, "error": None}
        picture = display(SVG("<svg xmlns='http://www.w3.org/2000/svg'/>"), display_id=True)
        bar = display(Progress(Run("", "starting", {})), display_id=True)
        seen: dict[str, Any] = {}

        def on_update(run: Run) -> None:
            state["run"] = run
            if run.id and run.id not in self.runs:
                self.runs[run.id] = run
            key = (run.state, tuple(j.state for j in run.jobs.values()))
            if seen.get("key") == key:
                return
            seen["key"] = key
            states = {n: j.state for n, j in run.jobs.items()}
            if picture is not None:
                picture.update(SVG(render(list(run.jobs), run.edges, states)))
            if bar is not None:
                bar.update(Progress(run))

        loop = asyncio.new_event_loop()
        holder: dict[str, asyncio.Task[Run]] = {}

        def work() -> None:
            async def main() -> Run:
                return await run_workflow(
                    text, broker, ctx, dry_run=dry_run, wait=wait, on_update=on_update, mock=mock
                )

            try:
                holder["task"] = loop.create_task(main())
                state["run"] = loop.run_until_complete(holder["task"])
            except SpecError as exc:
                exc.filename = ctx.filename
                state["error"] = exc
            except BaseException as exc:
                state["error"] = exc
            finally:
                loop.close()

        thread = threading.Thread(target=work, name="dshare-run", daemon=True)
        thread.start()
        if not wait and not dry_run:
            # Return as soon as the broker accepted the run; it goes on in the background.
            while thread.is_alive() and (state["run"] is None or not state["run"].id):
                thread.join(0.05)
            started: Run | None = state["run"]
            if started is not None:
                self.threads[started.id] = thread
                kind = "mock run" if mock else "run"
                print(f"{kind} {started.id} started; see %dshare_status {started.id}")
                return started
        try:
            while thread.is_alive():
                thread.join(0.1)
        except KeyboardInterrupt:
            task = holder.get("task")
            if task is not None:
                loop.call_soon_threadsafe(task.cancel)
            thread.join()
            print("%dshare_run: cancelled; the broker was told and released the mounts")
        error = state["error"]
        if isinstance(error, SpecError):
            print(str(error))
            return None
        if error is not None and not isinstance(error, asyncio.CancelledError):
            print(f"%dshare_run: {error}")
            return state["run"]
        run = state["run"]
        if run is None:
            return None
        if dry_run and run.manifest is not None:
            print(to_yaml(run.manifest))
        else:
            for w in run.warnings:
                print(f"warning: {w}")
            if run.message:
                print(run.message)
        return run

    def _find(self, run_id: str) -> Run | None:
        if run_id in self.runs:
            return self.runs[run_id]
        print(f"no run `{run_id}` in this session; runs: {', '.join(self.runs) or 'none'}")
        return None

    @line_magic
    def dshare_status(self, line: str) -> Run | None:
        """`%dshare_status` lists this session's runs; `%dshare_status RUN` shows its jobs."""
        run_id = line.strip()
        if not run_id:
            if not self.runs:
                print("no runs in this session yet; start one with %dshare_run workflow.yaml")
            for known in self.runs.values():
                print(repr(Progress(known)).split("] ", 1)[1] + f"  [{known.id}]")
            return None
        run = self._find(run_id)
        if run is None:
            return None
        print(f"run {run.id} {run.name}: {run.state}")
        for job in run.jobs.values():
            code = "" if job.exit_code is None else f" exit {job.exit_code}"
            print(f"  {job.name:<24} {job.state:<10}{code} {job.message}".rstrip())
        return run

    @line_magic
    def dshare_logs(self, line: str) -> None:
        """`%dshare_logs RUN JOB` prints what the job wrote."""
        parts = line.split()
        if len(parts) != 2:
            print("usage: %dshare_logs RUN JOB")
            return
        run = self._find(parts[0])
        if run is None:
            return
        try:
            print(run.logs(parts[1]), end="")
        except KeyError as exc:
            print(exc.args[0])


def _name_from(stem: str) -> str:
    name = "".join(c if c.isalnum() else "-" for c in stem.lower()).strip("-")
    return name[:50].strip("-") if name and name[0].isalpha() else "workflow"


def load_ipython_extension(ip: Any) -> None:
    ip.register_magics(DShareMagics(ip))

"""`dshare run -f workflow.yaml`: a drop-in for `jupyterflow run -f` with dshare's checks."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .compiler import CompileError, to_yaml
from .orchestrate import BrokerClient, MockModeError, RunContext, run_workflow
from .problems import SpecError
from .runs import Run


def add_run_command(
    subparsers: Any,
    *,
    broker_factory: Callable[[], BrokerClient] | None = None,
    context_factory: Callable[[], RunContext] | None = None,
) -> argparse.ArgumentParser:
    """Add `run` to a `dshare` CLI; the factories exist so tests can give doubles."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="run a workflow.yaml (jobs and their dependencies) on leased data",
        description="Check workflow.yaml, ask your broker to mount the leased datasets, and "
        "run the jobs locally or on Argo Workflows.",
    )
    parser.add_argument("-f", "--file", required=True, help="the workflow file (workflow.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="print the Argo Workflow YAML")
    parser.add_argument("--no-wait", action="store_true", help="return once submitted (Argo)")
    parser.add_argument("--parallelism", type=int, help="local jobs at a time (default: CPUs)")
    parser.add_argument(
        "--mock",
        action="store_true",
        help="run on mocks of the datasets (synthetic rows, no lease needed); the outputs are "
        "mock results, delivered to ~/mock-runs/<run id>/",
    )
    parser.set_defaults(
        func=lambda args: run_command(
            args, broker_factory=broker_factory, context_factory=context_factory
        )
    )
    return parser


def _default_broker() -> BrokerClient:
    import importlib

    module = importlib.import_module("dshare_server.broker_client")
    broker: BrokerClient = module.from_environment()
    return broker


def _default_context() -> RunContext:
    from ..magic import default_context

    return default_context()


def run_command(
    args: argparse.Namespace,
    *,
    broker_factory: Callable[[], BrokerClient] | None = None,
    context_factory: Callable[[], RunContext] | None = None,
) -> int:
    path = Path(args.file)
    try:
        text = path.read_text()
    except OSError as exc:
        print(f"dshare run: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    ctx = (context_factory or _default_context)()
    ctx.filename = path.name
    if args.parallelism is not None:
        if args.parallelism < 1:
            print("dshare run: --parallelism must be at least 1", file=sys.stderr)
            return 2
        ctx.parallelism = args.parallelism
    seen: dict[str, str] = {}

    def on_update(run: Run) -> None:
        for job in run.jobs.values():
            if seen.get(job.name) != job.state:
                seen[job.name] = job.state
                code = "" if job.exit_code is None else f" (exit {job.exit_code})"
                print(f"{job.name}: {job.state}{code}", flush=True)

    broker = (broker_factory or _default_broker)()
    try:
        run = asyncio.run(
            run_workflow(
                text,
                broker,
                ctx,
                dry_run=args.dry_run,
                wait=not args.no_wait,
                on_update=None if args.dry_run else on_update,
                mock=bool(getattr(args, "mock", False)),
            )
        )
    except SpecError as exc:
        exc.filename = os.fspath(args.file)
        print(exc.render(), file=sys.stderr)
        return 2
    except (CompileError, MockModeError) as exc:
        print(f"dshare run: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dshare run: cancelled", file=sys.stderr)
        return 130
    if args.dry_run:
        assert run.manifest is not None
        print(to_yaml(run.manifest), end="")
        return 0
    for warning in run.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"run {run.id}: {run.state}")
    if run.message:
        print(run.message, file=sys.stderr)
    return 0 if run.state in ("succeeded", "running") else 1

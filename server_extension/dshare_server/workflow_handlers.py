"""Workflow routes of the server extension: validate, compile, runs and their logs.

Validation and compilation run here, on the user's server, against the user's own leases
as the broker reports them; runs combine the broker's record (the ledger's view) with the
job states and logs the local runner keeps in the user's run directory.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import tornado.web

from .approval_handlers import APPROVAL_ROUTES
from .broker_client import BrokerError, BrokerUnavailable
from .handlers import DShareHandler, broker_error_reply
from .workflow.orchestrate import RunContext, run_workflow
from .workflow.problems import SpecError

SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class _BrokerLeases:
    """The orchestrator's BrokerClient for a dry run: it only ever lists leases."""

    def __init__(self, handler: DShareHandler) -> None:
        self.handler = handler

    async def list_leases(self) -> list[dict[str, Any]]:
        return await self.handler.broker().list_leases()

    async def start_run(self, name: str, lease_ids: list[str], spec_sha256: str) -> dict:
        raise RuntimeError("a dry run never starts a run")

    async def finish_run(self, run_id: str, outcome: str, result_sha256: str | None = None) -> dict:
        raise RuntimeError("a dry run never finishes a run")


def _problems(error: SpecError) -> list[dict[str, Any]]:
    return [
        {"line": p.line, "column": p.column, "message": p.message, "hint": p.hint}
        for p in error.problems
    ]


class _SpecHandler(DShareHandler):
    def spec_text(self) -> str:
        text = self.json_body().get("yaml")
        if not isinstance(text, str):
            raise tornado.web.HTTPError(400, "give the workflow as a string in the field `yaml`")
        return text

    def context(self) -> RunContext:
        return RunContext(
            user=os.environ.get("JUPYTERHUB_USER") or str(self.current_user.username),
            home_dir=os.path.expanduser("~"),
            cwd=os.path.expanduser("~"),
            run_root=self.dshare_config.runs_dir,
        )

    async def dry_run(self) -> dict[str, Any] | None:
        try:
            run = await run_workflow(
                self.spec_text(), _BrokerLeases(self), self.context(), dry_run=True
            )
        except SpecError as e:
            self.write_json(200, {"ok": False, "errors": _problems(e)})
            return None
        except (BrokerError, BrokerUnavailable) as e:
            broker_error_reply(self, e)
            return None
        return run.manifest


class ValidateHandler(_SpecHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        manifest = await self.dry_run()
        if manifest is not None:
            self.write_json(200, {"ok": True, "errors": []})


class CompileHandler(_SpecHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        manifest = await self.dry_run()
        if manifest is not None:
            self.write_json(200, {"ok": True, "workflow": manifest})


def _local_run(runs_dir: Path, run_id: str) -> dict[str, Any] | None:
    """What the local runner recorded for a run (job states), if it ran here."""
    path = runs_dir / run_id / "run.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


class RunsHandler(DShareHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        try:
            body = await self.broker().call("GET", "runs")
        except (BrokerError, BrokerUnavailable) as e:
            broker_error_reply(self, e)
            return
        runs_dir = Path(self.dshare_config.runs_dir)
        for run in body.get("items", []):
            local = _local_run(runs_dir, str(run.get("id")))
            run["jobs"] = local.get("jobs", []) if local else run.get("jobs", [])
        self.write_json(200, body)


class RunHandler(DShareHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        if not SAFE_ID.match(run_id):
            raise tornado.web.HTTPError(400, "run id %r has characters no run id has", run_id)
        try:
            run = await self.broker().call("GET", f"runs/{run_id}")
        except (BrokerError, BrokerUnavailable) as e:
            broker_error_reply(self, e)
            return
        # Runs through the broker's executor come with their jobs; in-process ones
        # (no data) keep their job states here.
        local = _local_run(Path(self.dshare_config.runs_dir), run_id)
        if local:
            run["jobs"] = local.get("jobs", [])
        run.setdefault("jobs", [])
        self.write_json(200, run)


class RunLogHandler(DShareHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str, job: str) -> None:
        for value, what in ((run_id, "run id"), (job, "job name")):
            if not SAFE_ID.match(value):
                raise tornado.web.HTTPError(400, "%s %r has characters it cannot have", what, value)
        path = Path(self.dshare_config.runs_dir) / run_id / "logs" / f"{job}.log"
        if path.is_file():
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(path.read_bytes())
            return
        try:
            text = await self.broker().run_logs(run_id, job)
        except (BrokerError, BrokerUnavailable) as e:
            broker_error_reply(self, e)
            return
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(text)


WORKFLOW_ROUTES: list[tuple[str, type[DShareHandler]]] = [
    *APPROVAL_ROUTES,
    ("validate", ValidateHandler),
    ("compile", CompileHandler),
    ("runs", RunsHandler),
    (r"runs/([^/]+)", RunHandler),
    (r"runs/([^/]+)/logs/([^/]+)", RunLogHandler),
]

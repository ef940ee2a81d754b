"""Code approval routes of the server extension: a request is made here, where the home is
(the broker hashes the snapshot this server sends); lists and decisions go to the broker."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import tornado.web

from .broker_client import BrokerError, BrokerUnavailable
from .handlers import DShareHandler, broker_error_reply
from .workflow.approval import request_approval
from .workflow.orchestrate import RunContext
from .workflow.problems import SpecError

MAX_WORKFLOW_BYTES = 1024 * 1024


def _problems(error: SpecError) -> list[dict[str, object]]:
    return [
        {"line": p.line, "column": p.column, "message": p.message, "hint": p.hint}
        for p in error.problems
    ]


class ApprovalsHandler(DShareHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        scope = self.get_query_argument("scope", "mine")
        try:
            body = await self.broker().list_approvals(scope)
        except (BrokerError, BrokerUnavailable) as e:
            broker_error_reply(self, e)
            return
        self.write_json(200, body)

    @tornado.web.authenticated
    async def post(self) -> None:
        body = self.json_body()
        home = Path(os.path.expanduser("~"))
        text = body.get("yaml")
        path = body.get("path")
        if text is None and isinstance(path, str) and path:
            text = self._read_workflow(home, path)
            if text is None:
                return
        if not isinstance(text, str):
            self.write_json(
                400,
                {
                    "code": "INVALID_ARGUMENT",
                    "message": "path: name the workflow file in your home (or send its text as "
                    "`yaml`)",
                    "field": "path",
                },
            )
            return
        ctx = RunContext(
            user=os.environ.get("JUPYTERHUB_USER") or str(self.current_user.username),
            home_dir=str(home),
            cwd=str(home),
        )
        try:
            reply = await request_approval(text, self.broker(), ctx)
        except SpecError as e:
            self.write_json(
                400,
                {
                    "code": "INVALID_ARGUMENT",
                    "message": str(e),
                    "field": "spec",
                    "errors": _problems(e),
                },
            )
            return
        except (BrokerError, BrokerUnavailable) as e:
            broker_error_reply(self, e)
            return
        self.write_json(201, reply)

    def _read_workflow(self, home: Path, path: str) -> str | None:
        target = (home / path).resolve()
        if not target.is_relative_to(home.resolve()) or not target.is_file():
            self.write_json(
                400,
                {
                    "code": "INVALID_ARGUMENT",
                    "message": f"path: {path} is not a workflow file in your home",
                    "field": "path",
                },
            )
            return None
        data = target.read_bytes()[: MAX_WORKFLOW_BYTES + 1]
        return data.decode("utf-8", errors="replace")


class ApprovalDecisionHandler(DShareHandler):
    @tornado.web.authenticated
    async def post(self, approval_id: str) -> None:
        try:
            reply = await self.broker().forward(
                "POST",
                f"approvals/{quote(approval_id, safe='')}/decision",
                body=self.request.body or b"{}",
            )
        except BrokerUnavailable as e:
            broker_error_reply(self, e)
            return
        self.write_json(reply.status, reply.body)


APPROVAL_ROUTES: list[tuple[str, type[DShareHandler]]] = [
    ("approvals", ApprovalsHandler),
    (r"approvals/([^/]+)/decision", ApprovalDecisionHandler),
]

"""Tornado handlers for the executor's /api/v1: authenticate the calling broker, shape errors.

Callers are JupyterHub services (the brokers) named in `Executor.allowed_services`,
identified by the hub through `HubAuth`; users are refused. Each allowed service acts for
one organization, which decides what it may see and decide.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from jupyterhub.services.auth import HubAuth
from tornado import web

from .errors import ExecutorError
from .service import ExecutorService

log = logging.getLogger("dshare.executor")


class BaseHandler(web.RequestHandler):
    needs_caller = True
    org = ""

    @property
    def executor(self) -> ExecutorService:
        service: ExecutorService = self.settings["executor"]
        return service

    @property
    def hub_auth(self) -> HubAuth:
        auth: HubAuth = self.settings["hub_auth"]
        return auth

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")

    def check_xsrf_cookie(self) -> None:
        return None  # token-authenticated API: no cookies are accepted, so no XSRF

    async def prepare(self) -> None:
        if not self.needs_caller:
            return
        model = await self.hub_auth.get_user(self, sync=False)
        if not model:
            raise ExecutorError(
                "UNAUTHENTICATED", "send the broker's JupyterHub token: 'Authorization: token …'"
            )
        name = str(model.get("name", ""))
        if model.get("kind") != "service":
            raise ExecutorError(
                "FORBIDDEN", f"user {name!r} may not call the executor; only brokers may"
            )
        org = self.settings["allowed_services"].get(name)
        if not org:
            raise ExecutorError(
                "FORBIDDEN",
                f"service {name!r} is not one of the brokers allowed to use the executor",
            )
        self.current_user = model
        self.org = str(org)

    def body(self) -> Any:
        if len(self.request.body) > self.settings["max_body_bytes"]:
            raise ExecutorError(
                "TOO_LARGE",
                f"the request is larger than {self.settings['max_body_bytes']} bytes; "
                "make the home smaller or ask the operator to raise Executor.max_body_bytes",
            )
        try:
            return json.loads(self.request.body or b"null")
        except ValueError as error:
            raise ExecutorError(
                "INVALID_ARGUMENT", f"the request body is not valid JSON: {error}"
            ) from None

    def reply(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(value))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        if isinstance(error, ExecutorError):
            self.set_status(error.status)
            self.finish(json.dumps(error.to_json()))
            return
        if isinstance(error, web.HTTPError):
            code = {401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND"}.get(
                status_code, "HTTP_ERROR"
            )
            self.finish(json.dumps({"code": code, "message": error.log_message or self._reason}))
            return
        self.finish(
            json.dumps({"code": "INTERNAL", "message": "internal error; see the executor log"})
        )

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        if exc_info and isinstance(exc_info[1], ExecutorError):
            status_code = exc_info[1].status
        super().send_error(status_code, **kwargs)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, ExecutorError):
            log.info(
                "%s %s -> %s %s", self.request.method, self.request.path, value.status, value.code
            )
            return
        super().log_exception(typ, value, tb)


class RunsHandler(BaseHandler):
    async def post(self) -> None:
        self.reply(await self.executor.submit(self.org, self.body()), 202)


class RunHandler(BaseHandler):
    async def get(self, run_id: str) -> None:
        self.reply(self.executor.get(self.org, run_id))


class LogsHandler(BaseHandler):
    async def get(self, run_id: str, job: str) -> None:
        text = self.executor.logs(self.org, run_id, job)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(text)


class CancelHandler(BaseHandler):
    async def post(self, run_id: str) -> None:
        self.reply(await self.executor.cancel(self.org, run_id))


class DecideHandler(BaseHandler):
    async def post(self, run_id: str) -> None:
        self.reply(await self.executor.decide(self.org, run_id, self.body()))


class NotFoundHandler(BaseHandler):
    needs_caller = False

    async def prepare(self) -> None:
        raise ExecutorError("NOT_FOUND", f"no such API path: {self.request.path}")


def routes(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    api = prefix.rstrip("/") + "/api/v1"
    ident = r"([A-Za-z0-9][A-Za-z0-9._-]{0,127})"
    return [
        (f"{api}/runs", RunsHandler),
        (f"{api}/runs/{ident}", RunHandler),
        (f"{api}/runs/{ident}/logs/([^/]+)", LogsHandler),
        (f"{api}/runs/{ident}/cancel", CancelHandler),
        (f"{api}/runs/{ident}/outputs/decide", DecideHandler),
        (f"{prefix.rstrip('/')}/.*", NotFoundHandler),
    ]

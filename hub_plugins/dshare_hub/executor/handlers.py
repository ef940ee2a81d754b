"""Tornado handlers for the executor's /api/v1: authenticate the calling broker, shape errors.

Callers are JupyterHub services (the brokers) named in `Executor.allowed_services`,
identified by the hub through `HubAuth`; users are refused. Each allowed service acts for
one organization, which decides what it may see and decide.
"""

from __future__ import annotations

import logging

from jupyterhub.services.auth import HubAuth
from tornado import web

from ..webapi import ApiError, JsonHandler, ServiceRootHandler
from .service import ExecutorService

log = logging.getLogger("dshare.executor")


class BaseHandler(JsonHandler):
    needs_caller = True
    org = ""
    service = "executor"
    log = log

    @property
    def max_body_bytes(self) -> int:
        limit: int = self.settings["max_body_bytes"]
        return limit

    @property
    def executor(self) -> ExecutorService:
        service: ExecutorService = self.settings["executor"]
        return service

    @property
    def hub_auth(self) -> HubAuth:
        auth: HubAuth = self.settings["hub_auth"]
        return auth

    def check_xsrf_cookie(self) -> None:
        return None  # token-authenticated API: no cookies are accepted, so no XSRF

    async def prepare(self) -> None:
        if not self.needs_caller:
            return
        model = await self.hub_auth.get_user(self, sync=False)
        if not model:
            raise ApiError(
                "UNAUTHENTICATED", "send the broker's JupyterHub token: 'Authorization: token …'"
            )
        name = str(model.get("name", ""))
        if model.get("kind") != "service":
            raise ApiError(
                "FORBIDDEN", f"user {name!r} may not call the executor; only brokers may"
            )
        org = self.settings["allowed_services"].get(name)
        if not org:
            raise ApiError(
                "FORBIDDEN",
                f"service {name!r} is not one of the brokers allowed to use the executor",
            )
        self.current_user = model
        self.org = str(org)


class RunsHandler(BaseHandler):
    async def post(self) -> None:
        body = self.body()
        await self.settings["accounts"].check(self.org, body)
        self.reply(await self.executor.submit(self.org, body), 202)


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
        raise ApiError("NOT_FOUND", f"no such API path: {self.request.path}")


def routes(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    api = prefix.rstrip("/") + "/api/v1"
    ident = r"([A-Za-z0-9][A-Za-z0-9._-]{0,127})"
    return [
        (f"{api}/runs", RunsHandler),
        (f"{api}/runs/{ident}", RunHandler),
        (f"{api}/runs/{ident}/logs/([^/]+)", LogsHandler),
        (f"{api}/runs/{ident}/cancel", CancelHandler),
        (f"{api}/runs/{ident}/outputs/decide", DecideHandler),
        (prefix.rstrip("/") + "/?", ServiceRootHandler),
        (f"{prefix.rstrip('/')}/.*", NotFoundHandler),
    ]

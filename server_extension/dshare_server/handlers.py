"""REST handlers under /dshare/api/ on the user's server.

Every handler is authenticated by jupyter-server (and XSRF-checked on writes by its base
class); a test walks the route table and fails when one is not. Broker routes pass the
user's request through with the server's own token: the browser never talks to the broker
and never sees anything the broker does not return to the user anyway.
"""

from __future__ import annotations

import json
import re
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from .broker_client import AsyncBrokerClient, BrokerError, BrokerUnavailable
from .config import DShareServerConfig

# What may be forwarded: the broker's user-facing API, nothing else (no peer routes).
BROKER_PATH = re.compile(
    r"^(me|datasets(/[^/]+(/history|/mock(/synthesize)?)?)?"
    r"|leases(/[^/]+/(approve|reject|release))?"
    r"|outputs/held|runs/[^/]+/outputs/decide)$"
)


class DShareHandler(APIHandler):
    """Base: JSON errors shaped like the broker's `{code, message, field?}`."""

    @property
    def dshare_config(self) -> DShareServerConfig:
        return self.settings["dshare_config"]

    def broker(self) -> AsyncBrokerClient:
        return AsyncBrokerClient(
            self.dshare_config.broker_url, timeout=self.dshare_config.request_timeout
        )

    def write_json(self, status: int, body: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        else:
            # Never a traceback: the log has it, the browser gets a sentence.
            message = self._reason or "internal error"
        code = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "FORBIDDEN"}.get(
            status_code, "ERROR"
        )
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"code": code, "message": message}))

    def json_body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError as e:
            raise tornado.web.HTTPError(400, "the request body is not JSON: %s", e) from None
        if not isinstance(body, dict):
            raise tornado.web.HTTPError(400, "the request body must be a JSON object")
        return body


class BrokerProxyHandler(DShareHandler):
    """Forwards datasets, leases, me and output reviews to the user's organization broker."""

    async def _forward(self, path: str) -> None:
        if not BROKER_PATH.match(path):
            raise tornado.web.HTTPError(404, "no dshare API route /dshare/api/%s", path)
        try:
            reply = await self.broker().forward(
                self.request.method or "GET",
                path,
                query=self.request.query,
                body=self.request.body or None,
            )
        except BrokerUnavailable as e:
            self.log.warning("dshare broker unavailable: %s", e)
            self.write_json(502, {"code": "BROKER_UNAVAILABLE", "message": str(e)})
            return
        if reply.status == 204 or reply.body is None:
            self.set_status(reply.status)
            self.finish()
            return
        self.write_json(reply.status, reply.body)

    @tornado.web.authenticated
    async def get(self, path: str) -> None:
        await self._forward(path)

    @tornado.web.authenticated
    async def post(self, path: str) -> None:
        await self._forward(path)

    @tornado.web.authenticated
    async def patch(self, path: str) -> None:
        await self._forward(path)

    @tornado.web.authenticated
    async def delete(self, path: str) -> None:
        await self._forward(path)


def broker_error_reply(handler: DShareHandler, e: BrokerError | BrokerUnavailable) -> None:
    if isinstance(e, BrokerError):
        body = {"code": e.code, "message": e.message}
        if e.field:
            body["field"] = e.field
        handler.write_json(e.status, body)
    else:
        handler.write_json(502, {"code": "BROKER_UNAVAILABLE", "message": str(e)})


def setup_handlers(web_app: Any, config: DShareServerConfig) -> None:
    from .workflow_handlers import WORKFLOW_ROUTES

    web_app.settings["dshare_config"] = config
    base = url_path_join(web_app.settings["base_url"], "dshare", "api")
    routes: list[tuple[str, type[DShareHandler]]] = [
        *[(url_path_join(base, pattern), handler) for pattern, handler in WORKFLOW_ROUTES],
        (url_path_join(base, "(.+)"), BrokerProxyHandler),
    ]
    web_app.add_handlers(".*$", routes)

"""What dshare's services share on the wire: one `{code, message, field?}` error shape
with the HTTP status each code means, and a JSON handler that never answers a traceback.

The brokers and the executor both build on it, so a refusal reads the same wherever it
comes from and the server extension can pass it on to the scientist unchanged.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from tornado import web

STATUS_BY_CODE: dict[str, int] = {
    "INVALID_ARGUMENT": 400,
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "NOT_OWNER": 403,
    "NOT_LESSEE": 403,
    "POLICY_DENIED": 403,
    "SIGNATURE_INVALID": 403,
    "REPLAYED": 403,
    "STALE_REQUEST": 403,
    "MOUNT_REFUSED": 403,
    "ASSET_NOT_FOUND": 404,
    "LEASE_NOT_FOUND": 404,
    "RUN_NOT_FOUND": 404,
    "APPROVAL_NOT_FOUND": 404,
    "NOT_FOUND": 404,
    "ASSET_EXISTS": 409,
    "LEASE_CONFLICT": 409,
    "INVALID_STATE": 409,
    "RUN_CONFLICT": 409,
    "REDACTION_FAILED": 409,
    "LEASE_EXPIRED": 410,
    "TOO_LARGE": 413,
    "WORKSPACE_TOO_LARGE": 413,
    "TOO_MANY_RUNS": 429,
    "PEER_UNAVAILABLE": 502,
    "EXECUTOR_UNAVAILABLE": 502,
    "WORKFLOWS_UNAVAILABLE": 502,
    "HUB_UNAVAILABLE": 502,
    "SANDBOX_UNAVAILABLE": 503,
    "STORAGE_UNAVAILABLE": 503,
    "VIEW_UNAVAILABLE": 503,
    "REDACTION_UNAVAILABLE": 503,
    "NO_IDENTITY": 503,
    "LEDGER_TAMPERED": 503,
}


class ApiError(Exception):
    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.field = field

    @property
    def status(self) -> int:
        return STATUS_BY_CODE.get(self.code, 500)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


def bad(field: str, message: str) -> ApiError:
    return ApiError("INVALID_ARGUMENT", f"{field}: {message}", field)


class JsonHandler(web.RequestHandler):
    """JSON in, JSON out; every failure becomes `{code, message, field?}`."""

    service = "service"  # named in the message of an unexpected failure
    log = logging.getLogger("dshare")
    body_limit = 1024 * 1024

    @property
    def max_body_bytes(self) -> int:
        return self.body_limit

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")

    def body(self) -> Any:
        if len(self.request.body or b"") > self.max_body_bytes:
            raise ApiError(
                "TOO_LARGE",
                f"the request body is over {self.max_body_bytes:,} bytes; send less (a run's "
                "workspace: move what its jobs do not need out of the home)",
            )
        try:
            return json.loads(self.request.body or b"null")
        except ValueError as error:
            raise ApiError(
                "INVALID_ARGUMENT", f"the request body is not valid JSON: {error}"
            ) from None

    def reply(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(value))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        if isinstance(error, ApiError):
            self.set_status(error.status)
            self.finish(json.dumps(error.to_json()))
            return
        if isinstance(error, web.HTTPError):
            code = {401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND"}.get(
                status_code, "HTTP_ERROR"
            )
            self.finish(json.dumps({"code": code, "message": error.log_message or self._reason}))
            return
        # Unexpected: the details went to the log (tornado logs the exception); the caller
        # gets a stable message and no traceback.
        self.finish(
            json.dumps(
                {"code": "INTERNAL", "message": f"internal error; see the {self.service} log"}
            )
        )

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, ApiError):
            self.log.info(
                "%s %s -> %s %s", self.request.method, self.request.path, value.status, value.code
            )
            return
        super().log_exception(typ, value, tb)

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        if exc_info and isinstance(exc_info[1], ApiError):
            status_code = exc_info[1].status
        super().send_error(status_code, **kwargs)


class ServiceRootHandler(JsonHandler):
    """The service's own prefix: what JupyterHub asks when it checks a service is up. It
    names the service and where its API is; nothing else is answered without a token."""

    def get(self) -> None:
        self.reply({"service": self.settings.get("service_name", self.service), "api": "api/v1"})

"""Executor API errors: `{code, message, field?}`, as the broker answers them.

Messages go back to the scientist through their broker: they name runs, leases and jobs,
never a storage or state path.
"""

from __future__ import annotations

from typing import Any

STATUS_BY_CODE: dict[str, int] = {
    "INVALID_ARGUMENT": 400,
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "MOUNT_REFUSED": 403,
    "NOT_FOUND": 404,
    "RUN_NOT_FOUND": 404,
    "RUN_CONFLICT": 409,
    "INVALID_STATE": 409,
    "LEASE_EXPIRED": 410,
    "TOO_LARGE": 413,
    "SANDBOX_UNAVAILABLE": 503,
    "NO_IDENTITY": 503,
}


class ExecutorError(Exception):
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


def bad(field: str, message: str) -> ExecutorError:
    return ExecutorError("INVALID_ARGUMENT", f"{field}: {message}", field)

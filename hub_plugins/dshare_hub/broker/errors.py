"""API errors: `{code, message, field?}` with the HTTP status each code means."""

from __future__ import annotations

from typing import Any

from ..keys import KeyServiceError
from ..ledger import LedgerError

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
    "ASSET_NOT_FOUND": 404,
    "LEASE_NOT_FOUND": 404,
    "RUN_NOT_FOUND": 404,
    "NOT_FOUND": 404,
    "ASSET_EXISTS": 409,
    "LEASE_CONFLICT": 409,
    "INVALID_STATE": 409,
    "LEASE_EXPIRED": 410,
    "PEER_UNAVAILABLE": 502,
    "EXECUTOR_UNAVAILABLE": 502,
    "MOUNT_REFUSED": 403,
    "SANDBOX_UNAVAILABLE": 503,
    "WORKSPACE_TOO_LARGE": 413,
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


def from_ledger(error: LedgerError) -> ApiError:
    field = error.key if error.code == "INVALID_ARGUMENT" else None
    if error.code in STATUS_BY_CODE:
        return ApiError(error.code, error.message, field)
    # UNKNOWN_FUNCTION or a ledger-side failure: the broker and the contract disagree.
    return ApiError("LEDGER_ERROR", f"the ledger refused the call: {error.message}")


def from_keys(error: KeyServiceError) -> ApiError:
    # Key errors reaching a user mean the stored details cannot be used; the message names
    # the asset and key version only, never key material.
    if error.code == "KEY_DESTROYED":
        return ApiError("INVALID_STATE", error.message)
    return ApiError("KEY_ERROR", error.message)

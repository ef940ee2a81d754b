"""The broker's errors: ledger and key-service refusals in the shared `{code, message,
field?}` shape (`dshare_hub.webapi`)."""

from __future__ import annotations

from ..keys import KeyServiceError
from ..ledger import LedgerError
from ..webapi import STATUS_BY_CODE, ApiError, bad

__all__ = ["ApiError", "bad", "from_keys", "from_ledger"]


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

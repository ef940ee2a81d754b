"""The DataAsset contract's entry point: transactions by name, string arguments, JSON out.

`invoke` is all a ledger calls. It never imports a ledger; both the embedded ledger and the
Fabric chaincode adapter hand it a `Stub`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from . import approvals, assets, leases, runs
from .errors import INVALID_ARGUMENT, UNKNOWN_FUNCTION, ContractError
from .stub import Stub
from .tx import Tx, dumps

TRANSACTIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "RegisterAsset": assets.register_asset,
    "UpdateAsset": assets.update_asset,
    "RetireAsset": assets.retire_asset,
    "GetAsset": assets.get_asset,
    "QueryAssets": assets.query_assets,
    "GetAssetHistory": assets.asset_history,
    "RequestLease": leases.request_lease,
    "ApproveLease": leases.approve_lease,
    "RejectLease": leases.reject_lease,
    "ReleaseLease": leases.release_lease,
    "GetLease": leases.get_lease,
    "ListLeases": leases.list_leases,
    "ExpireLeases": leases.expire_leases,
    "ListExpiredLeases": leases.list_expired_leases,
    "RecordRun": runs.record_run,
    "FinishRun": runs.finish_run,
    "DecideOutput": runs.decide_output,
    "GetRun": runs.get_run,
    "ListRuns": runs.list_runs,
    "ListHeldOutputs": runs.list_held_outputs,
    "RequestCodeApproval": approvals.request_code_approval,
    "DecideCodeApproval": approvals.decide_code_approval,
    "GetCodeApproval": approvals.get_code_approval,
    "ListCodeApprovals": approvals.list_code_approvals,
}

# Functions that only read; a ledger may evaluate them without ordering.
QUERIES: frozenset[str] = frozenset(
    {
        "GetAsset",
        "QueryAssets",
        "GetAssetHistory",
        "GetLease",
        "ListLeases",
        "ListExpiredLeases",
        "GetRun",
        "ListRuns",
        "ListHeldOutputs",
        "GetCodeApproval",
        "ListCodeApprovals",
    }
)


def _arity(fn: Callable[..., Any]) -> tuple[int, int, list[str]]:
    params = list(inspect.signature(fn).parameters.values())[1:]  # drop tx
    required = sum(1 for p in params if p.default is inspect.Parameter.empty)
    return required, len(params), [p.name for p in params]


_ARITY = {name: _arity(fn) for name, fn in TRANSACTIONS.items()}


def invoke(stub: Stub, fn: str, args: Sequence[str]) -> bytes:
    """Run transaction `fn`; return its JSON result. Raises `ContractError` on refusal."""
    impl = TRANSACTIONS.get(fn)
    if impl is None:
        raise ContractError(
            UNKNOWN_FUNCTION,
            f"unknown function '{fn}'; known: {', '.join(sorted(TRANSACTIONS))}",
            key=fn,
        )
    lo, hi, names = _ARITY[fn]
    if not lo <= len(args) <= hi:
        want = str(lo) if lo == hi else f"{lo}-{hi}"
        raise ContractError(
            INVALID_ARGUMENT,
            f"{fn} takes {want} argument(s) ({', '.join(names)}), got {len(args)}",
            key=fn,
        )
    for i, arg in enumerate(args):
        if not isinstance(arg, str):
            raise ContractError(
                INVALID_ARGUMENT, f"{fn} argument {names[i]} must be a string", key=names[i]
            )
    return dumps(impl(Tx(stub), *args))

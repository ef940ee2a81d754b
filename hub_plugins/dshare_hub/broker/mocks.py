"""Mock previews: `GET datasets/{id}/mock?rows=N`, for any scientist of the consortium.

No lease is needed and the owner is not asked: the mock is made from the public schema
the ledger shows everyone (dshare_hub.mockdata), so the caller's own broker makes it for
any organization's dataset. Nothing of the owner's storage is read or opened.
"""

from __future__ import annotations

from typing import Any

from .. import mockdata
from .errors import ApiError
from .service import READ, Broker
from .views import Caller, check_id, dataset_view

DEFAULT_PREVIEW_ROWS = 10
DEFAULT_MAX_PREVIEW_ROWS = 100


async def public_asset(broker: Broker, caller: Caller, asset_id: str) -> dict[str, Any]:
    """What the ledger shows everyone of a dataset (never its sealed storage): an active
    one, or a refusal that says why it has no mock."""
    broker.require(caller, READ)
    asset = dataset_view(await broker.asset_record(check_id(asset_id, "id"), caller.user))
    if asset.get("state") != "active":
        raise ApiError(
            "INVALID_STATE",
            f"dataset '{asset_id}' is {asset.get('state')}; a retired dataset has no mock",
        )
    return asset


def preview_rows(params: dict[str, str], cap: int) -> int:
    raw = params.get("rows", str(DEFAULT_PREVIEW_ROWS))
    try:
        rows = int(raw, 10)
    except ValueError:
        rows = -1
    if not 1 <= rows <= cap:
        raise ApiError(
            "INVALID_ARGUMENT", f"rows: must be a whole number from 1 to {cap}, got {raw!r}", "rows"
        )
    return rows


async def preview(
    broker: Broker, caller: Caller, asset_id: str, params: dict[str, str], cap: int
) -> dict[str, Any]:
    rows = preview_rows(params, cap)
    asset = await public_asset(broker, caller, asset_id)
    columns = asset.get("columns") or []
    if not columns:
        raise ApiError(
            "INVALID_STATE",
            f"dataset '{asset_id}' has no columns in its schema, so it has no mock table; "
            "its skeleton (files and sizes) is all there is to see before a lease",
        )
    part = mockdata.preview_part(asset)
    table = mockdata.mock_table(str(asset["id"]), columns, rows, part=part)
    return {**table.as_json(), "file": part}

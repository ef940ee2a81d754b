"""Asset transactions: register, update, retire, read, query, history."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

from . import keys, validate
from .errors import (
    ASSET_EXISTS,
    ASSET_NOT_FOUND,
    INVALID_ARGUMENT,
    INVALID_STATE,
    NOT_OWNER,
    ContractError,
)
from .leases import active_lease_count
from .tx import Tx, fmt_time

ASSET_IN_FIELDS = (
    "columns",
    "description",
    "id",
    "name",
    "policy",
    "redaction",
    "sealed_storage",
    "skeleton",
    "storage_type",
    "tags",
)
UPDATABLE = tuple(f for f in ASSET_IN_FIELDS if f != "id")
QUERY_FIELDS = ("available", "bookmark", "include_retired", "limit", "org", "q", "storage", "tag")
MAX_PAGE = 200


def load_asset(tx: Tx, asset_id: str) -> dict[str, Any]:
    asset = tx.get_json(keys.asset(asset_id))
    if asset is None:
        raise ContractError(ASSET_NOT_FOUND, f"asset '{asset_id}' does not exist", key=asset_id)
    return asset


def require_owner(tx: Tx, asset: dict[str, Any], doing: str) -> None:
    if asset["owner_org"] != tx.org:
        raise ContractError(
            NOT_OWNER,
            f"only the owner organization '{asset['owner_org']}' may {doing} asset "
            f"'{asset['id']}'; you submitted as '{tx.org}'",
            key=asset["id"],
        )


def require_active(asset: dict[str, Any], doing: str) -> None:
    if asset["state"] != "active":
        raise ContractError(
            INVALID_STATE,
            f"asset '{asset['id']}' is {asset['state']}; cannot {doing} it",
            key=asset["id"],
        )


def _fields(data: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any]:
    """Validated asset fields from `data`; missing ones come from `base` (an update)."""
    out: dict[str, Any] = {}

    def pick(name: str, default: Any) -> Any:
        if name in data:
            return data[name]
        if base is not None:
            return base[name]
        return default

    out["name"] = validate.text(pick("name", None), "name", max_len=200)
    out["description"] = validate.text(
        pick("description", ""), "description", max_len=10_000, required=False
    )
    out["tags"] = validate.tags(pick("tags", []), "tags")
    out["storage_type"] = validate.storage_type(pick("storage_type", None), "storage_type")
    out["sealed_storage"] = validate.sealed(pick("sealed_storage", None), "sealed_storage")
    out["columns"] = validate.columns(pick("columns", []), "columns")
    out["skeleton"] = validate.skeleton(pick("skeleton", []), "skeleton")
    # Assets registered before redaction policies existed have none.
    out["redaction"] = validate.redaction(
        data.get("redaction", (base or {}).get("redaction", "")), "redaction"
    )
    out["policy"] = validate.policy(
        data.get("policy", {}), "policy", base["policy"] if base else None
    )
    return out


def _unknown(data: dict[str, Any], allowed: tuple[str, ...], field: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ContractError(
            INVALID_ARGUMENT,
            f"{field}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}",
            key=unknown[0],
        )


def register_asset(tx: Tx, asset_json: str) -> dict[str, Any]:
    data = validate.obj(validate.parse_json_arg(asset_json, "asset"), "asset")
    _unknown(data, ASSET_IN_FIELDS, "asset")
    asset_id = validate.ident(data.get("id"), "id")
    fields = _fields(data, None)
    who = tx.who
    key = keys.asset(asset_id)
    if tx.stub.get_state(key) is not None:
        raise ContractError(ASSET_EXISTS, f"asset '{asset_id}' already exists", key=asset_id)
    asset = {
        "id": asset_id,
        "owner_org": who["org"],
        "state": "active",
        "created_at": tx.now_text,
        "updated_at": tx.now_text,
        "created_by": who,
        "updated_by": who,
        "last_action": "registered",
        **fields,
    }
    tx.put_json(key, asset)
    tx.emit("AssetRegistered", {"id": asset_id, "owner_org": who["org"], "by": who})
    return asset


def update_asset(tx: Tx, asset_id: str, patch_json: str) -> dict[str, Any]:
    validate.ident(asset_id, "id")
    patch = validate.obj(validate.parse_json_arg(patch_json, "patch"), "patch")
    _unknown(patch, UPDATABLE, "patch")
    if not patch:
        raise ContractError(
            INVALID_ARGUMENT,
            f"patch: is empty; name at least one of {', '.join(UPDATABLE)}",
            key="patch",
        )
    who = tx.who
    asset = load_asset(tx, asset_id)
    require_owner(tx, asset, "update")
    require_active(asset, "update")
    asset.update(_fields(patch, asset))
    asset.update({"updated_at": tx.now_text, "updated_by": who, "last_action": "updated"})
    tx.put_json(keys.asset(asset_id), asset)
    tx.emit("AssetUpdated", {"id": asset_id, "fields": sorted(patch), "by": who})
    return asset


def retire_asset(tx: Tx, asset_id: str) -> dict[str, Any]:
    validate.ident(asset_id, "id")
    who = tx.who
    asset = load_asset(tx, asset_id)
    require_owner(tx, asset, "retire")
    require_active(asset, "retire")
    asset.update(
        {
            "state": "retired",
            "retired_at": tx.now_text,
            "updated_at": tx.now_text,
            "updated_by": who,
            "last_action": "retired",
        }
    )
    tx.put_json(keys.asset(asset_id), asset)
    tx.emit("AssetRetired", {"id": asset_id, "by": who})
    return asset


def _with_leases(tx: Tx, asset: dict[str, Any]) -> dict[str, Any]:
    return {**asset, "active_leases": active_lease_count(tx, asset["id"])}


class OpenLeaseCounter:
    """Active lease counts of assets asked for in key order, from one scan of the open-lease
    index instead of one scan per asset (a page of 50 assets: 1 range read, not 50).

    The index is ordered by asset id, as the assets are, so the scan only moves forward and
    stops one entry past the last asset asked for: a commit that adds an open lease anywhere
    before that point changes what this transaction read, as a per-asset scan would notice.
    """

    def __init__(self, tx: Tx) -> None:
        self._tx = tx
        self._entries: Iterator[tuple[list[str], bytes]] | None = None
        self._next: tuple[str, bytes] | None = None  # read but not yet counted
        self._ended = False
        self._now = ""

    def _peek(self) -> tuple[str, bytes] | None:
        if self._next is None and not self._ended:
            if self._entries is None:
                self._entries = self._tx.scan(keys.OPEN_LEASES, [])
            entry = next(self._entries, None)
            if entry is None:
                self._ended = True
            else:
                self._next = (entry[0][0], entry[1])
        return self._next

    def count(self, asset_id: str) -> int:
        """Same answer as `active_lease_count(tx, asset_id)`; ids must come in ascending order."""
        count = 0
        now = self._now = self._now or self._tx.now_text  # formatted once per page
        while (entry := self._peek()) is not None and entry[0] <= asset_id:
            self._next = None
            if entry[0] == asset_id:
                lease = json.loads(entry[1])
                if lease["state"] == "active" and lease["expires_at"] > now:
                    count += 1
        return count


def get_asset(tx: Tx, asset_id: str) -> dict[str, Any]:
    validate.ident(asset_id, "id")
    return _with_leases(tx, load_asset(tx, asset_id))


def is_available(asset: dict[str, Any]) -> bool:
    if asset["state"] != "active":
        return False
    cap = 1 if asset["policy"]["exclusive"] else asset["policy"]["max_concurrent"]
    return cap is None or int(asset["active_leases"]) < cap


def _bookmark(text: str) -> str:
    try:
        return base64.urlsafe_b64decode(text.encode()).decode()
    except ValueError:
        raise ContractError(
            INVALID_ARGUMENT,
            "bookmark: is not a bookmark returned by QueryAssets; start again without it",
            key="bookmark",
        ) from None


def query_assets(tx: Tx, filters_json: str = "{}") -> dict[str, Any]:
    f = validate.obj(validate.parse_json_arg(filters_json, "filters"), "filters")
    _unknown(f, QUERY_FIELDS, "filters")
    limit = validate.integer(f.get("limit", 50), "limit", lo=1, hi=MAX_PAGE)
    org = f.get("org")
    tag = f.get("tag")
    storage = f.get("storage")
    if org is not None:
        validate.ident(org, "org")
    if tag is not None:
        validate.text(tag, "tag", max_len=48)
    if storage is not None:
        validate.storage_type(storage, "storage")
    q = validate.text(f.get("q", ""), "q", max_len=200, required=False).casefold()
    available = validate.boolean(f.get("available", False), "available")
    include_retired = validate.boolean(f.get("include_retired", False), "include_retired")
    start = keys.ASSET_PREFIX
    if f.get("bookmark"):
        last = _bookmark(validate.text(f["bookmark"], "bookmark", max_len=200))
        if not last.startswith(keys.ASSET_PREFIX):
            raise ContractError(
                INVALID_ARGUMENT,
                "bookmark: is not a bookmark returned by QueryAssets; start again without it",
                key="bookmark",
            )
        start = last + "\x00"  # the smallest key after the last one returned
    items: list[dict[str, Any]] = []
    bookmark = ""
    leases = OpenLeaseCounter(tx)
    for key, raw in tx.stub.get_state_by_range(start, keys.ASSETS_END):
        if len(items) == limit:
            # A further match may exist; hand back where to resume.
            bookmark = base64.urlsafe_b64encode(items[-1]["_key"].encode()).decode()
            break
        text = raw.decode()
        # Most assets fail a text search: reject them before parsing. Without a backslash
        # the JSON holds name and description verbatim, and case folding works character by
        # character, so a match in either is a match in the folded whole text.
        if q and "\\" not in text and q not in text.casefold():
            continue
        asset = json.loads(text)
        if asset["state"] != "active" and not include_retired:
            continue
        if org is not None and asset["owner_org"] != org:
            continue
        if tag is not None and tag not in asset["tags"]:
            continue
        if storage is not None and asset["storage_type"] != storage:
            continue
        if q and q not in asset["name"].casefold() and q not in asset["description"].casefold():
            continue
        asset["active_leases"] = leases.count(asset["id"])
        if available and not is_available(asset):
            continue
        asset["_key"] = key
        items.append(asset)
    for item in items:
        del item["_key"]
    return {"items": items, "bookmark": bookmark}


def asset_history(tx: Tx, asset_id: str) -> dict[str, Any]:
    validate.ident(asset_id, "id")
    items = []
    for entry in tx.stub.get_history_for_key(keys.asset(asset_id)):
        if entry.value is None:
            continue
        asset = json.loads(entry.value)
        items.append(
            {
                "tx_id": entry.tx_id,
                "timestamp": fmt_time(entry.timestamp),
                "org": asset["updated_by"]["org"],
                "actor": asset["updated_by"]["actor"],
                "action": asset["last_action"],
                "asset": asset,
            }
        )
    if not items:
        raise ContractError(ASSET_NOT_FOUND, f"asset '{asset_id}' does not exist", key=asset_id)
    return {"items": items}

"""The statistical synthesizer, on the owner's request only: mock ranges from the real rows.

`POST datasets/{id}/mock/synthesize` (an administrator of the owner organization): the
owner's broker reads its own dataset's first table and derives per-column marginals,
which it stores as the columns' `mock` ranges on the ledger, where every scientist's mock
then draws from them. What is derived is chosen to say little about any one row:

- numbers, integers, dates: the 5th and 95th percentiles as min and max, and only from
  at least `min_count` values; never the extremes, which would name the largest payment
  (in a small table a percentile is the extreme, so the one next to it is taken);
- strings: the categories that occur at least `min_count` times, at most `max_values`
  of them (a rare value is left out; none frequent enough: the column keeps its ranges);
- the fraction of empty cells, rounded to two decimals;
- columns tagged pii or identifier, and columns the owner's redaction policy hides from a
  lessee (as it decides for another organization, or one of the policy's allowed_orgs,
  without a purpose): never from the data. A string column keeps its pattern (or gets the
  default id pattern), any other keeps the owner's ranges, whatever the rows hold: the
  mock is public to every member, lessees the policy hides the column from included.

Without this request a mock is made from the schema and the owner's own ranges alone.
"""

from __future__ import annotations

import csv
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from dshare_chaincode.mockspec import MAX_VALUE_LEN

from .. import mockdata
from ..keys import KeyServiceError
from . import redaction
from .errors import ApiError, from_keys
from .service import Broker
from .views import Caller, check_id

MIN_COUNT = 10
MAX_VALUES = 20
MAX_ROWS = 100_000
LOW, HIGH = 0.05, 0.95
SYNTH_FIELDS = ("min_count", "max_values")


def _quantile(sorted_values: list[Any], q: float) -> Any:
    """The q-quantile, never the smallest or largest value (callers give at least 3)."""
    last = len(sorted_values) - 1
    return sorted_values[min(last - 1, max(1, math.floor(q * len(sorted_values))))]


def _parse(value: str, ctype: str) -> Any:
    if ctype == "integer":
        return int(value)
    if ctype == "number":
        return float(value)
    if ctype == "date":
        return date.fromisoformat(value)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _number_out(value: Any, ctype: str) -> Any:
    if ctype == "number":
        return round(float(value), 2)
    if ctype == "date":
        return value.isoformat()
    if ctype == "datetime":
        return value.isoformat().replace("+00:00", "Z")
    return value


def derive_ranges(
    columns: list[dict[str, Any]],
    rows: Iterable[Mapping[str, str]],
    *,
    min_count: int = MIN_COUNT,
    max_values: int = MAX_VALUES,
    hidden: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """The columns with `mock` ranges derived from `rows` (csv.DictReader rows); nothing of
    the `hidden` columns' values, as of identifying ones."""
    cells: dict[str, list[str]] = {str(c["name"]): [] for c in columns}
    total = 0
    for row in rows:
        total += 1
        for name, kept in cells.items():
            kept.append(row.get(name) or "")
    out = []
    for column in columns:
        name, ctype = str(column["name"]), str(column.get("type") or "string")
        ranges = dict(column.get("mock") or {})
        identifying = name in hidden or bool(
            mockdata.IDENTIFYING_TAGS & set(column.get("tags") or [])
        )
        present = [v for v in cells[name] if v != ""]
        if total:
            ranges["null_fraction"] = round(1 - len(present) / total, 2)
        if identifying:
            # Never from the data: an id pattern is all a mock of an identifier may show
            # (the contract takes patterns on strings only; others keep the owner's ranges).
            if ctype == "string":
                ranges.pop("values", None)
                ranges.setdefault("pattern", mockdata.DEFAULT_ID_PATTERN)
        elif ctype in ("integer", "number", "date", "datetime") and present:
            try:
                parsed = sorted(
                    x
                    for x in (_parse(v, ctype) for v in present)
                    if not isinstance(x, float) or math.isfinite(x)
                )
            except (ValueError, TypeError):
                parsed = []  # not all of the column's type: the owner's ranges stay
            # As for categories: from fewer than min_count values a bound tells of a row.
            if len(parsed) >= max(min_count, 3):
                ranges["min"] = _number_out(_quantile(parsed, LOW), ctype)
                ranges["max"] = _number_out(_quantile(parsed, HIGH), ctype)
        elif ctype == "string":
            counts = Counter(v for v in present if len(v) <= MAX_VALUE_LEN and v.isprintable())
            frequent = [v for v, n in counts.most_common(max_values) if n >= min_count]
            if frequent:
                ranges.pop("pattern", None)
                ranges["values"] = sorted(frequent)
        out.append({**column, "mock": ranges})
    return out


def hidden_columns(asset: Mapping[str, Any]) -> frozenset[str]:
    """Columns the owner's redaction policy does not give some lessee as they are; all of
    them when it cannot be decided (a mount would be refused then too)."""
    owner = str(asset.get("owner_org") or "")
    allowed = (asset.get("policy") or {}).get("allowed_orgs") or []
    hidden: set[str] = set()
    for lessee in sorted({redaction.OTHER_ORG, *allowed} - {owner}):
        try:
            plan = redaction.decide(asset, {"lessee_org": lessee, "purpose": ""})
        except redaction.RedactionError:
            return frozenset(str(c.get("name")) for c in asset.get("columns") or [])
        hidden |= set(plan.actions)
    return frozenset(hidden)


def _limits(body: Any) -> tuple[int, int]:
    data = body if isinstance(body, dict) else {}
    if body not in (None, {}) and not isinstance(body, dict):
        raise ApiError("INVALID_ARGUMENT", "the request body must be a JSON object")
    unknown = sorted(set(data) - set(SYNTH_FIELDS))
    if unknown:
        raise ApiError(
            "INVALID_ARGUMENT",
            f"{unknown[0]}: unknown field; allowed fields: {', '.join(SYNTH_FIELDS)}",
            unknown[0],
        )
    out = []
    bounds = (("min_count", MIN_COUNT, 5, 10_000), ("max_values", MAX_VALUES, 1, 200))
    for name, default, lo, hi in bounds:
        value = data.get(name, default)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise ApiError(
                "INVALID_ARGUMENT", f"{name}: must be a whole number from {lo} to {hi}", name
            )
        out.append(value)
    return out[0], out[1]


def _read_rows(path: str, table: str) -> list[dict[str, str]]:
    where = os.path.realpath(os.path.join(path, table))
    if not where.startswith(os.path.realpath(path).rstrip("/") + "/"):
        raise ApiError("INVALID_STATE", f"the dataset's table {table!r} is outside its directory")
    try:
        with open(where, newline="", encoding="utf-8", errors="replace") as f:
            rows = []
            for n, row in enumerate(csv.DictReader(f)):
                if n >= MAX_ROWS:
                    break
                rows.append(row)
            return rows
    except OSError:
        raise ApiError(
            "STORAGE_UNAVAILABLE",
            f"the dataset's table {table!r} cannot be read by this broker; ask the operator "
            "to check its storage",
        ) from None


async def synthesize(broker: Broker, caller: Caller, asset_id: str, body: Any) -> dict[str, Any]:
    """Derive the mock ranges of one of this org's datasets from its rows and store them."""
    broker.require_admin(caller, "synthesize the mocks of its datasets")
    min_count, max_values = _limits(body)
    asset = await broker.asset_record(check_id(asset_id, "id"), caller.user)
    if asset["owner_org"] != broker.org:
        raise ApiError(
            "NOT_OWNER",
            f"only the owner organization '{asset['owner_org']}' may synthesize the mock of "
            f"asset '{asset_id}'",
        )
    columns = list(asset.get("columns") or [])
    if not columns:
        raise ApiError(
            "INVALID_STATE",
            f"dataset '{asset_id}' has no columns in its schema; add them before synthesizing",
        )
    if asset.get("storage_type") not in ("local", "hostpath"):
        raise ApiError(
            "INVALID_STATE",
            f"the synthesizer reads local storage only; dataset '{asset_id}' is on "
            f"{asset.get('storage_type')}. Set its columns' mock ranges by hand instead",
        )
    table = mockdata.preview_part(asset)
    if table == mockdata.OWN_TABLE:
        raise ApiError(
            "INVALID_STATE",
            f"dataset '{asset_id}' lists no .csv table in its skeleton; the synthesizer reads "
            "the first one",
        )
    try:
        details = broker.keys.open_details(asset["id"], broker.org, asset["sealed_storage"])
    except KeyServiceError as error:
        raise from_keys(error) from None
    try:
        rows = _read_rows(str(details.get("path") or ""), table)
    finally:
        del details
    derived = derive_ranges(
        columns, rows, min_count=min_count, max_values=max_values, hidden=hidden_columns(asset)
    )
    return await broker.update_dataset(caller, asset_id, {"columns": derived})

"""Mock rows of a tabular dataset: its real schema, plausible synthetic values.

A mock is made from the public schema on the ledger alone (the columns and the owner-set
`mock` ranges of each), never from the real rows, so any broker makes it for any
organization's dataset without asking the owner, and the executor writes it into a mock
run's view without opening anything of the owner's. It is deterministic: seeded by the
asset id and a hash of the schema, row by row, so a preview is stable, the first N rows
of a run's table are the preview's N rows, and every broker produces the same mock.

Hand-written rather than Faker's providers: the values must be the same on every broker
and across library upgrades, and they must come from the owner's ranges only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

LABEL = "Mock data — synthetic, not the real rows"
# Columns whose values identify someone always come from a pattern, never from a list.
IDENTIFYING_TAGS = frozenset({"pii", "identifier"})
DEFAULT_NUMBER = (0, 1000)
DEFAULT_DATES = ("2020-01-01", "2025-12-31")
DEFAULT_ID_PATTERN = "ID-########"
DIGIT, LETTER = "#", "?"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
OWN_TABLE = "mock.csv"  # a tabular dataset whose skeleton lists no .csv file
# A skeleton may list thousands of tables; a mock run gets rows in the first ones only.
MAX_TABLES = 32
# Rows of one mock table in a mock run: the executor writes them all into the run.
MAX_ROWS = 100_000


@dataclass(frozen=True)
class MockTable:
    dataset_id: str
    columns: tuple[dict[str, Any], ...]
    rows: tuple[tuple[Any, ...], ...]
    seed: str

    @property
    def names(self) -> list[str]:
        return [str(c["name"]) for c in self.columns]

    def as_json(self) -> dict[str, Any]:
        return {
            "dataset_id": self.dataset_id,
            "mock": True,
            "label": LABEL,
            "seed": self.seed,
            "columns": [
                {"name": c["name"], "type": c.get("type", "string"), "tags": c.get("tags", [])}
                for c in self.columns
            ],
            "rows": [list(r) for r in self.rows],
        }

    def as_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.names)
        for row in self.rows:
            writer.writerow(["" if v is None else _csv_cell(v) for v in row])
        return out.getvalue()


def _csv_cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def schema_seed(asset_id: str, columns: Sequence[Mapping[str, Any]]) -> str:
    """What seeds a dataset's mock: its id and its schema (a new schema, a new mock)."""
    schema = json.dumps(list(columns), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{asset_id}\0{schema}".encode()).hexdigest()


def _pattern(rng: random.Random, pattern: str) -> str:
    return "".join(
        str(rng.randrange(10)) if ch == DIGIT else rng.choice(LETTERS) if ch == LETTER else ch
        for ch in pattern
    )


def _when(text: str, ctype: str) -> datetime:
    if ctype == "date":
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _value(rng: random.Random, column: Mapping[str, Any]) -> Any:
    ctype = str(column.get("type") or "string")
    ranges: Mapping[str, Any] = column.get("mock") or {}
    # Drawn every time, so a column's null_fraction does not shift the other columns.
    is_null = rng.random() < float(ranges.get("null_fraction", 0))
    value: Any
    if ctype == "integer":
        lo, hi = ranges.get("min", DEFAULT_NUMBER[0]), ranges.get("max", DEFAULT_NUMBER[1])
        value = rng.randint(int(lo), int(hi))
    elif ctype == "number":
        lo, hi = ranges.get("min", DEFAULT_NUMBER[0]), ranges.get("max", DEFAULT_NUMBER[1])
        value = min(max(round(rng.uniform(float(lo), float(hi)), 2), float(lo)), float(hi))
    elif ctype == "boolean":
        value = rng.random() < 0.5
    elif ctype in ("date", "datetime"):
        lo_t = _when(str(ranges.get("min", DEFAULT_DATES[0])), ctype)
        hi_t = _when(str(ranges.get("max", DEFAULT_DATES[1])), ctype)
        span = int((hi_t - lo_t).total_seconds())
        if ctype == "date":
            value = (lo_t + timedelta(days=rng.randint(0, span // 86400))).date().isoformat()
        else:
            moment = lo_t + timedelta(seconds=rng.randint(0, span))
            value = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        identifying = bool(IDENTIFYING_TAGS & set(column.get("tags") or []))
        if "pattern" in ranges:
            value = _pattern(rng, str(ranges["pattern"]))
        elif "values" in ranges and not identifying:
            value = rng.choice(list(ranges["values"]))
        elif identifying:
            value = _pattern(rng, DEFAULT_ID_PATTERN)
        else:
            value = f"{column.get('name')}-{rng.randrange(1000)}"
    return None if is_null else value


def mock_table(
    asset_id: str, columns: Sequence[Mapping[str, Any]], rows: int, *, part: str = ""
) -> MockTable:
    """`rows` mock rows of a dataset; `part` (a file of the dataset) seeds its own rows."""
    seed = schema_seed(asset_id, columns)
    out = []
    for n in range(rows):
        # One generator per row: any row is made without the ones before it.
        rng = random.Random(f"{seed}:{part}:{n}")  # noqa: S311 - synthetic, not secret
        out.append(tuple(_value(rng, column) for column in columns))
    return MockTable(asset_id, tuple(dict(c) for c in columns), tuple(out), seed)


def _is_table(path: str) -> bool:
    return path.lower().endswith(".csv")


def preview_part(asset: Mapping[str, Any]) -> str:
    """The file a preview shows: the dataset's first table, so a preview's rows are the
    first rows a mock run reads there."""
    tables = [str(e["path"]) for e in asset.get("skeleton") or [] if _is_table(str(e["path"]))]
    return tables[0] if tables else OWN_TABLE


def mock_files(asset: Mapping[str, Any], rows: int) -> dict[str, bytes]:
    """What a mock run sees of a dataset: its skeleton's files, the tables (`.csv`, the
    first MAX_TABLES of them) filled with mock rows, every other file empty; a table of
    its own when the skeleton has none. Relative path -> contents."""
    columns = list(asset.get("columns") or [])
    asset_id = str(asset["id"])
    files: dict[str, bytes] = {}
    tables = 0
    for entry in asset.get("skeleton") or []:
        path = str(entry["path"])
        if path.endswith("/"):
            continue  # a directory: made with the files under it (or as the view's own)
        if columns and _is_table(path) and tables < MAX_TABLES:
            tables += 1
            files[path] = mock_table(asset_id, columns, rows, part=path).as_csv().encode()
        else:
            files[path] = b""
    if columns and not tables:
        table = mock_table(asset_id, columns, rows, part=OWN_TABLE)
        files[OWN_TABLE] = table.as_csv().encode()
    return files

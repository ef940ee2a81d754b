"""Tables as the output gate reads them: a run's CSV, TSV, Parquet and JSON outputs and the
tabular files of its inputs, as rows of normalized cell strings.

The gate compares an output's cells with the input's values, so both sides are read the
same way: every cell becomes one string, numbers in one canonical form ("7", "7.0" and
"7e0" are all "7"), so a job cannot slip a value past a comparison by formatting it.
Whatever cannot be read as a table raises `NotATable` with a reason that names the line or
field at fault, never a cell's content: the scientist reads it, and the cells may be data.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

SUFFIXES = (".csv", ".tsv", ".parquet", ".json")
# A Parquet file is compressed: what it decodes to, not its length, bounds the memory used.
MAX_DECODED = 256 * 1024 * 1024
MAX_CELLS = 10_000_000
_BATCH = 1024  # Parquet rows decoded at a time: the size bound is checked per batch
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class NotATable(Exception):
    """The file is not a table the checks read; `reason` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]  # normalized like the cells
    rows: tuple[tuple[str, ...], ...]

    def column(self, j: int) -> list[str]:
        return [row[j] for row in self.rows]


def cell(value: Any) -> str:
    """One cell's canonical string: numbers as the shortest form of their float value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number(float(value))
    text = str(value).strip()
    if _NUMBER.match(text):
        return _number(float(text))
    low = text.lower()
    if low in ("true", "false"):
        return low
    return text


def _number(x: float) -> str:
    if not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if x.is_integer() and abs(x) < 2**53:
        return str(int(x))
    return repr(x)


def number(text: str) -> float | None:
    """The value of a normalized cell that holds a finite number, else None."""
    if not text or not (text[0].isdigit() or text[0] in "+-."):
        return None
    try:
        x = float(text)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def is_table_name(path: str) -> bool:
    return path.lower().endswith(SUFFIXES)


def read_table(path: str, data: bytes) -> Table:
    """The table in ``data``, read by the suffix of ``path``; raises NotATable."""
    low = path.lower()
    if low.endswith((".csv", ".tsv")):
        return _csv(path, data, "\t" if low.endswith(".tsv") else ",")
    if low.endswith(".json"):
        return _json(path, data)
    if low.endswith(".parquet"):
        return _parquet(path, data)
    raise NotATable("its name does not end in .csv, .tsv, .parquet or .json")


def _build(path: str, header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> Table:
    columns = tuple(cell(h) for h in header)
    if not columns:
        raise NotATable("it has no columns")
    out = []
    # One string object per distinct value: category columns repeat a few values a lot.
    seen: dict[str, str] = {}
    for i, row in enumerate(rows, start=1):
        if len(row) != len(columns):
            raise NotATable(f"data row {i} has {len(row)} field(s); the header has {len(columns)}")
        out.append(tuple(seen.setdefault(c, c) for c in map(cell, row)))
        if len(out) * len(columns) > MAX_CELLS:
            raise NotATable(f"it has more than {MAX_CELLS} cells, more than the gate reads")
    return Table(path, columns, tuple(out))


def _csv(path: str, data: bytes, delimiter: str) -> Table:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise NotATable(f"it is not UTF-8 text (byte {error.start})") from None
    if "\x00" in text:
        raise NotATable("it holds NUL characters, which no CSV file does")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        lines = [line for line in reader if line]  # blank lines separate nothing
    except csv.Error as error:
        raise NotATable(f"it is not valid CSV at line {reader.line_num} ({error})") from None
    if not lines:
        raise NotATable("it is empty")
    return _build(path, lines[0], lines[1:])


def _json(path: str, data: bytes) -> Table:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as error:  # RecursionError: nesting too deep
        where = f" at position {error.pos}" if isinstance(error, json.JSONDecodeError) else ""
        raise NotATable(f"it is not valid JSON{where}") from None
    shape = (
        "it is JSON but not a table: write a list of objects (pandas orient='records') or "
        "{columns, data} (orient='split')"
    )
    if isinstance(value, list) and all(isinstance(r, dict) for r in value):
        header: dict[str, None] = {}
        for record in value:
            header.update(dict.fromkeys(record))
        rows = [[r.get(k) for k in header] for r in value]
        _flat(rows)
        return _build(path, list(header), rows)
    if isinstance(value, dict) and isinstance(value.get("columns"), list):
        body = value.get("data")
        if not isinstance(body, list) or not all(isinstance(r, list) for r in body):
            raise NotATable(shape)
        columns = list(value["columns"])
        index = value.get("index")
        if isinstance(index, list) and len(index) == len(body):
            # The index is part of what is released: its labels are checked like cells.
            columns = ["", *columns]
            body = [[label, *row] for label, row in zip(index, body, strict=True)]
        _flat([columns, *body])
        return _build(path, columns, body)
    raise NotATable(shape)


def _flat(rows: Iterable[Sequence[Any]]) -> None:
    for i, row in enumerate(rows, start=1):
        for j, value in enumerate(row, start=1):
            if isinstance(value, dict | list):
                raise NotATable(f"row {i}, field {j} is a nested list or object, not a value")


def _parquet(path: str, data: bytes) -> Table:
    import pyarrow as pa  # only the gate reads Parquet: not imported where jobs run
    import pyarrow.parquet as pq

    too_big = NotATable(f"it decodes to more than {MAX_DECODED} bytes, more than the gate reads")
    try:
        schema = pq.ParquetFile(pa.BufferReader(data)).schema_arrow
        for j, field in enumerate(schema, start=1):
            if pa.types.is_nested(field.type):
                # By position: a column's name is the job's to choose, so it could be data.
                raise NotATable(f"column {j} holds nested lists or structs, not values")
        # The footer's sizes are the job's own claim, and one long string in a dictionary
        # page, repeated by its indices, decodes to any size: strings stay dictionaries
        # while read, in small batches, and what they would decode to is counted first.
        file = pq.ParquetFile(pa.BufferReader(data), read_dictionary=schema.names)
        # Fixed-width values (a fixed_size_binary can be any width) are decoded before they
        # can be counted: so few rows a batch that one batch stays within the bound.
        width = sum(_fixed_width(f.type) for f in schema)
        if width > MAX_DECODED:
            raise too_big
        columns: list[list[Any]] = [[] for _ in schema.names]
        decoded = rows = 0
        step = max(1, min(_BATCH, MAX_DECODED // (16 * max(1, width))))
        for batch in file.iter_batches(batch_size=step, use_threads=False):
            decoded += sum(_decoded_size(array) for array in batch.columns)
            rows += batch.num_rows
            if decoded > MAX_DECODED:
                raise too_big
            if rows * max(1, len(columns)) > MAX_CELLS:
                raise NotATable(f"it has more than {MAX_CELLS} cells, more than the gate reads")
            for j, array in enumerate(batch.columns):
                columns[j].extend(array.to_pylist())
    except NotATable:
        raise
    except (pa.ArrowException, OSError, ValueError):
        raise NotATable("it is not a readable Parquet file") from None
    return _build(path, schema.names, [list(r) for r in zip(*columns, strict=True)])


def _fixed_width(kind: Any) -> int:
    """Bytes a value of this Arrow type takes decoded, for fixed-width types; else 8 (a
    dictionary index or an offset: the values themselves are counted by `_decoded_size`)."""
    import pyarrow as pa

    if pa.types.is_fixed_size_binary(kind):
        return int(kind.byte_width)
    try:
        return max(1, int(kind.bit_width) // 8)
    except ValueError:  # not a fixed-width type
        return 8


def _decoded_size(array: Any) -> int:
    """The bytes a column's values take decoded: a dictionary's values once per index."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_dictionary(array.type):
        return int(array.nbytes)
    values = array.dictionary
    kinds = (
        pa.types.is_string,
        pa.types.is_large_string,
        pa.types.is_binary,
        pa.types.is_large_binary,
    )
    if any(kind(values.type) for kind in kinds):
        lengths = pc.binary_length(values)
    else:
        lengths = pa.array([values.nbytes // max(1, len(values))] * len(values), pa.int64())
    total = pc.sum(pc.take(lengths, array.indices)).as_py() or 0
    return int(total) + 8 * len(array)

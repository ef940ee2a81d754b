"""Reading a run's tables (CSV, TSV, JSON, Parquet) the way the disclosure checks do."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dshare_hub.executor.tables import NotATable, Table, cell, number, read_table


def parquet(columns: dict[str, list]) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table(columns), out)
    return out.getvalue()


def test_every_format_reads_to_the_same_cells() -> None:
    want = Table("t", ("who", "n"), (("ann", "3"), ("bob", "12.5")))
    csv_ = read_table("t.csv", b"who,n\nann,3\nbob,12.50\n")
    tsv = read_table("t.TSV", b"who\tn\r\nann\t3.0\r\n\r\nbob\t1.25e1\r\n")
    records = read_table("t.json", json.dumps([{"who": "ann", "n": 3}, {"who": "bob", "n": 12.5}]))
    split = read_table(
        "t.json", json.dumps({"columns": ["who", "n"], "data": [["ann", 3], ["bob", 12.5]]})
    )
    pq_ = read_table("t.parquet", parquet({"who": ["ann", "bob"], "n": [3, 12.5]}))
    for got in (csv_, tsv, records, split, pq_):
        assert (got.columns, got.rows) == (want.columns, want.rows)


def test_numbers_have_one_form_so_formatting_hides_nothing() -> None:
    assert cell("7") == cell("7.0") == cell("7e0") == cell(7) == cell(7.0) == cell(" 007 ") == "7"
    assert cell(True) == cell("TRUE") == "true"
    assert cell(None) == "" and cell(" x ") == "x"
    assert number(cell("2.50")) == 2.5 and number("P123") is None and number("nan") is None


def test_a_split_tables_index_is_read_as_a_column() -> None:
    # The index is released with the table: its labels are checked like any cell.
    got = read_table("t.json", json.dumps({"columns": ["n"], "index": ["ann"], "data": [[3]]}))
    assert (got.columns, got.rows) == (("", "n"), (("ann", "3"),))


@pytest.mark.parametrize(
    ("path", "data", "reason"),
    [
        ("t.txt", b"a,b\n1,2\n", "its name does not end in .csv, .tsv, .parquet or .json"),
        ("t.csv", b"a,b\n1\n", "data row 1 has 1 field(s); the header has 2"),
        ("t.csv", b"a,b\n1,2\n\xff\xfe,3\n", "it is not UTF-8 text (byte 8)"),
        ("t.csv", b"a,b\n1,\x002\n", "it holds NUL characters, which no CSV file does"),
        ("t.csv", b'a,b\n"1"x,2\n', "it is not valid CSV at line 2 (',' expected after '\"')"),
        ("t.csv", b"\n\n", "it is empty"),
        (
            "t.csv",
            b"a\n" + b"x" * 200_000 + b"\n",
            "it is not valid CSV at line 2 (field larger than field limit (131072))",
        ),
        ("t.json", b"[{]", "it is not valid JSON at position 2"),
        ("t.json", b"[" * 100_000, "it is not valid JSON"),  # nested past the recursion limit
        (
            "t.json",
            b'{"a": [1, 2]}',
            "it is JSON but not a table: write a list of objects (pandas orient='records') "
            "or {columns, data} (orient='split')",
        ),
        ("t.json", b'[{"a": {"b": 1}}]', "row 1, field 1 is a nested list or object, not a value"),
        ("t.parquet", b"PAR1 not really", "it is not a readable Parquet file"),
    ],
)
def test_what_is_not_a_table_says_why_without_its_content(path, data, reason) -> None:
    with pytest.raises(NotATable) as info:
        read_table(path, data)
    assert info.value.reason == reason


def test_a_nested_parquet_column_is_named_by_position_only() -> None:
    data = parquet({"ok": [1], "P10001": [[1, 2]]})  # a name the job chose may be data
    with pytest.raises(NotATable) as info:
        read_table("t.parquet", data)
    assert info.value.reason == "column 2 holds nested lists or structs, not values"

"""The mock generator: the real schema, values inside the owner's ranges, deterministic."""

from __future__ import annotations

import csv
import io
import re
from datetime import date

from dshare_hub import mockdata
from dshare_hub.demo.content import PAYMENT_COLUMNS

COLUMNS = [
    {"name": "n", "type": "integer", "tags": [], "mock": {"min": -3, "max": 3}},
    {"name": "x", "type": "number", "tags": [], "mock": {"min": 0.5, "max": 0.75}},
    {"name": "kind", "type": "string", "tags": [], "mock": {"values": ["A", "B", "C"]}},
    {"name": "who", "type": "string", "tags": ["pii"], "mock": {"pattern": "C###-??"}},
    # An identifying column never draws from a list of values: the default id pattern.
    {"name": "ssn", "type": "string", "tags": ["identifier"], "mock": {"values": ["real-1"]}},
    {"name": "ok", "type": "boolean", "tags": []},
    {"name": "d", "type": "date", "tags": [], "mock": {"min": "2024-02-01", "max": "2024-02-03"}},
    {
        "name": "t",
        "type": "datetime",
        "tags": [],
        "mock": {"min": "2024-01-01T00:00:00Z", "max": "2024-01-01T01:00:00Z"},
    },
    {"name": "maybe", "type": "integer", "tags": [], "mock": {"null_fraction": 1}},
    {"name": "free", "type": "text", "tags": []},
]


def test_values_stay_inside_the_owners_ranges():
    table = mockdata.mock_table("ds-1", COLUMNS, 300)
    assert table.names == [c["name"] for c in COLUMNS]
    for row in table.rows:
        n, x, kind, who, ssn, ok, d, t, maybe, free = row
        assert isinstance(n, int) and -3 <= n <= 3
        assert 0.5 <= x <= 0.75
        assert kind in ("A", "B", "C")
        assert re.fullmatch(r"C\d{3}-[A-Z]{2}", who)
        assert re.fullmatch(r"ID-\d{8}", ssn)
        assert isinstance(ok, bool)
        assert date(2024, 2, 1) <= date.fromisoformat(d) <= date(2024, 2, 3)
        assert re.fullmatch(r"2024-01-01T0[01]:\d\d:\d\dZ", t)
        assert t <= "2024-01-01T01:00:00Z"
        assert maybe is None
        assert re.fullmatch(r"free-\d{1,3}", free)
    # Not a constant: the ranges are used, both ends reachable.
    assert {r[0] for r in table.rows} == set(range(-3, 4))
    assert {r[2] for r in table.rows} == {"A", "B", "C"}


def test_a_mock_is_the_same_everywhere_and_changes_with_the_schema():
    one = mockdata.mock_table("ds-1", COLUMNS, 20)
    assert one == mockdata.mock_table("ds-1", COLUMNS, 20)
    # The first rows of a longer mock are the shorter one: a preview is a run's first rows.
    assert mockdata.mock_table("ds-1", COLUMNS, 50).rows[:20] == one.rows
    assert mockdata.mock_table("ds-2", COLUMNS, 20).rows != one.rows
    changed = [*COLUMNS[:-1], {"name": "free", "type": "text", "tags": ["x"]}]
    assert mockdata.mock_table("ds-1", changed, 20).seed != one.seed


def test_csv_has_the_schemas_header_and_empty_cells_for_nulls():
    text = mockdata.mock_table("ds-1", COLUMNS, 5).as_csv()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [c["name"] for c in COLUMNS]
    assert len(rows) == 6
    assert all(r[8] == "" for r in rows[1:])
    assert {r[5] for r in rows[1:]} <= {"true", "false"}


def test_mock_files_follow_the_skeleton():
    asset = {
        "id": "uis-payments",
        "columns": PAYMENT_COLUMNS,
        "skeleton": [{"path": "transactions.csv", "size": 9}, {"path": "README", "size": 3}],
    }
    files = mockdata.mock_files(asset, 40)
    assert set(files) == {"transactions.csv", "README"}
    assert files["README"] == b""
    rows = list(csv.DictReader(io.StringIO(files["transactions.csv"].decode())))
    assert len(rows) == 40
    assert {r["type"] for r in rows} <= {"PAYMENT", "TRANSFER", "CASH_OUT", "DEBIT"}
    assert all(re.fullmatch(r"C\d{9}", r["nameOrig"]) for r in rows)
    assert all(5 <= float(r["amount"]) <= 20000 for r in rows)
    # The preview shows the first table's first rows.
    assert mockdata.preview_part(asset) == "transactions.csv"
    preview = mockdata.mock_table("uis-payments", PAYMENT_COLUMNS, 3, part="transactions.csv")
    assert preview.as_csv().splitlines() == files["transactions.csv"].decode().splitlines()[:4]


def test_a_table_without_a_csv_in_its_skeleton_gets_its_own_and_text_gets_none():
    tabular = {"id": "t", "columns": COLUMNS[:1], "skeleton": [{"path": "a/b.txt", "size": 1}]}
    assert set(mockdata.mock_files(tabular, 2)) == {"a/b.txt", "mock.csv"}
    text = {"id": "c", "columns": [], "skeleton": [{"path": "a.csv", "size": 1}]}
    assert mockdata.mock_files(text, 2) == {"a.csv": b""}
    # Folders of the skeleton (a trailing '/') are not files.
    nested = {"id": "n", "columns": COLUMNS[:1], "skeleton": [{"path": "data/", "size": 0}]}
    assert set(mockdata.mock_files(nested, 2)) == {"mock.csv"}

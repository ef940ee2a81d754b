"""Reading a run's tables (CSV, TSV, JSON, Parquet) the way the disclosure checks do."""

from __future__ import annotations

import io
import json
import subprocess
import sys

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


def _dictionary_bomb() -> bytes:
    # One 1 MiB string in the dictionary page, repeated by 4000 indices: 4 GiB decoded, in
    # a file whose footer says 1 MiB.
    v = pa.DictionaryArray.from_arrays(pa.array([0] * 4000, pa.int32()), ["x" * (1 << 20)])
    out = io.BytesIO()
    pq.write_table(pa.table({"v": v}), out, compression="zstd")
    assert pq.ParquetFile(io.BytesIO(out.getvalue())).metadata.row_group(0).total_byte_size < (
        2 << 20
    )
    return out.getvalue()


def _fixed_width_bomb() -> bytes:
    # 640 values of 1 MiB of zeros: fixed width, so there is no dictionary to keep small.
    chunk = pa.table({"v": pa.array([b"\0" * (1 << 20)] * 16, pa.binary(1 << 20))})
    out = io.BytesIO()
    with pq.ParquetWriter(out, chunk.schema, compression="zstd") as writer:
        for _ in range(40):
            writer.write_table(chunk)
    return out.getvalue()


@pytest.mark.parametrize(
    ("make", "bound_mib"),
    # The fixed-width one holds up to MAX_DECODED (256 MiB) of values before it is refused.
    [(_dictionary_bomb, 400), (_fixed_width_bomb, 512)],
)
def test_a_parquet_bomb_is_refused_without_decoding_it(make, bound_mib) -> None:
    data = make()
    assert len(data) < 64 * 1024
    # Read in a child, so its peak memory is the gate's reading alone (pyarrow's own is
    # about 100 MiB; the old reader's, decoding it, was 4 GiB).
    code = (
        "import sys\n"
        "from dshare_hub.executor.tables import NotATable, read_table\n"
        "try:\n"
        "    read_table('b.parquet', sys.stdin.buffer.read())\n"
        "except NotATable as error:\n"
        "    print(error.reason)\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent (pytest).
        "peak = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
        "print(int(peak.split()[1]) // 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=data, capture_output=True, timeout=120, check=True
    )
    reason, peak_mib = done.stdout.decode().splitlines()
    assert reason == "it decodes to more than 268435456 bytes, more than the gate reads"
    assert int(peak_mib) < bound_mib, f"reading the bomb took {peak_mib} MiB"

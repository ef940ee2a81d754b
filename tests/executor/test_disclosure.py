"""The gate's disclosure checks on tables a hostile job writes, recomputed from the input.

The input is a small people table with a pii-tagged id: regions of 30, 12, 10 and 4
people, one very rich person in the south, an east where everyone is M. Each check gets
the tables a job might write, honest ones and ones built to slip past, and the exact
message the scientist reads, which names positions and thresholds, never a value.
"""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from dshare_chaincode import validate
from dshare_chaincode.disclosure import DEFAULT_DISCLOSURE
from dshare_hub.executor.gate import Output, judge, parse_policy, saved_policy
from dshare_hub.executor.outputs import wants_corpus
from dshare_hub.executor.winnow import Corpus
from dshare_hub.webapi import ApiError

TABLE_CHECKS = ["dominance", "max_rows_ratio", "min_cell_count", "min_rows", "no_identifiers"]
SCHEMA = [
    {"name": "pid", "type": "string", "tags": ["pii"]},
    {"name": "region", "type": "string", "tags": []},
    {"name": "sex", "type": "string", "tags": []},
    {"name": "income", "type": "number", "tags": ["sensitive"]},
    {"name": "balance", "type": "number", "tags": []},
]


# What each check tells the scientist to do, at the default thresholds.
CELL_FIX = "Suppress cells below 10, round them, or aggregate over more records (coarser groups)."
ROWS_FIX = (
    "(the rows' groups, by their key columns). Suppress them, or aggregate over more "
    "records (coarser groups)."
)
ID_FIX = "Release counts or aggregates over groups, not identifiers."


def people() -> list[list]:
    rows, i = [], 0
    for region, n in (("north", 30), ("south", 12), ("east", 10), ("west", 4)):
        for k in range(n):
            income = 1_000_000 if (region, k) == ("south", 0) else 2000 + (i * 37) % 900
            sex = "M" if region == "east" or k % 2 == 0 else "F"
            rows.append([f"P{10000 + i}", region, sex, income, income - 2400])
            i += 1
    return rows


ROWS = people()  # 56 rows: at most 5 output rows under max_rows_ratio 0.1
INPUT = (
    "pid,region,sex,income,balance\n" + "".join(",".join(map(str, r)) + "\n" for r in ROWS)
).encode()


def corpus(data: bytes = INPUT, name: str = "people/people.csv") -> Corpus:
    c = Corpus(cap=10**9)
    c.add(name, data)
    return c


def policy(checks=TABLE_CHECKS, unknown: str = "hold", **params) -> dict:
    release = {"checks": list(checks), "unknown": unknown}
    if params:
        release["disclosure"] = params
    return {"owner_org": "UiS", "dataset_name": "people", "columns": SCHEMA, "release": release}


def gate(path: str, data: bytes | str, pol: dict | None = None, c: Corpus | None = None):
    raw = data.encode() if isinstance(data, str) else data
    parsed = {"L1": parse_policy("L1", pol or policy())}
    return judge(Output(path, raw), parsed, {"L1": c if c is not None else corpus()})


def failed(verdict) -> dict[str, str]:
    return {c.name: c.message for c in verdict.checks if not c.passed}


def csv(header: str, *lines: str) -> str:
    return "\n".join([header, *lines]) + "\n"


# -- defaults ----------------------------------------------------------------------------


def test_the_defaults_are_acros_own() -> None:
    import acro

    config = yaml.safe_load((Path(acro.__file__).parent / "default.yaml").read_text())
    assert DEFAULT_DISCLOSURE["min_cell_count"] == config["safe_threshold"]
    assert DEFAULT_DISCLOSURE["min_rows"] == config["safe_threshold"]
    assert DEFAULT_DISCLOSURE["dominance_n"] == config["safe_nk_n"]
    assert DEFAULT_DISCLOSURE["dominance_k"] == config["safe_nk_k"]
    assert DEFAULT_DISCLOSURE["p_ratio"] == config["safe_pratio_p"]
    assert DEFAULT_DISCLOSURE["zeros_disclosive"] == config["zeros_are_disclosive"]


# -- minimum cell count ------------------------------------------------------------------


def test_a_frequency_table_with_a_small_cell_is_held_and_one_without_released() -> None:
    held = gate("counts.csv", csv("region,count", "north,30", "south,12", "west,4"))
    assert held.decision == "held"
    assert failed(held)["min_cell_count"] == (
        "counts.csv: 1 frequency cell(s) count fewer than 10 records (zeros included): "
        f"column 2 ('count'): data rows 3. {CELL_FIX}"
    )
    ok = gate("counts.csv", csv("region,n", "north,30", "south,12", "east,10"))
    assert ok.decision == "released", failed(ok)


def test_a_job_that_writes_false_counts_is_judged_on_the_real_ones() -> None:
    lying = gate("counts.csv", csv("region,count", "north,30", "west,40"))
    assert "data rows 2" in failed(lying)["min_cell_count"]


def test_counts_disguised_in_a_column_named_x_are_still_counts() -> None:
    v = gate("x.csv", csv("region,x", "north,30", "west,4"))
    assert failed(v)["min_cell_count"] == (
        "x.csv: 1 frequency cell(s) count fewer than 10 records (zeros included): column 2: "
        f"data rows 2. {CELL_FIX}"
    )


def test_a_crosstab_is_checked_cell_by_cell_naming_no_category() -> None:
    # region x sex: south has 6 F and 6 M; the columns are named by values ("F", "M").
    v = gate("cross.csv", csv("region,F,M", "north,15,15", "south,6,6"))
    assert failed(v) == {
        "min_cell_count": "cross.csv: 2 frequency cell(s) count fewer than 10 records "
        f"(zeros included): column 2: data rows 2; column 3: data rows 2. {CELL_FIX}"
    }


def test_zeros_are_disclosive_unless_the_owner_says_otherwise() -> None:
    table = csv("region,F,M", "north,15,15", "east,0,10")
    assert "column 2: data rows 2" in failed(gate("z.csv", table))["min_cell_count"]
    allowed = gate("z.csv", table, policy(zeros_disclosive=False))
    assert allowed.decision == "released", failed(allowed)


# -- minimum rows behind an aggregate -----------------------------------------------------


def test_a_mean_over_too_few_records_is_held_naming_the_row() -> None:
    v = gate("means.csv", csv("region,mean(income)", "north,2386.5", "west,2179.5"))
    assert failed(v) == {
        "min_rows": "means.csv: 1 aggregate(s) summarise fewer than 10 records of the input: "
        f"column 1 ('region'): data rows 2 {ROWS_FIX}"
    }
    ok = gate("means.csv", csv("region,mean(income)", "north,2386.5", "east,2550.5"))
    assert ok.decision == "released", failed(ok)


def test_a_margin_row_counts_every_record_and_groups_can_be_several_keys() -> None:
    ok = gate("m.csv", csv("region,count", "north,30", "east,10", "All,56"))
    assert ok.decision == "released", failed(ok)
    # north x F is 15 people, west x F is 2: two keys make the group.
    v = gate("two.csv", csv("region,sex,avg_income", "north,F,2400", "west,F,2300"))
    assert "column 1 ('region'): data rows 2 " in failed(v)["min_rows"]


def test_records_dumped_under_made_up_column_names_are_still_records() -> None:
    # No name says what these are; their values say: region and income, one person a row.
    dump = csv("a,b", *(f"{r[1]},{r[3]}" for r in ROWS[1:4]))
    assert failed(gate("dump.csv", dump)) == {
        "min_rows": "dump.csv: 3 aggregate(s) summarise fewer than 10 records of the input: "
        f"column 1: data rows 1, 2, 3 {ROWS_FIX}"
    }
    # A column of short numbers (a share, a count) is no copy of an input column: no row of
    # it is taken for one person's; but a share cannot be verified, so it waits for review.
    shares = gate("share.csv", csv("region,share", "north,54", "east,18"))
    assert set(failed(shares)) == {"table"}, failed(shares)


# -- dominance ---------------------------------------------------------------------------


def test_a_total_one_person_dominates_is_held_and_an_even_one_released() -> None:
    v = gate("sums.csv", csv("region,income_sum", "north,71595", "south,1026752"))
    assert failed(v) == {
        "dominance": "sums.csv: 1 cell(s) are dominated by a few records (the largest 2 make "
        "up 90% or more of the total, or all but the largest 2 make up less than 10% of the "
        "largest): column 2 ('income_sum'): data rows 2. Suppress those cells, or aggregate "
        "over more records so that no few records dominate."
    }
    # The contributions are the input's (and the sums must be theirs: test_redteam_governance).
    ok = gate("sums.csv", csv("region,sum_income", "north,71595", "east,25505"))
    assert ok.decision == "released", failed(ok)


def test_dominance_is_not_judged_over_negative_values() -> None:
    v = gate("bal.csv", csv("region,balance", "north,-100", "east,-5000"))
    assert failed(v)["dominance"] == (
        "bal.csv: dominance is not defined where negative values are aggregated: column 2 "
        "('balance'): data rows 1, 2. Aggregate positive and negative values separately."
    )


def test_the_owners_dominance_parameters_apply() -> None:
    # The largest 2 of north's 30 even incomes are about 8% of its total.
    table = csv("region,total_income", "north,71595")
    assert gate("d.csv", table).decision == "released"
    strict = gate("d.csv", table, policy(dominance_k=0.05))
    assert "the largest 2 make up 5% or more" in failed(strict)["dominance"]


# -- identifiers -------------------------------------------------------------------------


def test_a_per_person_table_is_held_by_every_check_that_sees_it() -> None:
    table = csv("pid,income", *(f"{r[0]},{r[3]}" for r in ROWS[:6]))
    v = gate("people.csv", table)
    assert v.decision == "held"
    assert failed(v)["no_identifiers"] == (
        "people.csv: column 1 ('pid') is tagged pii in the dataset's schema. Remove "
        f"identifier columns. {ID_FIX}"
    )
    assert failed(v)["min_rows"].startswith(
        "people.csv: 6 aggregate(s) summarise fewer than 10 records of the input: column 1 "
        "('pid'): data rows 1, 2, 3, 4, 5, 6 "
    )
    assert failed(v)["max_rows_ratio"] == (
        "people.csv: the table has 6 rows, more than 0.1 times the rows of the input. "
        "Aggregate into fewer rows (counts or statistics over groups)."
    )


def test_a_renamed_identifier_column_is_found_by_its_values() -> None:
    v = gate("r.csv", csv("who,n", "P10001,1", "p10002,1", "P10003,1"))
    assert failed(v)["no_identifiers"] == (
        "r.csv: 2 cell(s) hold values of the identifier column(s) pid: column 1: data rows "
        f"1, 3. {ID_FIX}"
    )  # "p10002" is not an id: ids are compared exactly


def test_identifiers_smuggled_into_text_cells_or_headers_are_found() -> None:
    v = gate("s.csv", csv("region,note", "north,see P10003;P10004", "east,none"))
    assert (
        "1 cell(s) hold values of the identifier column(s) pid: column 2: data rows 1"
        in (failed(v)["no_identifiers"])
    )
    h = gate("h.csv", csv("region,P10005", "north,30"))
    assert failed(h)["no_identifiers"] == (
        "h.csv: the names of column 2 are values of the identifier column(s) pid. Release "
        "counts or aggregates over groups, not identifiers."
    )
    assert failed(gate("c.csv", csv("PID,n", "x,1")))["no_identifiers"].startswith(
        "c.csv: column 1 ('PID') is tagged pii"
    )


def test_a_message_lists_a_few_columns_and_stays_within_what_the_ledger_records() -> None:
    wide = csv(",".join(f"c{j}" for j in range(10)), ",".join(r[0] for r in ROWS[:10]))
    path = "d/" * 490 + "wide.csv"  # near the 1024 characters the ledger keeps of a path
    message = failed(gate(path, wide, policy(["no_identifiers"])))["no_identifiers"]
    assert message == (
        f"{path}: 10 cell(s) hold values of the identifier column(s) pid: column 1: data "
        "rows 1; column 2: data rows 1; column 3: data rows 1; column 4: data rows 1; and 6 "
        f"more column(s). {ID_FIX}"
    )
    assert len(message) <= 2000


def test_the_owner_chooses_which_tags_make_an_identifier() -> None:
    table = csv("region,income", "north,2000")  # income is tagged "sensitive"
    held = gate("t.csv", table, policy(["no_identifiers"], identifier_tags=["sensitive"]))
    assert failed(held)["no_identifiers"].startswith("t.csv: column 2 ('income') is tagged")
    assert gate("t.csv", table, policy(["no_identifiers"])).decision == "released"


# -- a cap on rows -----------------------------------------------------------------------


def test_more_rows_than_the_ratio_allows_are_held() -> None:
    six = csv("k", "1", "2", "3", "4", "5", "6")
    v = gate("k.csv", six, policy(["max_rows_ratio"]))
    assert failed(v) == {
        "max_rows_ratio": "k.csv: the table has 6 rows, more than 0.1 times the rows of the "
        "input. Aggregate into fewer rows (counts or statistics over groups)."
    }
    assert gate("k.csv", six, policy(["max_rows_ratio"], max_rows_ratio=0.2)).decision == (
        "released"
    )


# -- formats and what the checks cannot read ----------------------------------------------


def test_json_and_parquet_tables_are_judged_like_csv() -> None:
    records = [{"pid": r[0], "income": r[3]} for r in ROWS[:3]]
    split = {"columns": ["who", "n"], "data": [[ROWS[4][0], 1]]}
    out = io.BytesIO()
    pq.write_table(pa.table({"region": ["north", "east"], "count": [30, 10]}), out)
    assert "no_identifiers" in failed(gate("a.json", json.dumps(records)))
    assert "no_identifiers" in failed(gate("b.json", json.dumps(split)))
    assert gate("c.parquet", out.getvalue()).decision == "released"
    out = io.BytesIO()
    pq.write_table(pa.table({"who": [r[0] for r in ROWS[:2]]}), out)
    assert "no_identifiers" in failed(gate("d.parquet", out.getvalue()))


def test_a_file_the_checks_cannot_read_follows_the_owners_policy_for_unknown_files() -> None:
    v = gate("fake.csv", b"pid,income\n\x89PNG\r\n\x1a\n\x00\x00")
    assert failed(v) == {
        "table": "the disclosure checks cannot read fake.csv as a table: it is not UTF-8 text "
        "(byte 11); dataset people holds such files for its owner's review. Write results "
        "as tables: CSV, TSV, Parquet, or JSON records."
    }
    text = gate("notes.txt", "P10001 earns a lot\n")
    assert failed(text) == {
        "table": "the disclosure checks cannot read notes.txt as a table: its name does not "
        "end in .csv, .tsv, .parquet or .json; dataset people holds such files for its "
        "owner's review. Write results as tables: CSV, TSV, Parquet, or JSON records."
    }
    released = gate("notes.txt", "42\n", policy(unknown="release"))
    assert released.decision == "released"
    assert [c.name for c in released.checks] == ["table"]  # one result, not one per check


def test_a_table_over_input_the_gate_cannot_judge_is_held() -> None:
    table = csv("region,n", "north,30")
    big = corpus()
    big.truncated = True
    assert failed(gate("t.csv", table, c=big))["table"] == (
        "the input of lease L1 is larger than the 1000000000 bytes the gate reads, so the "
        "disclosure checks cannot judge t.csv; it is held for the owner's review"
    )
    text_only = corpus(b"just words\n", "notes.txt")
    assert failed(gate("t.csv", table, c=text_only))["table"] == (
        "lease L1's input has no table the disclosure checks can read; dataset people holds "
        "such files for its owner's review. The owner decides on files over such data."
    )
    parsed = {"L1": parse_policy("L1", policy())}
    gone = judge(Output("t.csv", table.encode()), parsed, {"L1": None})
    assert failed(gone) == {
        "table": "the input of lease L1 could not be read, so the disclosure checks cannot "
        "judge t.csv; it is held for the owner's review"
    }


def test_no_message_quotes_a_value_of_the_input_or_the_output() -> None:
    tables = {
        "a.csv": csv("pid,income", *(f"{r[0]},{r[3]}" for r in ROWS[:8])),
        "b.csv": csv("who,x", *(f"{r[0]},{r[1]}" for r in ROWS[:8])),
        "c.csv": csv("region,income_sum", "south,1025000", "west,9000"),
        "d.csv": csv("region,F,M", "south,6,6", "west,2,2"),
        "e.csv": csv(f"region,{ROWS[3][0]}", "north,1"),
    }
    values = {str(v) for r in ROWS for v in r if len(str(v)) >= 4} | {"south", "west"}
    values |= {"1025000", "9000"}
    for path, table in tables.items():
        v = gate(path, table)
        assert v.decision == "held", path
        for message in failed(v).values():
            assert not [x for x in values if x in message], (path, message)


# -- the policy, as the owner's record and the run's record carry it ---------------------


def test_the_checks_read_the_input_and_the_policy_survives_the_run_record() -> None:
    parsed = parse_policy("L1", policy(min_cell_count=5))
    assert wants_corpus(parse_policy("L1", policy(["min_rows"])))
    assert parsed.disclosure.min_cell_count == 5 and parsed.disclosure.min_rows == 10
    assert [c.name for c in parsed.columns if "pii" in c.tags] == ["pid"]
    saved = json.loads(json.dumps(dataclasses.asdict(parsed)))
    assert saved_policy("L1", saved) == parsed
    # A run recorded before the disclosure checks existed reads back with the defaults.
    old = {k: v for k, v in saved.items() if k not in ("disclosure", "columns")}
    assert saved_policy("L1", old).disclosure == parse_policy("L1", policy()).disclosure
    # Every policy the ledger accepts, the executor takes.
    release = validate.release_policy({"checks": TABLE_CHECKS}, "policy.release")
    assert parse_policy("L1", {"owner_org": "UiS", "release": release}).disclosure == (
        parsed.disclosure.__class__()
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            policy(p_ratio=2),
            "policy.release.disclosure.p_ratio: must be a number from 0 to 1 (a fraction), got 2",
        ),
        (
            {**policy(), "columns": [{"name": 3}]},
            "policy.columns[0]: must be the dataset's columns, a list of {name, tags}",
        ),
        (
            {**policy(), "columns": [{"name": "a", "tags": [1]}]},
            "policy.columns[0].tags: must be a list of tags",
        ),
    ],
)
def test_an_unusable_policy_in_the_owners_record_is_refused(raw, message) -> None:
    with pytest.raises(ApiError) as info:
        parse_policy("L1", raw)
    assert (info.value.code, info.value.message) == ("INVALID_ARGUMENT", message)


def test_importing_acro_leaves_the_gates_logging_and_warnings_as_they_were() -> None:
    # acro calls logging.basicConfig and ignores every FutureWarning when imported.
    code = (
        "import logging, warnings\n"
        "root = logging.getLogger()\n"
        "before = (list(root.handlers), root.level)\n"
        "from dshare_hub.executor import acro_rules\n"
        "assert acro_rules.small_cells([[3.0]], acro_rules.appetite()) == [(0, 0)]\n"
        "assert (list(root.handlers), root.level) == before, (root.handlers, root.level)\n"
        "assert not [f for f in warnings.filters if f[2] is FutureWarning], warnings.filters\n"
        "assert logging.getLogger('acro').level == logging.WARNING\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr


# -- a wide table costs the gate time in proportion to its cells ---------------------------

WIDE = 4000  # value-named or repeated columns of one output table
CODES = [f"K{i:05d}" for i in range(WIDE)]
# Each (region, code) pair once (3 and 4000 are coprime), every region 4000 incomes.
WIDE_INPUT = "region,code,income\n" + "".join(
    f"r{i % 3},{CODES[i % WIDE]},{1000 + i % 7}\n" for i in range(3 * WIDE)
)


def _judged_in(path: str, table: str, checks: list[str]) -> tuple[float, dict[str, str]]:
    from dshare_hub.executor import acro_rules

    acro_rules.appetite()
    acro_rules._sdcchecks()  # imported once per gate process: not this table's cost
    started = time.process_time()  # this process's CPU: other processes' load aside
    v = gate(path, table, policy(checks), corpus(WIDE_INPUT.encode(), "w/people.csv"))
    return time.process_time() - started, failed(v)


def test_a_crosstab_thousands_of_value_named_columns_wide_is_judged_in_seconds() -> None:
    rows = [f"r{r % 3}," + ",".join("1" for _ in CODES) for r in range(45)]
    took, why = _judged_in("cross.csv", csv("region," + ",".join(CODES), *rows), ["min_cell_count"])
    assert why == {
        "min_cell_count": f"cross.csv: {45 * WIDE} frequency cell(s) count fewer than 10 "
        "records (zeros included): column 2: data rows 1, 2, 3, 4, 5, 6, 7, 8 and 37 more; "
        "column 3: data rows 1, 2, 3, 4, 5, 6, 7, 8 and 37 more; column 4: data rows 1, 2, 3, "
        "4, 5, 6, 7, 8 and 37 more; column 5: data rows 1, 2, 3, 4, 5, 6, 7, 8 and 37 more; "
        f"and {WIDE - 4} more column(s). {CELL_FIX}"
    }
    assert took < 5, f"{45 * WIDE} crosstab cells took {took:.1f} s of CPU"


def test_thousands_of_columns_repeating_one_aggregate_are_judged_in_seconds() -> None:
    groups: dict[str, list[int]] = {}
    for line in WIDE_INPUT.splitlines()[1:]:
        region, _code, income = line.split(",")
        groups.setdefault(region, []).append(int(income))
    means = {k: f"{sum(v) / len(v):.2f}" for k, v in groups.items()}
    rows = [f"r{r % 3}," + ",".join(means[f"r{r % 3}"] for _ in CODES) for r in range(30)]
    table = csv("region," + ",".join("mean_income" for _ in CODES), *rows)
    took, why = _judged_in("means.csv", table, ["dominance", "min_rows"])
    assert why == {}  # honest means over 4000 people each
    assert took < 5, f"{30 * WIDE} aggregate cells took {took:.1f} s of CPU"

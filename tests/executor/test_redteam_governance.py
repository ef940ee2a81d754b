"""Red team: a hostile job with every disclosure check on (the demo's PAYMENTS_RELEASE)
writes per-person values or ids into cells the checks do not recompute. Each must be held.
"""

from __future__ import annotations

from .test_disclosure import ROWS, csv, failed, gate

FIX = (
    ": a group key is a value of an input column, a count a whole number no larger than its "
    "group's records, an aggregate the sum, mean, median, min, max, std or var of a numeric "
    "input column over its group; dataset people holds such files for its owner's review. "
    "Write only group keys, counts and aggregates of input columns, under names that say "
    "what they are (count, mean_income)."
)


def test_incomes_shifted_by_a_half_under_a_made_up_name_are_held() -> None:
    v = gate("a.csv", csv("q", *(str(r[3] + 0.5) for r in ROWS[:5])))
    assert v.decision == "held"
    assert failed(v) == {
        "table": "the disclosure checks cannot verify a.csv: 5 cell(s) are not what their "
        "column is taken for (column 1: data rows 1, 2, 3, 4, 5)" + FIX
    }


def test_id_digits_in_a_count_column_are_held() -> None:
    # "count" without keys: the job's own number was taken as the count.
    v = gate("b.csv", csv("count", *(r[0][1:] for r in ROWS[:5])))
    assert failed(v) == {
        "table": "the disclosure checks cannot verify b.csv: 5 cell(s) are not what their "
        "column is taken for (column 1 ('count'): data rows 1, 2, 3, 4, 5)" + FIX
    }


def test_any_number_under_an_aggregate_name_is_held() -> None:
    # A "mean" the job made up: one person's income per group row.
    v = gate("m.csv", csv("region,mean_income", f"north,{ROWS[0][3]}", f"east,{ROWS[42][3]}"))
    assert set(failed(v)) == {"table"}
    ok = gate("m.csv", csv("region,mean_income", "north,2386.5", "east,2550.50"))
    assert ok.decision == "released", failed(ok)
    rounded = gate("m.csv", csv("region,mean_income", "north,2387", "east,2550"))
    assert rounded.decision == "released", failed(rounded)


def test_prefix_swapped_ids_and_margin_only_keys_are_held() -> None:
    ids = gate("c.csv", csv("q", *("X" + r[0][1:] for r in ROWS[:5])))
    assert set(failed(ids)) == {"table"}
    margins = gate("d.csv", csv("region,q", *(f"Total,{r[3] + 1}" for r in ROWS[:5])))
    assert set(failed(margins)) == {"table"}

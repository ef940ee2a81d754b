"""The owner's opt-in synthesizer: marginals of the real rows as mock ranges, saying
little about any one row, and never anything of an identifying column."""

from __future__ import annotations

from dshare_chaincode import validate
from dshare_hub import mockdata
from dshare_hub.broker.synthesize import derive_ranges, hidden_columns

COLUMNS = [
    {"name": "amount", "type": "number", "tags": []},
    {"name": "step", "type": "integer", "tags": [], "mock": {"min": 0, "max": 9}},
    {"name": "kind", "type": "string", "tags": []},
    {"name": "who", "type": "string", "tags": ["pii"], "mock": {"pattern": "C####"}},
    {"name": "ssn", "type": "string", "tags": ["identifier"]},
    {"name": "day", "type": "date", "tags": []},
]


def rows() -> list[dict[str, str]]:
    out = []
    for i in range(100):
        out.append(
            {
                "amount": str(1000 + i),
                "step": str(i),
                # 60 A, 30 B, 9 C (rare), 1 RARE-SECRET
                "kind": "A" if i < 60 else "B" if i < 90 else "C" if i < 99 else "RARE-SECRET",
                "who": f"C{i:04d}",
                "ssn": "123-45-6789",  # the same value 100 times: still never published
                "day": f"2024-03-{1 + i % 28:02d}",
            }
        )
    out[0]["amount"] = "999999"  # an extreme: never published
    out[1]["amount"] = ""
    return out


def test_marginals_leave_out_extremes_rare_values_and_identifiers():
    derived = {c["name"]: c for c in derive_ranges(COLUMNS, rows())}
    amount = derived["amount"]["mock"]
    # 99 values (one empty): 1002..1099 and the extreme; the 5th and 95th percentiles.
    assert amount == {"null_fraction": 0.01, "min": 1006.0, "max": 1096.0}
    assert derived["step"]["mock"] == {"min": 5, "max": 95, "null_fraction": 0.0}
    assert derived["kind"]["mock"] == {"null_fraction": 0.0, "values": ["A", "B"]}
    assert derived["who"]["mock"] == {"pattern": "C####", "null_fraction": 0.0}
    assert derived["ssn"]["mock"] == {"null_fraction": 0.0, "pattern": "ID-########"}
    assert derived["day"]["mock"]["min"] == "2024-03-02"
    assert derived["day"]["mock"]["max"] == "2024-03-27"
    # What is derived is what the contract accepts, and a mock drawn from it shows none
    # of the row-level values held back.
    validated = validate.columns(list(derived.values()), "columns")
    table = mockdata.mock_table("ds", validated, 200)
    text = table.as_csv()
    assert "999999" not in text and "RARE-SECRET" not in text and "123-45-6789" not in text


def test_a_column_with_text_in_a_number_keeps_the_owners_ranges():
    cols = [{"name": "step", "type": "integer", "tags": [], "mock": {"min": 0, "max": 9}}]
    derived = derive_ranges(cols, [{"step": "1"}, {"step": "n/a"}])
    assert derived[0]["mock"] == {"min": 0, "max": 9, "null_fraction": 0.0}


def test_a_small_table_publishes_no_extreme_and_too_few_values_no_range():
    """The largest payment of a ten-row table, or the one row of a one-row table, is never
    a mock's bound: a percentile of few values is an extreme, so the synthesizer takes the
    one next to it, and from fewer than min_count values it derives no range at all."""
    cols = [{"name": "amount", "type": "number", "tags": [], "mock": {"min": 1, "max": 2}}]
    amounts = [10, 11, 12, 13, 14, 15, 16, 17, 18, 987654]  # 987654: the one big payment
    derived = derive_ranges(cols, [{"amount": str(v)} for v in amounts], min_count=5)
    assert derived[0]["mock"] == {"min": 11.0, "max": 18.0, "null_fraction": 0.0}
    for few in (["987654"], ["5", "987654"], ["1", "2", "3", "987654"]):
        derived = derive_ranges(cols, [{"amount": v} for v in few], min_count=5)
        assert derived[0]["mock"] == {"min": 1, "max": 2, "null_fraction": 0.0}, few


def test_identifying_columns_of_other_types_keep_the_owners_ranges_and_pass_the_contract():
    """An integer or date tagged pii gets nothing of the data and no pattern (the contract
    takes patterns on strings only): before, the whole request failed on a pattern the
    owner never wrote."""
    cols = [
        {"name": "age", "type": "integer", "tags": ["pii"], "mock": {"min": 18, "max": 90}},
        {"name": "born", "type": "date", "tags": ["identifier"]},
    ]
    data = [{"age": str(20 + i % 50), "born": f"1990-01-{1 + i % 28:02d}"} for i in range(100)]
    derived = derive_ranges(cols, data)
    assert [c["mock"] for c in derived] == [
        {"min": 18, "max": 90, "null_fraction": 0.0},
        {"null_fraction": 0.0},
    ]
    assert validate.columns(derived, "columns") == derived


HIDE_KIND = """package dshare.redaction
action := "hash" if { input.lessee_org != input.owner_org; input.column.name == "kind" }
action := "remove" if { input.lessee_org == "UiB"; input.column.name == "day" }
"""


def test_columns_the_redaction_policy_hides_get_nothing_of_the_data():
    """The owner hashes `kind` for every other org and removes `day` for UiB: the mock,
    public to both, must not show their frequent categories or percentiles."""
    asset = {"owner_org": "UiS", "columns": COLUMNS, "redaction": HIDE_KIND, "policy": {}}
    assert hidden_columns(asset) == {"kind"}
    named = {**asset, "policy": {"allowed_orgs": ["UiB"]}}
    assert hidden_columns(named) == {"kind", "day"}
    derived = {
        c["name"]: c["mock"]
        for c in derive_ranges(COLUMNS, rows(), hidden=frozenset({"kind", "day"}))
    }
    assert derived["kind"] == {"null_fraction": 0.0, "pattern": "ID-########"}
    assert derived["day"] == {"null_fraction": 0.0}
    assert derived["amount"] == {"null_fraction": 0.01, "min": 1006.0, "max": 1096.0}
    assert hidden_columns({**asset, "redaction": ""}) == frozenset()
    assert hidden_columns({**asset, "redaction": "package dshare.redaction\naction := 7\n"}) == {
        c["name"] for c in COLUMNS
    }

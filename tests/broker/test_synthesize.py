"""The owner's opt-in synthesizer: marginals of the real rows as mock ranges, saying
little about any one row, and never anything of an identifying column."""

from __future__ import annotations

from dshare_chaincode import validate
from dshare_hub import mockdata
from dshare_hub.broker.synthesize import derive_ranges

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

"""The owner-set mock ranges of columns (`columns[i].mock`), as the contract validates
them: exact messages naming the field, and columns stored before mocks stay as they were."""

from __future__ import annotations

import json

import pytest
from ledger_helpers import asset_json, refused

from dshare_chaincode import validate
from dshare_chaincode.errors import ContractError


def col(ctype: str, mock: object, name: str = "c") -> list[dict[str, object]]:
    return [{"name": name, "type": ctype, "tags": [], "mock": mock}]


BAD = [
    (col("integer", [1, 2]), "columns[0].mock: must be a JSON object, got list"),
    (
        col("integer", {"low": 1}),
        "columns[0].mock: unknown field(s) low; allowed: max, min, null_fraction, pattern, values",
    ),
    (
        col("integer", {"min": 1.5}),
        "columns[0].mock.min: must be a whole number for an integer column, got 1.5",
    ),
    (
        col("integer", {"min": True}),
        "columns[0].mock.min: must be a whole number for an integer column, got True",
    ),
    (
        col("number", {"max": "10"}),
        "columns[0].mock.max: must be a number for a number column, got '10'",
    ),
    (
        col("number", {"min": 10**16}),
        "columns[0].mock.min: must be between -1000000000000000 and 1000000000000000, "
        "got 10000000000000000",
    ),
    (col("integer", {"min": 5, "max": 1}), "columns[0].mock.max: must not be below min (5), got 1"),
    (
        col("date", {"min": "2024-13-01"}),
        "columns[0].mock.min: must be an ISO 8601 date such as '2024-01-31', got '2024-13-01'",
    ),
    (
        col("datetime", {"min": "2024-02-01T00:00:00Z", "max": "2024-01-01T00:00:00Z"}),
        "columns[0].mock.max: must not be below min ('2024-02-01T00:00:00Z'), "
        "got '2024-01-01T00:00:00Z'",
    ),
    (
        col("string", {"min": 1}),
        "columns[0].mock.min: applies to integer, number, date and datetime columns, not "
        "'string'; give a string column values or a pattern",
    ),
    (
        col("integer", {"values": ["a"]}),
        "columns[0].mock.values: applies to string columns, not 'integer'; give an integer or "
        "number column min and max",
    ),
    (
        col("string", {"values": ["a"], "pattern": "#"}),
        "columns[0].mock: give either values or pattern, not both",
    ),
    (
        col("string", {"values": []}),
        "columns[0].mock.values: must be a non-empty list of at most 200 strings",
    ),
    (
        col("string", {"values": ["a", 3]}),
        "columns[0].mock.values[1]: must be a string of 1-200 characters",
    ),
    (
        col("string", {"values": ["a", "a"]}),
        "columns[0].mock.values[1]: duplicates the value 'a'",
    ),
    (
        col("string", {"values": [f"v{i}" for i in range(201)]}),
        "columns[0].mock.values: must hold at most 200 values, got 201",
    ),
    (
        col("string", {"pattern": ""}),
        "columns[0].mock.pattern: must be a string of 1-64 characters where '#' is a digit and "
        "'?' an upper-case letter, e.g. 'C#########'",
    ),
    (
        col("string", {"pattern": "C#\n#"}),
        "columns[0].mock.pattern: must hold printable characters only",
    ),
    (
        col("string", {"null_fraction": 1.5}),
        "columns[0].mock.null_fraction: must be a number from 0 to 1, got 1.5",
    ),
]


@pytest.mark.parametrize(("columns", "message"), BAD)
def test_bad_mock_ranges_are_refused_naming_the_field(columns, message):
    with pytest.raises(ContractError) as info:
        validate.columns(columns, "columns")
    assert info.value.code == "INVALID_ARGUMENT"
    assert info.value.message == message
    assert info.value.key == message.split(":", 1)[0]


def test_good_mock_ranges_are_kept_and_old_columns_keep_their_form():
    columns = [
        {"name": "n", "type": "integer", "tags": [], "mock": {"min": -3, "max": 3}},
        {"name": "x", "type": "number", "mock": {"min": 0, "max": 0.5, "null_fraction": 0.1}},
        {"name": "kind", "type": "string", "mock": {"values": ["A", "B"]}},
        {"name": "id", "type": "string", "tags": ["pii"], "mock": {"pattern": "C###"}},
        {"name": "d", "type": "date", "mock": {"min": "2024-01-01", "max": "2024-12-31"}},
        {"name": "old", "type": "string", "tags": []},
    ]
    out = validate.columns(columns, "columns")
    assert out[0]["mock"] == {"min": -3, "max": 3}
    assert out[1] == {
        "name": "x",
        "type": "number",
        "tags": [],
        "mock": {"min": 0, "max": 0.5, "null_fraction": 0.1},
    }
    assert out[3]["mock"] == {"pattern": "C###"}
    # A column without mock ranges is stored exactly as before mocks existed.
    assert out[5] == {"name": "old", "type": "string", "tags": []}


@pytest.mark.asyncio
async def test_the_ledger_refuses_bad_ranges_and_keeps_nothing(network, uid):
    bad = col("integer", {"min": 5, "max": 1}, name="step")
    await refused(
        network.uis.submit("RegisterAsset", asset_json(uid, columns=bad), actor="alice"),
        "INVALID_ARGUMENT",
        "columns[0].mock.max: must not be below min (5), got 1",
    )
    good = col("integer", {"min": 1, "max": 5}, name="step")
    asset = await network.uis.submit("RegisterAsset", asset_json(uid, columns=good), actor="alice")
    assert asset["columns"][0]["mock"] == {"min": 1, "max": 5}
    await refused(
        network.uis.submit("UpdateAsset", asset["id"], json.dumps({"columns": bad}), actor="alice"),
        "INVALID_ARGUMENT",
        "columns[0].mock.max: must not be below min (5), got 1",
    )
    again = await network.uis.evaluate("GetAsset", asset["id"], actor="alice")
    assert again["columns"][0]["mock"] == {"min": 1, "max": 5}

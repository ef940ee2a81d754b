"""An owner's parameters for the gate's disclosure checks, as the contract takes them."""

from __future__ import annotations

import json

import pytest
from ledger_helpers import asset_json, refused

from dshare_chaincode import validate
from dshare_chaincode.disclosure import DEFAULT_DISCLOSURE, disclosure_params
from dshare_chaincode.errors import ContractError

CHECKS = ["min_cell_count", "no_identifiers", "verbatim_input"]


def test_old_policies_keep_their_form_and_new_checks_get_the_defaults() -> None:
    old = validate.release_policy({}, "policy.release")
    assert "disclosure" not in old  # stored before the checks existed: unchanged
    on = validate.release_policy({"checks": CHECKS}, "policy.release")
    assert on["checks"] == CHECKS
    assert on["disclosure"] == {
        "dominance_k": 0.9,
        "dominance_n": 2,
        "identifier_tags": ["identifier", "pii"],
        "max_rows_ratio": 0.1,
        "min_cell_count": 10,
        "min_rows": 10,
        "p_ratio": 0.1,
        "zeros_disclosive": True,
    }
    # An update of one parameter keeps the others the owner set before.
    tuned = validate.release_policy(
        {"disclosure": {"min_cell_count": 5, "identifier_tags": ["pii", "pii", "id"]}},
        "policy.release",
        on | {"disclosure": on["disclosure"] | {"min_rows": 20}},
    )
    assert tuned["disclosure"]["min_cell_count"] == 5
    assert tuned["disclosure"]["min_rows"] == 20
    assert tuned["disclosure"]["identifier_tags"] == ["id", "pii"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            [],
            "policy.release.disclosure: must be a JSON object, got list",
        ),
        (
            {"k": 1},
            "policy.release.disclosure: unknown field(s) k; allowed: dominance_k, dominance_n, "
            "identifier_tags, max_rows_ratio, min_cell_count, min_rows, p_ratio, "
            "zeros_disclosive",
        ),
        (
            {"min_cell_count": 0},
            "policy.release.disclosure.min_cell_count: must be a whole number from 1 to "
            "1000000, got 0",
        ),
        (
            {"min_rows": 2.5},
            "policy.release.disclosure.min_rows: must be a whole number from 1 to 1000000, got 2.5",
        ),
        (
            {"dominance_n": True},
            "policy.release.disclosure.dominance_n: must be a whole number from 1 to 100, got True",
        ),
        (
            {"dominance_k": 0},
            "policy.release.disclosure.dominance_k: must be a number above 0 and at most 1 "
            "(a fraction), got 0",
        ),
        (
            {"p_ratio": 1.5},
            "policy.release.disclosure.p_ratio: must be a number from 0 to 1 (a fraction), got 1.5",
        ),
        (
            {"max_rows_ratio": float("nan")},
            "policy.release.disclosure.max_rows_ratio: must be a number above 0 and at most "
            "1 (a fraction), got nan",
        ),
        (
            {"max_rows_ratio": "x" * 100},
            "policy.release.disclosure.max_rows_ratio: must be a number above 0 and at most "
            "1 (a fraction), got 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...",
        ),
        (
            {"zeros_disclosive": "yes"},
            "policy.release.disclosure.zeros_disclosive: must be true or false",
        ),
        (
            {"identifier_tags": "pii"},
            "policy.release.disclosure.identifier_tags: must be a list of at most 32 tags",
        ),
        (
            {"identifier_tags": ["pii", "Not OK"]},
            "policy.release.disclosure.identifier_tags[1]: must be 1-48 lower-case letters, "
            "digits, '.', '_', ':' or '-'",
        ),
    ],
)
def test_each_bad_parameter_is_refused_naming_it(params, message) -> None:
    with pytest.raises(ContractError) as info:
        validate.release_policy({"disclosure": params}, "policy.release")
    assert info.value.message == message
    assert info.value.key == message.split(":")[0]


def test_the_parameters_alone_fill_in_every_default() -> None:
    assert disclosure_params({}, "d") == {
        **DEFAULT_DISCLOSURE,
        "dominance_k": 0.9,
        "max_rows_ratio": 0.1,
        "p_ratio": 0.1,
    }


@pytest.mark.asyncio
async def test_the_ledger_stores_the_parameters_and_a_refusal_changes_nothing(network, uid):
    await network.uis.submit("RegisterAsset", asset_json(uid), actor="admin")
    release = {"checks": CHECKS, "disclosure": {"min_cell_count": 3}}
    patched = await network.uis.submit(
        "UpdateAsset", uid, json.dumps({"policy": {"release": release}}), actor="a"
    )
    assert patched["policy"]["release"]["disclosure"]["min_cell_count"] == 3
    assert patched["policy"]["release"]["disclosure"]["min_rows"] == 10
    await refused(
        network.uis.submit(
            "UpdateAsset",
            uid,
            json.dumps({"policy": {"release": {"disclosure": {"min_rows": -1}}}}),
            actor="a",
        ),
        "INVALID_ARGUMENT",
        "policy.release.disclosure.min_rows: must be a whole number from 1 to 1000000, got -1",
    )
    current = await network.uis.evaluate("GetAsset", uid, actor="a")
    assert current["policy"]["release"] == patched["policy"]["release"]

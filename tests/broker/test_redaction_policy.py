"""Redaction policies in Rego, as the owner's broker checks them when saved and decides
them per lease (real regopy / rego-cpp, no stand-in)."""

from __future__ import annotations

import socket

import pytest

from dshare_hub.broker.redaction import (
    Plan,
    RedactionError,
    check_dataset,
    check_policy,
    decide,
)
from dshare_hub.demo.content import PAYMENT_COLUMNS, PAYMENTS_REDACTION

FYBRIK = """\
package dshare.redaction

import rego.v1

action := "hash" if {
	input.lessee_org != input.owner_org
	"pii" in input.column.tags
}

action := "remove" if {
	input.lessee_org != input.owner_org
	"sensitive" in input.column.tags
	input.purpose != "audit"
}
"""


def asset(redaction: str = FYBRIK, **over: object) -> dict[str, object]:
    return {
        "id": "uis-payments",
        "name": "UiS mobile payments",
        "owner_org": "UiS",
        "tags": ["tabular"],
        "columns": PAYMENT_COLUMNS,
        "redaction": redaction,
        **over,
    }


def refusal(source: str, target: dict[str, object] | None = None) -> str:
    with pytest.raises(RedactionError) as info:
        check_policy(source, target or asset(source))
    assert info.value.field == "redaction"
    assert info.value.code == "INVALID_ARGUMENT"
    return info.value.message


def test_other_orgs_get_ids_hashed_and_balances_removed_the_owner_everything():
    assert decide(asset(), {"lessee_org": "UiO", "purpose": "fraud model"}) == Plan(
        {"nameOrig": "hash", "oldbalanceOrg": "remove", "nameDest": "hash"}
    )
    assert decide(asset(), {"lessee_org": "UiO", "purpose": "audit"}) == Plan(
        {"nameOrig": "hash", "nameDest": "hash"}
    )
    own = decide(asset(), {"lessee_org": "UiS", "purpose": "fraud model"})
    assert own == Plan({}) and not own.redacts


def test_no_policy_and_undefined_decisions_allow():
    assert decide(asset(""), {"lessee_org": "UiO"}) == Plan({})
    only_step = 'package dshare.redaction\n\naction := "mask" if input.column.name == "step"\n'
    assert decide(asset(only_step), {"lessee_org": "UiO"}) == Plan({"step": "mask"})


def test_the_demo_policy_hashes_customer_ids_for_other_organizations():
    check_policy(PAYMENTS_REDACTION, asset(PAYMENTS_REDACTION))
    assert decide(asset(PAYMENTS_REDACTION), {"lessee_org": "UiB"}).actions == {
        "nameOrig": "hash",
        "nameDest": "hash",
    }
    assert not decide(asset(PAYMENTS_REDACTION), {"lessee_org": "UiS"}).redacts


def test_a_syntax_error_is_refused_with_its_line():
    unclosed = FYBRIK.replace('input.purpose != "audit"\n}\n', 'input.purpose != "audit"\n')
    assert refusal(unclosed) == (
        "redaction: line 10: this is unclosed; fix the Rego and save again"
    )
    assert refusal(FYBRIK.replace('!= "audit"', '!= "audit" +')) == (
        "redaction: line 13: Invalid arithmetic operator; fix the Rego and save again"
    )


def test_a_rule_naming_an_unknown_tag_is_refused_with_its_line():
    assert refusal(FYBRIK.replace('"sensitive" in', '"sensitve" in')) == (
        "redaction: line 12: the tag 'sensitve' is carried by no column of this dataset and "
        "is not in the vocabulary (confidential, contact, financial, health, identifier, "
        "location, pii, quasi-identifier, sensitive); fix the tag or add it to a column's tags"
    )


def test_vocabulary_tags_and_other_strings_are_not_unknown_tags():
    # "identifier" is in the vocabulary though no column carries it; "audit" is compared
    # with the purpose, not with tags, so it changes no decision when a column carries it.
    check_policy(FYBRIK.replace('"pii"', '"identifier"'), asset())
    with_set = FYBRIK + '\nhidden := {"pii", "contact"}\n'
    check_policy(with_set, asset(with_set))


def test_a_wrong_package_or_none_is_refused():
    assert refusal(FYBRIK.replace("package dshare.redaction", "package fybrik")) == (
        "redaction: line 1: the package is 'fybrik'; it must be `package dshare.redaction` "
        "(the broker evaluates data.dshare.redaction.action)"
    )
    assert refusal('action := "hash"\n') == (
        "redaction: has no package; start it with `package dshare.redaction`"
    )


def test_conflicts_unknown_actions_and_functions_are_refused_when_saved():
    both = FYBRIK + '\naction := "mask" if input.column.name == "nameOrig"\n'
    assert refusal(both) == (
        "redaction: evaluating it for column 'nameOrig' failed (two rules give it different "
        "actions?); make the rules give each column one action and use only built-in functions"
    )
    assert refusal(FYBRIK.replace('"hash"', '"hide"')) == (
        "redaction: data.dshare.redaction.action is 'hide' for column 'nameOrig'; it must be "
        "one of allow, hash, mask, remove"
    )
    lookup = FYBRIK.replace('"pii" in input.column.tags', "lookup(input.column.name)")
    assert refusal(lookup) == (
        "redaction: evaluating it for column 'step' failed (Function not found: lookup); "
        "make the rules give each column one action and use only built-in functions"
    )


def test_a_policy_reaches_no_network():
    # An owner's policy runs inside the broker: http.send must not leave the machine.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    url = f"http://127.0.0.1:{server.getsockname()[1]}/ids"
    fetch = FYBRIK.replace(
        '"pii" in input.column.tags', f'http.send({{"method": "get", "url": "{url}"}})'
    )
    try:
        check_policy(fetch, asset(fetch))
        assert decide(asset(fetch), {"lessee_org": "UiO"}) == Plan({"oldbalanceOrg": "remove"})
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()


def test_undecidable_policy_at_mount_time_raises_never_allows():
    # Stored before a column changed, say: the mount must not fall back to raw.
    both = FYBRIK + '\naction := "mask" if input.column.name == "nameOrig"\n'
    with pytest.raises(RedactionError) as info:
        decide(asset(both), {"lessee_org": "UiO"})
    assert info.value.message.startswith("redaction: evaluating it for column 'nameOrig'")


def test_save_check_merges_the_update_over_the_stored_asset():
    stored = asset()
    # Removing the only column tagged 'sensitive' leaves the stored rule naming a tag
    # nothing carries and that is in the vocabulary: still fine.
    check_dataset({"columns": PAYMENT_COLUMNS[:3]}, stored, "UiS")
    renamed = FYBRIK.replace('"pii"', '"customer-id"')
    with pytest.raises(RedactionError) as info:
        check_dataset({"redaction": renamed}, stored, "UiS")
    assert info.value.message.startswith("redaction: line 7: the tag 'customer-id' is carried")
    tagged = [
        {**c, "tags": ["customer-id"]} if c["name"] == "nameOrig" else c for c in PAYMENT_COLUMNS
    ]
    check_dataset({"redaction": renamed, "columns": tagged}, stored, "UiS")
    # Shapes the contract refuses with its own message are left to it.
    check_dataset({"redaction": 7}, stored, "UiS")
    check_dataset({"redaction": "x" * 20_000}, stored, "UiS")

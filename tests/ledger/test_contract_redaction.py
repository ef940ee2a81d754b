"""The asset's `redaction` field on the contract: shape only (the owner's broker compiles
the Rego); old assets without one keep none; a refused update keeps the stored policy."""

from __future__ import annotations

import json

import pytest
from ledger_helpers import asset_json, refused

pytestmark = pytest.mark.asyncio

POLICY = 'package dshare.redaction\n\naction := "hash" if input.column.name == "word"\n'


async def test_registered_and_updated_redaction_is_kept(network, uid):
    created = await network.uis.submit(
        "RegisterAsset", asset_json(uid, redaction=POLICY), actor="alice"
    )
    assert created["redaction"] == POLICY
    # An update that does not name it keeps it; one that does replaces it.
    updated = await network.uis.submit(
        "UpdateAsset", uid, json.dumps({"description": "new"}), actor="alice"
    )
    assert updated["redaction"] == POLICY
    cleared = await network.uis.submit(
        "UpdateAsset", uid, json.dumps({"redaction": ""}), actor="alice"
    )
    assert cleared["redaction"] == ""


async def test_no_redaction_means_empty(network, uid):
    created = await network.uis.submit("RegisterAsset", asset_json(uid), actor="alice")
    assert created["redaction"] == ""


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (7, "redaction: must be Rego source text (a string; empty for no redaction)"),
        ("x" * 16_385, "redaction: must be at most 16384 characters, got 16385"),
        ("package a\x00", "redaction: must not contain NUL characters"),
    ],
)
async def test_bad_redaction_is_refused_and_the_stored_one_stays(network, uid, value, message):
    await network.uis.submit("RegisterAsset", asset_json(uid, redaction=POLICY), actor="alice")
    error = await refused(
        network.uis.submit("UpdateAsset", uid, json.dumps({"redaction": value}), actor="alice"),
        "INVALID_ARGUMENT",
        message,
    )
    assert error.key == "redaction"
    got = await network.uio.evaluate("GetAsset", uid, actor="bob")
    assert got["redaction"] == POLICY

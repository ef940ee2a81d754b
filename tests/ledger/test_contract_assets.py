"""The DataAsset contract's asset transactions, through the async Ledger interface."""

from __future__ import annotations

import json

import pytest
from ledger_helpers import asset_json, refused

pytestmark = pytest.mark.asyncio

ALLOWED_ASSET = (
    "columns, description, id, name, policy, redaction, sealed_storage, skeleton, "
    "storage_type, tags"
)


async def test_register_takes_owner_from_identity_and_get_returns_it(network, uid):
    created = await network.uis.submit("RegisterAsset", asset_json(uid), actor="alice")
    assert created["owner_org"] == network.msp["UiS"]
    assert created["created_by"] == {"org": network.msp["UiS"], "actor": "alice"}
    assert created["state"] == "active"
    assert created["sealed_storage"] == "v1.sealed.Zm9vYmFy"
    assert created["policy"] == {
        "allowed_orgs": [],
        "approval_required": False,
        "code_approval_required": False,
        "exclusive": False,
        "interactive": False,
        "max_concurrent": None,
        "max_duration_s": 3600,
        "release": {
            "checks": ["max_size", "verbatim_input"],
            "max_output_bytes": 1048576,
            "mode": "checks",
            "unknown": "hold",
        },
    }
    assert created["skeleton"] == [{"path": "data/part-0.csv", "size": 1024}]
    assert created["created_at"] == created["updated_at"]
    got = await network.uio.evaluate("GetAsset", uid, actor="bob")
    assert got == {**created, "active_leases": 0}


async def test_owner_org_cannot_be_passed_as_argument(network, uid):
    await refused(
        network.uio.submit(
            "RegisterAsset", asset_json(uid, owner_org=network.msp["UiS"]), actor="mallory"
        ),
        "INVALID_ARGUMENT",
        f"asset: unknown field(s) owner_org; allowed: {ALLOWED_ASSET}",
    )
    await refused(
        network.uio.evaluate("GetAsset", uid, actor="bob"),
        "ASSET_NOT_FOUND",
        f"asset '{uid}' does not exist",
    )


async def test_register_twice_is_refused(network, uid):
    await network.uis.submit("RegisterAsset", asset_json(uid), actor="alice")
    await refused(
        network.uis.submit("RegisterAsset", asset_json(uid, name="Other"), actor="alice"),
        "ASSET_EXISTS",
        f"asset '{uid}' already exists",
    )
    assert (await network.uis.evaluate("GetAsset", uid, actor="alice"))["name"] == f"Dataset {uid}"


BAD_ASSETS = [
    (
        {"id": "-bad"},
        "id: must be 1-64 characters of letters, digits, '.', '_' or '-', "
        "starting with a letter or digit",
    ),
    ({"name": None}, "name: must be a string"),
    ({"name": "  "}, "name: must not be empty"),
    (
        {"storage_type": "ftp"},
        "storage_type: must be one of azurefile, gcs, hostpath, local, nfs, s3, got 'ftp'",
    ),
    (
        {"tags": ["ok", "Not OK"]},
        "tags[1]: must be 1-48 lower-case letters, digits, '.', '_', ':' or '-'",
    ),
    (
        {"sealed_storage": ""},
        "sealed_storage: must be the non-empty sealed string made by the owner's broker",
    ),
    (
        {"policy": {"owner": "x"}},
        "policy: unknown field(s) owner; allowed: allowed_orgs, approval_required, "
        "code_approval_required, exclusive, interactive, max_concurrent, max_duration_s, "
        "release",
    ),
    (
        {"policy": {"exclusive": True, "max_concurrent": 3}},
        "policy.max_concurrent: must be null or 1 when exclusive is true; an exclusive asset "
        "has one lease at a time",
    ),
    (
        {"policy": {"max_duration_s": 0}},
        "policy.max_duration_s: must be between 1 and 31622400, got 0",
    ),
    ({"policy": {"exclusive": "yes"}}, "policy.exclusive: must be true or false"),
    (
        {"policy": {"allowed_orgs": ["UiO", 3]}},
        "policy.allowed_orgs[1]: must be an organization id",
    ),
    (
        {"columns": [{"name": "word"}, {"name": "word"}]},
        "columns[1].name: duplicates column 'word'",
    ),
    (
        {"columns": [{"name": "ssn", "pii": True}]},
        "columns[0]: unknown field(s) pii; allowed: name, type, tags, mock",
    ),
    (
        {"skeleton": [{"path": "../etc/passwd", "size": 1}]},
        "skeleton[0].path: must be a relative path without '..'",
    ),
    (
        {"skeleton": [{"path": "a.csv", "size": -1}]},
        "skeleton[0].size: must be between 0 and 9223372036854775807, got -1",
    ),
]


@pytest.mark.parametrize(("override", "message"), BAD_ASSETS)
async def test_register_validates_every_field(network, uid, override, message):
    await refused(
        network.uis.submit("RegisterAsset", asset_json(uid, **override), actor="alice"),
        "INVALID_ARGUMENT",
        message,
    )


async def test_register_refuses_malformed_json(network):
    await refused(
        network.uis.submit("RegisterAsset", "{not json", actor="alice"),
        "INVALID_ARGUMENT",
        "asset: is not valid JSON (Expecting property name enclosed in double quotes at "
        "position 1)",
    )
    await refused(
        network.uis.submit("RegisterAsset", "[1]", actor="alice"),
        "INVALID_ARGUMENT",
        "asset: must be a JSON object, got list",
    )


async def test_update_by_owner_changes_fields_and_keeps_the_rest(network, uid):
    created = await network.uis.submit("RegisterAsset", asset_json(uid), actor="alice")
    patch = {"name": "Renamed", "policy": {"exclusive": True}}
    updated = await network.uis.submit("UpdateAsset", uid, json.dumps(patch), actor="carol")
    assert updated["name"] == "Renamed"
    assert updated["policy"] == {**created["policy"], "exclusive": True}
    assert updated["description"] == created["description"]
    assert updated["created_by"] == {"org": network.msp["UiS"], "actor": "alice"}
    assert updated["updated_by"] == {"org": network.msp["UiS"], "actor": "carol"}
    assert updated["updated_at"] >= created["updated_at"]


async def test_update_is_refused_for_other_orgs_and_changes_nothing(network, uid):
    await network.uis.submit("RegisterAsset", asset_json(uid), actor="alice")
    await refused(
        network.uio.submit("UpdateAsset", uid, '{"name": "Mine now"}', actor="bob"),
        "NOT_OWNER",
        f"only the owner organization '{network.msp['UiS']}' may update asset '{uid}'; "
        f"you submitted as '{network.msp['UiO']}'",
    )
    history = await network.uis.evaluate("GetAssetHistory", uid, actor="alice")
    assert [h["action"] for h in history["items"]] == ["registered"]


async def test_update_argument_errors(network, uid):
    await network.uis.submit("RegisterAsset", asset_json(uid), actor="alice")
    await refused(
        network.uis.submit("UpdateAsset", uid, "{}", actor="alice"),
        "INVALID_ARGUMENT",
        "patch: is empty; name at least one of columns, description, name, policy, "
        "redaction, sealed_storage, skeleton, storage_type, tags",
    )
    await refused(
        network.uis.submit("UpdateAsset", uid, '{"id": "other"}', actor="alice"),
        "INVALID_ARGUMENT",
        "patch: unknown field(s) id; allowed: columns, description, name, policy, "
        "redaction, sealed_storage, skeleton, storage_type, tags",
    )
    await refused(
        network.uis.submit("UpdateAsset", uid, '{"storage_type": "ftp"}', actor="alice"),
        "INVALID_ARGUMENT",
        "storage_type: must be one of azurefile, gcs, hostpath, local, nfs, s3, got 'ftp'",
    )
    await refused(
        network.uis.submit("UpdateAsset", uid + "x", '{"name": "n"}', actor="alice"),
        "ASSET_NOT_FOUND",
        f"asset '{uid}x' does not exist",
    )


async def test_retire_by_owner_only_then_frozen(network, uid):
    await network.uis.submit("RegisterAsset", asset_json(uid), actor="alice")
    await refused(
        network.uib.submit("RetireAsset", uid, actor="eve"),
        "NOT_OWNER",
        f"only the owner organization '{network.msp['UiS']}' may retire asset '{uid}'; "
        f"you submitted as '{network.msp['UiB']}'",
    )
    retired = await network.uis.submit("RetireAsset", uid, actor="alice")
    assert retired["state"] == "retired"
    assert retired["retired_at"] == retired["updated_at"]
    await refused(
        network.uis.submit("RetireAsset", uid, actor="alice"),
        "INVALID_STATE",
        f"asset '{uid}' is retired; cannot retire it",
    )
    await refused(
        network.uis.submit("UpdateAsset", uid, '{"name": "n"}', actor="alice"),
        "INVALID_STATE",
        f"asset '{uid}' is retired; cannot update it",
    )
    await refused(
        network.uio.submit("RequestLease", uid, "60", "study", actor="bob"),
        "INVALID_STATE",
        f"asset '{uid}' is retired; cannot lease it",
    )
    await refused(
        network.uis.submit("RetireAsset", uid + "x", actor="alice"),
        "ASSET_NOT_FOUND",
        f"asset '{uid}x' does not exist",
    )


async def test_history_says_who_when_what(network, uid):
    await network.uis.submit("RegisterAsset", asset_json(uid), actor="alice")
    await network.uis.submit("UpdateAsset", uid, '{"description": "v2"}', actor="carol")
    await network.uis.submit("RetireAsset", uid, actor="alice")
    items = (await network.uio.evaluate("GetAssetHistory", uid, actor="bob"))["items"]
    assert [(h["actor"], h["action"], h["org"]) for h in items] == [
        ("alice", "registered", network.msp["UiS"]),
        ("carol", "updated", network.msp["UiS"]),
        ("alice", "retired", network.msp["UiS"]),
    ]
    assert items[1]["asset"]["description"] == "v2"
    assert len({h["tx_id"] for h in items}) == 3
    assert [h["timestamp"] for h in items] == sorted(h["timestamp"] for h in items)
    await refused(
        network.uio.evaluate("GetAssetHistory", uid + "x", actor="bob"),
        "ASSET_NOT_FOUND",
        f"asset '{uid}x' does not exist",
    )


async def _catalog(network, uid):
    """Five assets tagged `uid` across two orgs and storage types."""
    specs = [
        (network.uis, "a", "local", "Census households", {"exclusive": True}),
        (network.uis, "b", "s3", "Weather stations", {}),
        (network.uio, "c", "nfs", "Hospital admissions", {"max_concurrent": 1}),
        (network.uio, "d", "s3", "Census people", {}),
        (network.uis, "e", "local", "Old data", {}),
    ]
    for ledger, suffix, storage, name, policy in specs:
        await ledger.submit(
            "RegisterAsset",
            asset_json(
                f"{uid}-{suffix}",
                name=name,
                tags=[uid, "extra"],
                storage_type=storage,
                policy={"max_duration_s": 600, **policy},
            ),
            actor="admin",
        )
    await network.uis.submit("RetireAsset", f"{uid}-e", actor="admin")


async def _ids(network, **filters):
    page = await network.uib.evaluate("QueryAssets", json.dumps(filters), actor="eve")
    return [a["id"] for a in page["items"]]


async def test_query_filters(network, uid):
    await _catalog(network, uid)
    base = {"tag": uid}
    assert await _ids(network, **base) == [f"{uid}-{s}" for s in "abcd"]
    assert await _ids(network, **base, include_retired=True) == [f"{uid}-{s}" for s in "abcde"]
    assert await _ids(network, **base, org=network.msp["UiO"]) == [f"{uid}-c", f"{uid}-d"]
    assert await _ids(network, **base, storage="s3") == [f"{uid}-b", f"{uid}-d"]
    assert await _ids(network, **base, q="CENSUS") == [f"{uid}-a", f"{uid}-d"]
    await network.uib.submit("RequestLease", f"{uid}-a", "60", "study", actor="eve")
    await network.uib.submit("RequestLease", f"{uid}-b", "60", "study", actor="eve")
    await network.uib.submit("RequestLease", f"{uid}-c", "60", "study", actor="eve")
    assert await _ids(network, **base, available=True) == [f"{uid}-b", f"{uid}-d"]
    page = await network.uib.evaluate("QueryAssets", json.dumps(base), actor="eve")
    assert [a["active_leases"] for a in page["items"]] == [1, 1, 1, 0]


async def test_query_paginates_with_bookmark(network, uid):
    await _catalog(network, uid)
    seen: list[str] = []
    bookmark = ""
    pages = 0
    while True:
        filters = {"tag": uid, "limit": 3, "bookmark": bookmark}
        page = await network.uis.evaluate("QueryAssets", json.dumps(filters), actor="a")
        seen += [a["id"] for a in page["items"]]
        pages += 1
        bookmark = page["bookmark"]
        if not bookmark:
            break
    assert seen == [f"{uid}-{s}" for s in "abcd"]
    assert pages == 2


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"limit": 0}, "limit: must be between 1 and 200, got 0"),
        (
            {"storage": "tape"},
            "storage: must be one of azurefile, gcs, hostpath, local, nfs, s3, got 'tape'",
        ),
        (
            {"bookmark": "!!!"},
            "bookmark: is not a bookmark returned by QueryAssets; start again without it",
        ),
        (
            {"owner": "UiS"},
            "filters: unknown field(s) owner; allowed: available, bookmark, include_retired, "
            "limit, org, q, storage, tag",
        ),
        ({"available": "yes"}, "available: must be true or false"),
    ],
)
async def test_query_argument_errors(network, filters, message):
    await refused(
        network.uis.evaluate("QueryAssets", json.dumps(filters), actor="a"),
        "INVALID_ARGUMENT",
        message,
    )


async def test_unknown_function_and_wrong_arity(network):
    await refused(
        network.uis.submit("DeleteEverything", actor="a"),
        "UNKNOWN_FUNCTION",
        "unknown function 'DeleteEverything'; known: ApproveLease, DecideCodeApproval, "
        "DecideOutput, ExpireLeases, FinishRun, GetAsset, GetAssetHistory, GetCodeApproval, "
        "GetLease, GetRun, ListCodeApprovals, ListExpiredLeases, ListHeldOutputs, ListLeases, "
        "ListRuns, QueryAssets, RecordRun, RegisterAsset, RejectLease, ReleaseLease, "
        "RequestCodeApproval, RequestLease, RetireAsset, UpdateAsset",
    )
    await refused(
        network.uis.submit("GetAsset", "a", "b", actor="a"),
        "INVALID_ARGUMENT",
        "GetAsset takes 1 argument(s) (asset_id), got 2",
    )
    await refused(
        network.uis.submit("RequestLease", "a", actor="a"),
        "INVALID_ARGUMENT",
        "RequestLease takes 3 argument(s) (asset_id, duration, purpose), got 1",
    )


async def test_actor_must_be_named(network, uid):
    await refused(
        network.uis.submit("RegisterAsset", asset_json(uid), actor=""),
        "INVALID_ARGUMENT",
        "transient field 'actor' must be 1-128 printable characters",
    )

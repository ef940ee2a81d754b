"""Lease and run transactions, through the async Ledger interface.

Expiry uses short real durations (1 s) and sleeps, so any backend's clock works.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import pytest
from ledger_helpers import asset_json, refused

pytestmark = pytest.mark.asyncio

SPEC = "ab" * 32


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _asset(network, uid, **policy):
    policy = {"max_duration_s": 3600, **policy}
    await network.uis.submit("RegisterAsset", asset_json(uid, policy=policy), actor="admin")


async def test_lease_granted_at_once(network, uid):
    await _asset(network, uid)
    lease = await network.uio.submit("RequestLease", uid, "120", "word count", actor="bob")
    assert lease["state"] == "active"
    assert (lease["asset_id"], lease["asset_name"]) == (uid, f"Dataset {uid}")
    assert (lease["lessee_org"], lease["lessee_user"]) == (network.msp["UiO"], "bob")
    assert lease["owner_org"] == network.msp["UiS"]
    assert lease["purpose"] == "word count"
    assert lease["requested_at"] == lease["granted_at"]
    assert (_ts(lease["expires_at"]) - _ts(lease["granted_at"])).total_seconds() == 120
    assert await network.uib.evaluate("GetLease", lease["id"], actor="x") == lease
    assert (await network.uib.evaluate("GetAsset", uid, actor="x"))["active_leases"] == 1


async def test_exclusive_asset_has_one_lease_until_released(network, uid):
    await _asset(network, uid, exclusive=True)
    first = await network.uio.submit("RequestLease", uid, "120", "study", actor="bob")
    await refused(
        network.uib.submit("RequestLease", uid, "120", "study", actor="eve"),
        "LEASE_CONFLICT",
        f"asset '{uid}' is exclusive and already leased; try again when a lease ends",
    )
    released = await network.uio.submit("ReleaseLease", first["id"], actor="bob")
    assert released["state"] == "released"
    assert released["ended_by"] == {"org": network.msp["UiO"], "actor": "bob"}
    second = await network.uib.submit("RequestLease", uid, "120", "study", actor="eve")
    assert second["state"] == "active"


async def test_max_concurrent_caps_active_leases(network, uid):
    await _asset(network, uid, max_concurrent=2)
    await network.uio.submit("RequestLease", uid, "60", "a", actor="bob")
    await network.uib.submit("RequestLease", uid, "60", "b", actor="eve")
    await refused(
        network.uio.submit("RequestLease", uid, "60", "c", actor="dan"),
        "LEASE_CONFLICT",
        f"asset '{uid}' already has 2 active lease(s), its policy's max_concurrent; "
        "try again when a lease ends",
    )


async def test_allowed_orgs_and_duration_bounds(network, uid):
    await _asset(network, uid, allowed_orgs=[network.msp["UiO"]], max_duration_s=600)
    await refused(
        network.uib.submit("RequestLease", uid, "60", "study", actor="eve"),
        "POLICY_DENIED",
        f"organization '{network.msp['UiB']}' is not among the organizations asset "
        f"'{uid}' allows ({network.msp['UiO']})",
    )
    await refused(
        network.uio.submit("RequestLease", uid, "601", "study", actor="bob"),
        "POLICY_DENIED",
        f"duration_s 601 exceeds the max_duration_s 600 of asset '{uid}'; ask for a shorter lease",
    )
    await refused(
        network.uio.submit("RequestLease", uid, "0", "study", actor="bob"),
        "INVALID_ARGUMENT",
        "duration_s: must be between 1 and 31622400, got 0",
    )
    await refused(
        network.uio.submit("RequestLease", uid, "1h", "study", actor="bob"),
        "INVALID_ARGUMENT",
        "duration_s: must be a whole number, got '1h'",
    )
    await refused(
        network.uio.submit("RequestLease", uid, "60", " ", actor="bob"),
        "INVALID_ARGUMENT",
        "purpose: must not be empty",
    )
    await refused(
        network.uio.submit("RequestLease", uid + "x", "60", "study", actor="bob"),
        "ASSET_NOT_FOUND",
        f"asset '{uid}x' does not exist",
    )
    # The owner's own users are always allowed.
    own = await network.uis.submit("RequestLease", uid, "60", "qa", actor="admin")
    assert own["state"] == "active"
    assert (await network.uis.evaluate("GetAsset", uid, actor="a"))["active_leases"] == 1


async def test_approval_flow(network, uid):
    await _asset(network, uid, approval_required=True, exclusive=True)
    pending = await network.uio.submit("RequestLease", uid, "300", "study", actor="bob")
    assert (pending["state"], pending["granted_at"], pending["expires_at"]) == (
        "pending",
        None,
        None,
    )
    other = await network.uib.submit("RequestLease", uid, "300", "study", actor="eve")
    listed = await network.uis.evaluate(
        "ListLeases", json.dumps({"owner_org": network.msp["UiS"], "state": "pending"}), actor="a"
    )
    assert [lease["id"] for lease in listed["items"]] == [pending["id"], other["id"]]
    await refused(
        network.uio.submit("ApproveLease", pending["id"], actor="bob"),
        "NOT_OWNER",
        f"only the owner organization '{network.msp['UiS']}' may approve lease "
        f"'{pending['id']}'; you submitted as '{network.msp['UiO']}'",
    )
    approved = await network.uis.submit("ApproveLease", pending["id"], actor="admin")
    assert approved["state"] == "active"
    assert approved["decided_by"] == {"org": network.msp["UiS"], "actor": "admin"}
    assert (_ts(approved["expires_at"]) - _ts(approved["granted_at"])).total_seconds() == 300
    await refused(
        network.uis.submit("ApproveLease", pending["id"], actor="admin"),
        "INVALID_STATE",
        f"lease '{pending['id']}' is active, not pending; only a pending lease can be approved",
    )
    # Exclusive: the second pending lease cannot be approved while the first is active.
    await refused(
        network.uis.submit("ApproveLease", other["id"], actor="admin"),
        "LEASE_CONFLICT",
        f"asset '{uid}' is exclusive and already leased; try again when a lease ends",
    )
    rejected = await network.uis.submit("RejectLease", other["id"], "not now", actor="admin")
    assert (rejected["state"], rejected["reason"]) == ("rejected", "not now")
    await refused(
        network.uis.submit("RejectLease", other["id"], actor="admin"),
        "INVALID_STATE",
        f"lease '{other['id']}' is rejected, not pending; only a pending lease can be rejected",
    )
    await refused(
        network.uis.submit("ApproveLease", "L-nope", actor="admin"),
        "LEASE_NOT_FOUND",
        "lease 'L-nope' does not exist",
    )


async def test_release_rules(network, uid):
    await _asset(network, uid)
    lease = await network.uio.submit("RequestLease", uid, "300", "study", actor="bob")
    await refused(
        network.uio.submit("ReleaseLease", lease["id"], actor="dan"),
        "NOT_LESSEE",
        f"lease '{lease['id']}' belongs to user 'bob' of '{network.msp['UiO']}'; only they "
        f"or the owner organization '{network.msp['UiS']}' may release it",
    )
    await refused(
        network.uib.submit("ReleaseLease", lease["id"], actor="bob"),
        "NOT_LESSEE",
        f"lease '{lease['id']}' belongs to user 'bob' of '{network.msp['UiO']}'; only they "
        f"or the owner organization '{network.msp['UiS']}' may release it",
    )
    by_owner = await network.uis.submit("ReleaseLease", lease["id"], actor="admin")
    assert by_owner["ended_by"] == {"org": network.msp["UiS"], "actor": "admin"}
    await refused(
        network.uio.submit("ReleaseLease", lease["id"], actor="bob"),
        "INVALID_STATE",
        f"lease '{lease['id']}' is already released",
    )
    await refused(
        network.uio.submit("ReleaseLease", "L-missing", actor="bob"),
        "LEASE_NOT_FOUND",
        "lease 'L-missing' does not exist",
    )
    assert (await network.uis.evaluate("GetAsset", uid, actor="a"))["active_leases"] == 0


async def test_expired_lease_counts_as_released(network, uid):
    await _asset(network, uid, exclusive=True)
    lease = await network.uio.submit("RequestLease", uid, "1", "quick", actor="bob")
    await asyncio.sleep(1.3)
    got = await network.uio.evaluate("GetLease", lease["id"], actor="bob")
    assert got["state"] == "expired"
    assert (await network.uio.evaluate("GetAsset", uid, actor="bob"))["active_leases"] == 0
    await refused(
        network.uio.submit("ReleaseLease", lease["id"], actor="bob"),
        "LEASE_EXPIRED",
        f"lease '{lease['id']}' expired at {lease['expires_at']}",
    )
    await refused(
        network.uio.submit("RecordRun", json.dumps([lease["id"]]), SPEC, "late", actor="bob"),
        "LEASE_EXPIRED",
        f"lease '{lease['id']}' expired at {lease['expires_at']}",
    )
    expired = await network.uis.evaluate("ListExpiredLeases", uid, actor="reaper")
    assert [(x["id"], x["state"]) for x in expired["items"]] == [(lease["id"], "expired")]
    # The exclusive asset is free again before anyone writes "expired".
    again = await network.uib.submit("RequestLease", uid, "60", "next", actor="eve")
    assert again["state"] == "active"
    written = await network.uis.submit("ExpireLeases", uid, actor="reaper")
    assert [(x["id"], x["state"]) for x in written["items"]] == [(lease["id"], "expired")]
    stored = await network.uio.evaluate("GetLease", lease["id"], actor="bob")
    assert (stored["state"], stored["ended_at"]) == ("expired", lease["expires_at"])
    assert (await network.uis.evaluate("ListExpiredLeases", uid, actor="r"))["items"] == []
    assert (await network.uis.submit("ExpireLeases", uid, actor="reaper"))["items"] == []


async def test_list_leases_by_asset_user_org(network, uid):
    await _asset(network, uid)
    a = await network.uio.submit("RequestLease", uid, "60", "1", actor="bob")
    b = await network.uio.submit("RequestLease", uid, "60", "2", actor="dan")
    c = await network.uib.submit("RequestLease", uid, "60", "3", actor="eve")
    await network.uio.submit("ReleaseLease", b["id"], actor="dan")

    async def ids(**f):
        out = await network.uis.evaluate("ListLeases", json.dumps(f), actor="x")
        return [lease["id"] for lease in out["items"]]

    assert await ids(asset_id=uid) == [a["id"], b["id"], c["id"]]
    assert await ids(asset_id=uid, state="active") == [a["id"], c["id"]]
    assert await ids(user="bob", org=network.msp["UiO"]) == [a["id"]]
    assert await ids(org=network.msp["UiO"], state="released") == [b["id"]]
    await refused(
        network.uis.evaluate("ListLeases", "{}", actor="x"),
        "INVALID_ARGUMENT",
        "filters: name one of asset_id, user, org or owner_org to list leases by",
    )
    await refused(
        network.uis.evaluate("ListLeases", '{"asset_id": "a", "state": "gone"}', actor="x"),
        "INVALID_ARGUMENT",
        "state: must be one of active, expired, pending, rejected, released, got 'gone'",
    )


async def test_runs_record_provenance(network, uid):
    await _asset(network, uid)
    await network.uis.submit("RegisterAsset", asset_json(uid + "2"), actor="admin")
    l1 = await network.uio.submit("RequestLease", uid, "300", "s", actor="bob")
    l2 = await network.uio.submit("RequestLease", uid + "2", "300", "s", actor="bob")
    run = await network.uio.submit(
        "RecordRun", json.dumps([l1["id"], l2["id"]]), SPEC, "wordcount", actor="bob"
    )
    assert (run["state"], run["user"], run["org"]) == ("running", "bob", network.msp["UiO"])
    assert (run["lease_ids"], run["spec_sha256"]) == ([l1["id"], l2["id"]], SPEC)
    await refused(
        network.uio.submit("FinishRun", run["id"], "succeeded", actor="dan"),
        "NOT_OWNER",
        f"run '{run['id']}' belongs to user 'bob' of '{network.msp['UiO']}'; only they may "
        "finish it",
    )
    done = await network.uio.submit("FinishRun", run["id"], "succeeded", "cd" * 32, actor="bob")
    assert (done["state"], done["outcome"], done["result_sha256"]) == (
        "finished",
        "succeeded",
        "cd" * 32,
    )
    assert await network.uis.evaluate("GetRun", run["id"], actor="x") == done
    await refused(
        network.uio.submit("FinishRun", run["id"], "failed", actor="bob"),
        "INVALID_STATE",
        f"run '{run['id']}' already finished (succeeded)",
    )
    mine = await network.uio.evaluate("ListRuns", actor="bob")
    assert [r["id"] for r in mine["items"]] == [run["id"]]
    assert (await network.uio.evaluate("ListRuns", actor="dan"))["items"] == []


async def test_run_argument_and_lease_errors(network, uid):
    await _asset(network, uid, approval_required=True)
    pending = await network.uio.submit("RequestLease", uid, "300", "s", actor="bob")
    await network.uis.submit("RegisterAsset", asset_json(uid + "2"), actor="admin")
    theirs = await network.uib.submit("RequestLease", uid + "2", "300", "s", actor="eve")

    async def record(lease_ids, spec=SPEC, name="r"):
        return await network.uio.submit("RecordRun", lease_ids, spec, name, actor="bob")

    await refused(
        record(json.dumps([theirs["id"]])),
        "NOT_LESSEE",
        f"lease '{theirs['id']}' belongs to user 'eve' of '{network.msp['UiB']}', not to "
        f"'bob' of '{network.msp['UiO']}'",
    )
    await refused(
        record(json.dumps([pending["id"]])),
        "INVALID_STATE",
        f"lease '{pending['id']}' is pending; a run needs active leases",
    )
    await refused(record('["L-none"]'), "LEASE_NOT_FOUND", "lease 'L-none' does not exist")
    await refused(
        record("[]"), "INVALID_ARGUMENT", "lease_ids: must be a non-empty JSON list of lease ids"
    )
    await refused(
        record(json.dumps([pending["id"], pending["id"]])),
        "INVALID_ARGUMENT",
        "lease_ids: names the same lease twice",
    )
    await refused(
        record(json.dumps([pending["id"]]), spec="xyz"),
        "INVALID_ARGUMENT",
        "spec_sha256: must be a SHA-256 digest: 64 lower-case hex characters",
    )
    await refused(
        network.uio.submit("FinishRun", "R-none", "succeeded", actor="bob"),
        "RUN_NOT_FOUND",
        "run 'R-none' does not exist",
    )
    await refused(
        network.uio.submit("FinishRun", "R-none", "maybe", actor="bob"),
        "INVALID_ARGUMENT",
        "outcome: must be one of cancelled, failed, succeeded, got 'maybe'",
    )
    await refused(
        network.uio.evaluate("GetRun", "R-none", actor="bob"),
        "RUN_NOT_FOUND",
        "run 'R-none' does not exist",
    )

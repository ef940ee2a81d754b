"""The embedded ledger's fast read path gives the answers the slow one gave.

QueryAssets counts active leases from one scan of the open-lease index per page and rejects
text-search misses before parsing; queries are not signed; `state_token` changes whenever an
answer may change. Lease expiry is driven by shifting the ledger's clock, not by sleeping.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from ledger_helpers import asset_json

from dshare_hub.ledger import LedgerError
from dshare_hub.ledger import chain as chain_module
from dshare_hub.ledger import commit as commit_module
from dshare_hub.ledger import core as core_module
from dshare_hub.ledger.core import LedgerCore
from dshare_hub.ledger.embedded import EmbeddedLedger
from dshare_hub.ledger.identity import OrgIdentity
from dshare_hub.ledger.verify import verify

pytestmark = pytest.mark.asyncio

ORGS = ("UiS", "UiO", "UiB")
# Ids where one is a prefix of another, and '-', '.', '_' sort below letters and digits:
# the traps for walking the lease index in the assets' order.
SUFFIXES = ("", "-b", ".c", "0", "b", "b_1", "c")


class Clock:
    """The ledger's clock, moved forward by tests (proposals and queries both use it)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    real = core_module.datetime

    class Shifted(real):  # type: ignore[misc,valid-type]
        @classmethod
        def now(cls, tz: Any = None) -> datetime:
            return real.now(tz) + clock.offset

    # The committer checks each proposal's time against its own clock: the same machine's.
    for module in (core_module, commit_module, chain_module):
        monkeypatch.setattr(module, "datetime", Shifted)
    return clock


@pytest_asyncio.fixture
async def ledgers(tmp_path: Path) -> AsyncIterator[dict[str, EmbeddedLedger]]:
    out = {org: EmbeddedLedger.open(tmp_path / "l.db", tmp_path / "ids", org) for org in ORGS}
    yield out
    for ledger in out.values():
        await ledger.close()


async def _pages(ledger: EmbeddedLedger, limit: int, **filters: Any) -> Iterator[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    bookmark = ""
    while True:
        args = {**filters, "limit": limit, **({"bookmark": bookmark} if bookmark else {})}
        page = await ledger.evaluate("QueryAssets", json.dumps(args), actor="reader")
        items.extend(page["items"])
        bookmark = page["bookmark"]
        if not bookmark:
            return iter(items)


async def _check_counts(ledger: EmbeddedLedger, ids: list[str]) -> int:
    """Every page size and the `available` filter agree with ListLeases, lease by lease;
    returns how many leases are active."""
    expected: dict[str, int] = {}
    available: list[str] = []
    for asset_id in ids:
        leases = await ledger.evaluate(
            "ListLeases", json.dumps({"asset_id": asset_id}), actor="reader"
        )
        expected[asset_id] = sum(1 for x in leases["items"] if x["state"] == "active")
        asset = await ledger.evaluate("GetAsset", asset_id, actor="reader")
        assert asset["active_leases"] == expected[asset_id], asset_id
        policy = asset["policy"]
        cap = 1 if policy["exclusive"] else policy["max_concurrent"]
        if cap is None or expected[asset_id] < cap:
            available.append(asset_id)
    for limit in (200, 3, 1):
        got = {a["id"]: a["active_leases"] for a in await _pages(ledger, limit)}
        assert got == expected, f"limit {limit}"
        free = [a["id"] for a in await _pages(ledger, limit, available=True)]
        assert free == available, f"limit {limit}, available"
    return sum(expected.values())


async def _register_mix(ledgers: dict[str, EmbeddedLedger], uid: str) -> list[str]:
    policies: tuple[dict[str, Any], ...] = (
        {"exclusive": True},
        {"max_concurrent": 2},
        {"approval_required": True},
        {},
    )
    ids = sorted(uid + suffix for suffix in SUFFIXES)
    for n, asset_id in enumerate(ids):
        policy = {"max_duration_s": 3600, **policies[n % len(policies)]}
        await ledgers["UiS"].submit(
            "RegisterAsset", asset_json(asset_id, policy=policy), actor="admin"
        )
    return ids


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_page_counts_equal_active_leases_after_grants_releases_and_expiries(
    ledgers: dict[str, EmbeddedLedger], uid: str, clock: Clock, seed: int, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    ids = await _register_mix(ledgers, uid)
    leases: list[dict[str, Any]] = []
    assert await _check_counts(ledgers["UiS"], ids) == 0
    # Start from a lease on every asset, two where the policy allows more than one.
    for n, asset_id in enumerate(ids):
        for org in ("UiS", "UiB")[: 1 + n % 2]:
            leases.append(
                await ledgers[org].submit("RequestLease", asset_id, "600", "x", actor="carol")
            )
    most_active = await _check_counts(ledgers["UiS"], ids)
    for _step in range(30):
        action = rng.choice(("lease", "lease", "lease", "release", "approve", "expire", "reap"))
        try:
            if action == "lease":
                org = rng.choice(ORGS)
                lease = await ledgers[org].submit(
                    "RequestLease",
                    rng.choice(ids),
                    str(rng.choice((60, 600, 3000))),
                    "study",
                    actor=f"user-{org}",
                )
                leases.append(lease)
            elif action == "release" and leases:
                lease = rng.choice(leases)
                await ledgers[lease["lessee_org"]].submit(
                    "ReleaseLease", lease["id"], actor=lease["lessee_user"]
                )
            elif action == "approve" and leases:
                await ledgers["UiS"].submit("ApproveLease", rng.choice(leases)["id"], actor="adm")
            elif action == "expire":
                clock.advance(rng.choice((61, 601)))
            elif action == "reap":
                await ledgers["UiS"].submit("ExpireLeases", actor="dshare-reaper")
        except LedgerError as error:
            # Refusals (conflict, not pending, already ended) are part of the mix.
            assert error.code in ("LEASE_CONFLICT", "INVALID_STATE", "LEASE_EXPIRED"), error
        most_active = max(most_active, await _check_counts(ledgers["UiS"], ids))
    assert most_active >= len(ids)
    # The log still replays to exactly the stored state.
    report = verify(tmp_path / "l.db")
    assert report.ok, [str(p) for p in report.problems]


async def test_a_lease_of_a_page_asset_counts_even_when_earlier_assets_have_leases(
    ledgers: dict[str, EmbeddedLedger], uid: str
) -> None:
    ids = await _register_mix(ledgers, uid)
    # Leases on every asset before the bookmark, none after the last one on the page (the
    # owner's own leases are granted at once, whatever the policy).
    for asset_id in ids[:4]:
        await ledgers["UiS"].submit("RequestLease", asset_id, "600", "x", actor="alice")
    first = await ledgers["UiS"].evaluate("QueryAssets", json.dumps({"limit": 3}), actor="r")
    assert [a["active_leases"] for a in first["items"]] == [1, 1, 1]
    second = await ledgers["UiS"].evaluate(
        "QueryAssets", json.dumps({"limit": 2, "bookmark": first["bookmark"]}), actor="r"
    )
    assert [(a["id"], a["active_leases"]) for a in second["items"]] == [
        (ids[3], 1),
        (ids[4], 0),
    ]


SEARCH_ASSETS = {
    # suffix: (name, description, tags)
    "n1": ("Fjord survey", "plain", ["text"]),
    "n2": ("STRASSE Σίσυφος", "streets", ["text"]),
    "n3": ('say "fjord" twice', "quoted", ["text"]),
    "n4": ("back\\slash", "near the FJORD", ["text"]),
    "n5": ("other", "nothing here", ["fjord"]),
    "n6": ("plain", "in the ÄRCHIVE", ["text"]),
    "fjord": ("elsewhere", "no match but the id", ["text"]),
}


@pytest.mark.parametrize(
    "q",
    ["fjord", "FJORD", '"fjord"', "straße", "ς", "\\slash", "ärchive", "nothing", "text", "n1"],
)
async def test_text_search_matches_exactly_name_or_description(
    ledgers: dict[str, EmbeddedLedger], uid: str, q: str
) -> None:
    for suffix, (name, description, tags) in SEARCH_ASSETS.items():
        await ledgers["UiS"].submit(
            "RegisterAsset",
            asset_json(uid + suffix, name=name, description=description, tags=tags),
            actor="admin",
        )
    needle = q.casefold()
    expected = sorted(
        uid + suffix
        for suffix, (name, description, _tags) in SEARCH_ASSETS.items()
        if needle in name.casefold() or needle in description.casefold()
    )
    page = await ledgers["UiO"].evaluate("QueryAssets", json.dumps({"q": q}), actor="bob")
    assert [a["id"] for a in page["items"]] == expected


async def test_search_skips_retired_assets_unless_asked(
    ledgers: dict[str, EmbeddedLedger], uid: str
) -> None:
    for suffix in ("a", "b"):
        await ledgers["UiS"].submit(
            "RegisterAsset", asset_json(uid + suffix, name=f"fjord {suffix}"), actor="admin"
        )
    await ledgers["UiS"].submit("RetireAsset", uid + "a", actor="admin")
    page = await ledgers["UiS"].evaluate("QueryAssets", '{"q": "fjord"}', actor="r")
    assert [a["id"] for a in page["items"]] == [uid + "b"]
    page = await ledgers["UiS"].evaluate(
        "QueryAssets", '{"q": "fjord", "include_retired": true}', actor="r"
    )
    assert [(a["id"], a["state"]) for a in page["items"]] == [
        (uid + "a", "retired"),
        (uid + "b", "active"),
    ]


async def test_a_query_is_not_signed_and_leaves_the_log_as_it_was(
    ledgers: dict[str, EmbeddedLedger], uid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ledgers["UiS"].submit("RegisterAsset", asset_json(uid), actor="admin")
    core = ledgers["UiS"].core
    before = core.state_token()

    def no_signing(self: OrgIdentity, data: bytes) -> bytes:
        raise AssertionError("signed")

    monkeypatch.setattr(OrgIdentity, "sign", no_signing)
    assert (await ledgers["UiO"].evaluate("GetAsset", uid, actor="bob"))["id"] == uid
    page = await ledgers["UiO"].evaluate("QueryAssets", "{}", actor="bob")
    assert [a["id"] for a in page["items"]] == [uid]
    # Evaluating a transaction simulates it and records nothing, as before.
    lease = await ledgers["UiO"].evaluate("RequestLease", uid, "60", "x", actor="bob")
    assert lease["state"] == "active"
    assert (await ledgers["UiO"].evaluate("GetAsset", uid, actor="bob"))["active_leases"] == 0
    assert core.state_token() == before
    # A submit is still signed (and here cannot be).
    with pytest.raises(AssertionError, match="signed"):
        await ledgers["UiO"].submit("RequestLease", uid, "60", "x", actor="bob")
    assert core.state_token() == before


async def test_a_query_still_reports_contract_errors(
    ledgers: dict[str, EmbeddedLedger],
) -> None:
    with pytest.raises(LedgerError) as info:
        await ledgers["UiS"].evaluate("QueryAssets", '{"bookmark": "bm90LWFuLWFzc2V0"}', actor="r")
    assert (info.value.code, info.value.message) == (
        "INVALID_ARGUMENT",
        "bookmark: is not a bookmark returned by QueryAssets; start again without it",
    )
    with pytest.raises(LedgerError) as info:
        await ledgers["UiS"].evaluate("GetAsset", "missing", actor="r")
    assert (info.value.code, info.value.message) == (
        "ASSET_NOT_FOUND",
        "asset 'missing' does not exist",
    )


async def test_state_token_changes_with_every_commit_from_any_core(
    ledgers: dict[str, EmbeddedLedger], uid: str, tmp_path: Path
) -> None:
    core = ledgers["UiS"].core
    empty = core.state_token()
    assert empty == (0, "")
    await ledgers["UiS"].submit("RegisterAsset", asset_json(uid), actor="admin")
    one = core.state_token()
    assert one == (1, "")
    await ledgers["UiO"].evaluate("QueryAssets", "{}", actor="bob")
    assert core.state_token() == one
    # Another core on the same file stands for another process writing to it.
    other = LedgerCore(tmp_path / "l.db")
    try:
        other.submit(ledgers["UiB"].identity, "RegisterAsset", [asset_json(uid + "x")], "eve")
    finally:
        other.close()
    assert core.state_token() == (2, "")


async def test_state_token_names_the_next_expiry_and_moves_past_it(
    ledgers: dict[str, EmbeddedLedger], uid: str, clock: Clock
) -> None:
    core = ledgers["UiS"].core
    await ledgers["UiS"].submit(
        "RegisterAsset",
        asset_json(uid, policy={"max_duration_s": 3600, "approval_required": True}),
        actor="admin",
    )
    short = await ledgers["UiS"].submit("RequestLease", uid, "60", "x", actor="alice")
    long = await ledgers["UiS"].submit("RequestLease", uid, "600", "x", actor="alice")
    pending = await ledgers["UiO"].submit("RequestLease", uid, "30", "x", actor="bob")
    assert pending["state"] == "pending"  # no expiry yet, so it moves no token
    assert core.state_token() == (4, short["expires_at"])
    clock.advance(30)
    assert core.state_token() == (4, short["expires_at"])
    clock.advance(31)  # the short lease has expired; nothing was committed
    assert core.state_token() == (4, long["expires_at"])
    assert (await ledgers["UiS"].evaluate("GetAsset", uid, actor="r"))["active_leases"] == 1
    clock.advance(600)
    assert core.state_token() == (4, "")
    assert (await ledgers["UiS"].evaluate("GetAsset", uid, actor="r"))["active_leases"] == 0
    approved = await ledgers["UiS"].submit("ApproveLease", pending["id"], actor="admin")
    assert core.state_token() == (5, approved["expires_at"])

"""The broker's dataset page cache never serves a page older than the ledger.

A page is kept with the embedded ledger's state token (head sequence, next lease expiry)
and served only while the ledger still answers that token. These tests change the ledger
in every way a page can go stale (a commit through this broker, a commit by another
process, a lease passing its expiry with nothing committed, a commit while the page was
being made) and check the next page against one made without the cache.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from dshare_hub.broker.app import BrokerApp
from dshare_hub.broker.errors import ApiError
from dshare_hub.broker.service import Broker
from dshare_hub.broker.views import Caller
from dshare_hub.keys.kek import generate_kek_line
from dshare_hub.ledger import Ledger
from dshare_hub.ledger import core as core_module
from dshare_hub.ledger.core import LedgerCore
from dshare_hub.ledger.embedded import EmbeddedLedger

pytestmark = pytest.mark.asyncio

PREFIX = "/services/dshare-uis/"
READ, LEASE, ADMIN = "custom:dshare:read", "custom:dshare:lease", "custom:dshare:admin"
SCIENTIST = Caller("sam", "UiS", ("scientist",), frozenset({READ, LEASE}))
ADMIN_CALLER = Caller("ada", "UiS", ("admin",), frozenset({READ, LEASE, ADMIN}))


@dataclass
class World:
    root: Path
    ledger: EmbeddedLedger
    broker: Broker
    app: Any


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[timedelta]:
    """The ledger's clock offset; tests move it forward instead of sleeping."""
    offset = [timedelta(0)]
    real = core_module.datetime

    class Shifted(real):  # type: ignore[misc,valid-type]
        @classmethod
        def now(cls, tz: Any = None) -> datetime:
            return real.now(tz) + offset[0]

    monkeypatch.setattr(core_module, "datetime", Shifted)
    return offset


@pytest_asyncio.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    kek = tmp_path / "kek"
    kek.write_text(generate_kek_line() + "\n")
    config = BrokerApp(
        org="UiS",
        data_dir=str(tmp_path / "broker"),
        ledger_db=str(tmp_path / "ledger.sqlite"),
        identity_dir=str(tmp_path / "identities"),
        kek_file=str(kek),
        base_url=PREFIX,
    )
    ledger = EmbeddedLedger.open(config.ledger_db, config.identity_dir, "UiS")
    app, broker, _reaper = config.build(ledger)
    yield World(tmp_path, ledger, broker, app)
    await ledger.close()


def dataset_in(asset_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": asset_id,
        "name": f"Dataset {asset_id}",
        "description": "survey answers",
        "storage": {"type": "local", "details": {"path": f"/srv/data/{asset_id}"}},
        **fields,
    }


async def page(broker: Broker, **params: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(await broker.list_datasets_json(SCIENTIST, params))
    return body


async def uncached(broker: Broker, **params: str) -> dict[str, Any]:
    size, broker.pages.size = broker.pages.size, 0
    try:
        return await page(broker, **params)
    finally:
        broker.pages.size = size


async def same_as_uncached(broker: Broker, **params: str) -> dict[str, Any]:
    got = await page(broker, **params)
    assert got == await uncached(broker, **params)
    return got


async def test_a_repeated_page_is_served_from_the_cache(world: World) -> None:
    await world.broker.register_dataset(ADMIN_CALLER, dataset_in("ds-a"))
    first = await world.broker.list_datasets_json(SCIENTIST, {"limit": "10"})
    second = await world.broker.list_datasets_json(SCIENTIST, {"limit": "10"})
    assert first == second
    assert (world.broker.pages.misses, world.broker.pages.hits) == (1, 1)
    assert [d["id"] for d in json.loads(first)["items"]] == ["ds-a"]
    # Sealed storage details never reach a page, cached or not.
    assert b"sealed" not in first and b"/srv/data" not in first


async def test_no_page_is_older_than_the_last_commit(world: World, clock: list) -> None:
    broker = world.broker
    await broker.register_dataset(
        ADMIN_CALLER, dataset_in("ds-a", policy={"exclusive": True, "max_duration_s": 600})
    )
    assert [d["id"] for d in (await same_as_uncached(broker))["items"]] == ["ds-a"]

    await broker.register_dataset(ADMIN_CALLER, dataset_in("ds-b"))
    assert [d["id"] for d in (await same_as_uncached(broker))["items"]] == ["ds-a", "ds-b"]

    await broker.update_dataset(ADMIN_CALLER, "ds-b", {"name": "renamed"})
    assert (await same_as_uncached(broker))["items"][1]["name"] == "renamed"

    lease = await broker.request_lease(SCIENTIST, "ds-a", 300, "study")
    got = await same_as_uncached(broker)
    assert got["items"][0]["active_leases"] == 1
    assert (await same_as_uncached(broker, available="true"))["items"][0]["id"] == "ds-b"

    await broker.release_lease(SCIENTIST, lease["id"])
    assert (await same_as_uncached(broker))["items"][0]["active_leases"] == 0
    assert len((await same_as_uncached(broker, available="true"))["items"]) == 2

    await broker.retire_dataset(ADMIN_CALLER, "ds-b")
    assert [d["id"] for d in (await same_as_uncached(broker))["items"]] == ["ds-a"]
    assert world.broker.pages.hits == 0  # every page above followed a commit


async def test_a_commit_by_another_process_is_seen_at_once(world: World) -> None:
    await world.broker.register_dataset(ADMIN_CALLER, dataset_in("ds-a"))
    assert len((await page(world.broker))["items"]) == 1
    assert len((await page(world.broker))["items"]) == 1
    assert world.broker.pages.hits == 1
    # Another core on the same ledger file: what another broker process does.
    other = LedgerCore(world.root / "ledger.sqlite")
    try:
        other.submit(
            world.ledger.identity,
            "RegisterAsset",
            [
                json.dumps(
                    {
                        "id": "ds-z",
                        "name": "from elsewhere",
                        "storage_type": "local",
                        "sealed_storage": "dshare-seal:v1:1:AAAA",
                    }
                )
            ],
            "ada",
        )
    finally:
        other.close()
    got = await same_as_uncached(world.broker)
    assert [d["id"] for d in got["items"]] == ["ds-a", "ds-z"]


async def test_a_lease_passing_its_expiry_changes_the_page_without_a_commit(
    world: World, clock: list
) -> None:
    broker = world.broker
    await broker.register_dataset(
        ADMIN_CALLER, dataset_in("ds-a", policy={"exclusive": True, "max_duration_s": 600})
    )
    await broker.request_lease(SCIENTIST, "ds-a", 60, "study")
    assert (await page(broker))["items"][0]["active_leases"] == 1
    assert (await page(broker, available="true"))["items"] == []
    assert (await page(broker))["items"][0]["active_leases"] == 1
    hits = broker.pages.hits
    assert hits == 1
    clock[0] += timedelta(seconds=61)
    got = await same_as_uncached(broker)
    assert got["items"][0]["active_leases"] == 0
    assert [d["id"] for d in (await page(broker, available="true"))["items"]] == ["ds-a"]
    assert broker.pages.hits == hits  # both pages were made again


async def test_a_page_made_while_the_ledger_changed_is_not_kept(world: World) -> None:
    broker = world.broker
    await broker.register_dataset(ADMIN_CALLER, dataset_in("ds-a"))
    evaluate = world.ledger.evaluate
    commits = [dataset_in("ds-b")]

    async def commit_meanwhile(fn: str, *args: str, actor: str) -> Any:
        result = await evaluate(fn, *args, actor=actor)
        if commits:  # a commit lands after the query read the ledger, before it returns
            await broker.register_dataset(ADMIN_CALLER, commits.pop())
        return result

    setattr(world.ledger, "evaluate", commit_meanwhile)  # noqa: B010 - a method replaced for one test
    assert [d["id"] for d in (await page(broker))["items"]] == ["ds-a"]
    assert len(broker.pages) == 0
    assert [d["id"] for d in (await page(broker))["items"]] == ["ds-a", "ds-b"]
    assert (broker.pages.misses, broker.pages.hits) == (2, 0)
    assert [d["id"] for d in (await page(broker))["items"]] == ["ds-a", "ds-b"]
    assert broker.pages.hits == 1


async def test_concurrent_requests_for_a_missing_page_share_one_query(world: World) -> None:
    broker = world.broker
    for n in range(3):
        await broker.register_dataset(ADMIN_CALLER, dataset_in(f"ds-{n}"))
    calls = []
    evaluate = world.ledger.evaluate

    async def counted(fn: str, *args: str, actor: str) -> Any:
        calls.append(fn)
        return await evaluate(fn, *args, actor=actor)

    setattr(world.ledger, "evaluate", counted)  # noqa: B010 - a method replaced for one test
    bodies = await asyncio.gather(
        *(broker.list_datasets_json(SCIENTIST, {"q": "dataset"}) for _ in range(20))
    )
    assert calls == ["QueryAssets"]
    assert len(set(bodies)) == 1
    assert len(json.loads(bodies[0])["items"]) == 3
    assert (broker.pages.misses, broker.pages.hits) == (1, 19)


async def test_a_refused_page_is_neither_shared_nor_kept(world: World) -> None:
    broker = world.broker
    calls = []
    evaluate = world.ledger.evaluate

    async def counted(fn: str, *args: str, actor: str) -> Any:
        calls.append(fn)
        return await evaluate(fn, *args, actor=actor)

    setattr(world.ledger, "evaluate", counted)  # noqa: B010 - a method replaced for one test
    bad = {"bookmark": "bm90LWFuLWFzc2V0"}
    results = await asyncio.gather(
        *(broker.list_datasets_json(SCIENTIST, bad) for _ in range(3)), return_exceptions=True
    )
    for error in results:
        assert isinstance(error, ApiError)
        assert (error.code, error.message, error.status) == (
            "INVALID_ARGUMENT",
            "bookmark: is not a bookmark returned by QueryAssets; start again without it",
            400,
        )
    assert calls == ["QueryAssets"] * 3  # each request tried for itself
    assert len(broker.pages) == 0


async def test_the_cache_holds_at_most_its_size(world: World) -> None:
    broker = world.broker
    broker.pages.size = 2
    await broker.register_dataset(ADMIN_CALLER, dataset_in("ds-a"))
    for q in ("a", "b", "c"):
        await page(broker, q=q)
    assert len(broker.pages) == 2
    await page(broker, q="c")
    await page(broker, q="a")  # the oldest was dropped: made again
    assert (broker.pages.misses, broker.pages.hits) == (4, 1)


async def test_every_request_is_authorized_even_when_its_page_is_cached(world: World) -> None:
    broker = world.broker
    await page(broker)
    await page(broker)
    stranger = Caller("olav", "UiO", ("scientist",), frozenset({READ}))
    no_scope = Caller("nils", "UiS", ("scientist",), frozenset())
    nobody = Caller("ghost", None, (), frozenset({READ}))
    expected = {
        stranger: "this is the broker of UiS; user 'olav' belongs to UiO and must use the "
        "dshare-uio service",
        no_scope: "your token lacks the scope custom:dshare:read; ask an administrator of UiS "
        "for the role that grants it",
        nobody: "user 'ghost' belongs to no organization (exactly one 'org:<Org>' group is "
        "required); ask an administrator",
    }
    for caller, message in expected.items():
        with pytest.raises(ApiError) as info:
            await broker.list_datasets_json(caller, {})
        assert (info.value.code, info.value.message) == ("FORBIDDEN", message)


async def test_bad_filters_are_refused_before_the_cache(world: World) -> None:
    for params, field, message in (
        ({"limit": "many"}, "limit", "limit: must be a whole number (1-200)"),
        ({"available": "maybe"}, "available", "available: must be true or false"),
    ):
        with pytest.raises(ApiError) as info:
            await world.broker.list_datasets_json(SCIENTIST, params)
        assert (info.value.code, info.value.message, info.value.field) == (
            "INVALID_ARGUMENT",
            message,
            field,
        )
    assert len(world.broker.pages) == 0


class PlainLedger(Ledger):
    """A ledger that cannot tell whether anything changed (as the Fabric client)."""

    def __init__(self, inner: Ledger) -> None:
        self.inner = inner
        self.queries = 0

    async def submit(self, fn: str, *args: str, actor: str) -> Any:
        return await self.inner.submit(fn, *args, actor=actor)

    async def evaluate(self, fn: str, *args: str, actor: str) -> Any:
        self.queries += 1
        return await self.inner.evaluate(fn, *args, actor=actor)


async def test_a_ledger_without_a_state_token_is_asked_every_time(world: World) -> None:
    plain = PlainLedger(world.ledger)
    world.broker.ledger = plain
    await world.broker.register_dataset(ADMIN_CALLER, dataset_in("ds-a"))
    for _ in range(3):
        assert [d["id"] for d in (await page(world.broker))["items"]] == ["ds-a"]
    assert plain.queries == 3
    assert len(world.broker.pages) == 0


class TokenAuth:
    """The hub's answer for two tokens, as HubAuth's cache holds it."""

    access_scopes = {"access:services!service=dshare-uis"}
    users = {
        "sam-token": ("sam", ["org:UiS", "role:scientist"], [READ, LEASE]),
        "ada-token": ("ada", ["org:UiS", "role:admin"], [READ, LEASE, ADMIN]),
    }

    async def _user(self, token: str) -> dict[str, Any] | None:
        if token not in self.users:
            return None
        name, groups, scopes = self.users[token]
        return {
            "kind": "user",
            "name": name,
            "groups": groups,
            "scopes": ["access:services!service=dshare-uis", *scopes],
        }

    def get_user(self, handler: Any, *, sync: bool = True) -> Any:
        header = handler.request.headers.get("Authorization", "")
        return self._user(header.removeprefix("token "))

    def check_scopes(self, required: Any, model: dict[str, Any]) -> set[str]:
        return set(required) & set(model["scopes"])


async def test_over_http_a_new_dataset_shows_on_the_next_listing(world: World) -> None:
    world.app.settings["hub_auth"] = TokenAuth()
    sock, port = bind_unused_port()
    server = HTTPServer(world.app)
    server.add_sockets([sock])
    base = f"http://127.0.0.1:{port}{PREFIX}api/v1/datasets"
    client = AsyncHTTPClient()

    async def call(method: str, token: str, body: Any = None, query: str = "") -> Any:
        request = HTTPRequest(
            base + query,
            method=method,
            headers={"Authorization": f"token {token}"},
            body=None if body is None else json.dumps(body),
        )
        return await client.fetch(request, raise_error=False)

    try:
        empty = await call("GET", "sam-token", query="?limit=5")
        assert (empty.code, json.loads(empty.body)) == (200, {"items": [], "bookmark": ""})
        assert empty.headers["Content-Type"] == "application/json"
        assert empty.headers["Cache-Control"] == "no-store"
        created = await call("POST", "ada-token", dataset_in("ds-web"))
        assert created.code == 201
        listed = await call("GET", "sam-token", query="?limit=5")
        assert [d["id"] for d in json.loads(listed.body)["items"]] == ["ds-web"]
        again = await call("GET", "sam-token", query="?limit=5")
        assert again.body == listed.body
        refused = await call("GET", "wrong-token", query="?limit=5")
        assert (refused.code, json.loads(refused.body)["code"]) == (401, "UNAUTHENTICATED")
        bad = await call("GET", "sam-token", query="?limit=0")
        assert bad.code == 400
        assert json.loads(bad.body)["code"] == "INVALID_ARGUMENT"
    finally:
        server.stop()


async def test_a_closed_ledger_is_a_ledger_error_not_a_crash(world: World) -> None:
    await page(world.broker)
    await world.ledger.close()
    with pytest.raises(ApiError) as info:
        await page(world.broker)
    assert (info.value.code, info.value.status, info.value.message) == (
        "LEDGER_ERROR",
        500,
        "the ledger refused the call: this ledger connection is closed; open it again",
    )

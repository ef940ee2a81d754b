"""Fixtures: a test double of the org broker (NOT the real broker) and fake hub users."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
from tornado import httpserver, netutil, web

TOKEN = "server-token-for-tests"


@dataclass
class BrokerDouble:
    """Answers the broker routes the spawners call, from canned data; records each call."""

    url: str = ""
    leases: list[dict[str, Any]] = field(default_factory=list)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    mounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    views: list[dict[str, Any]] = field(default_factory=list)  # POST views items
    fail: dict[str, tuple[int, dict[str, Any] | str]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)


class _Handler(web.RequestHandler):
    def initialize(self, broker: BrokerDouble) -> None:
        self.broker = broker

    def _answer(self, route: str, default: Any, status: int = 200) -> None:
        self.broker.calls.append(f"{self.request.method} {self.request.uri}")
        if self.request.headers.get("Authorization") != f"token {TOKEN}":
            self.set_status(401)
            self.finish({"code": "UNAUTHORIZED", "message": "no or bad token"})
            return
        if route in self.broker.fail:
            code, body = self.broker.fail[route]
            self.set_status(code)
            self.finish(body if isinstance(body, str) else json.dumps(body))
            return
        self.set_status(status)
        self.finish(json.dumps(default))

    def get(self, path: str) -> None:
        if path == "leases":
            assert self.get_argument("scope") == "mine"
            self._answer("leases", {"items": self.broker.leases})
        elif path.startswith("datasets/"):
            dataset = self.broker.datasets.get(path.split("/", 1)[1])
            if dataset is None:
                self._answer("dataset", {"code": "ASSET_NOT_FOUND", "message": "no such"}, 404)
            else:
                self._answer("dataset", dataset)
        else:
            self._answer("other", {}, 404)

    def post(self, path: str) -> None:
        body = json.loads(self.request.body or b"{}")
        self.broker.bodies.append(body)
        if path == "runs":
            run = {"id": "run-session-1", "name": body["name"], "lease_ids": body["lease_ids"]}
            mounts = {
                lid: self.broker.mounts[lid]
                for lid in body["lease_ids"]
                if lid in self.broker.mounts
            }
            self._answer("runs", {"run": run, "mounts": mounts}, 201)
        elif path == "views":
            self._answer("views", {"items": self.broker.views, "unavailable": []})
        elif path.endswith("/finish"):
            self._answer("finish", {"id": path.split("/")[1], "state": "finished"})
        else:
            self._answer("other", {}, 404)


@pytest_asyncio.fixture
async def broker() -> AsyncIterator[BrokerDouble]:
    double = BrokerDouble()
    app = web.Application([(r"/services/dshare-uis/api/v1/(.*)", _Handler, {"broker": double})])
    sockets = netutil.bind_sockets(0, "127.0.0.1")
    server = httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    double.url = f"http://127.0.0.1:{port}/"
    yield double
    server.stop()
    await server.close_all_connections()


def make_user(name: str = "ann", groups: tuple[str, ...] = ("org:UiS", "role:scientist")) -> Any:
    return SimpleNamespace(
        name=name,
        id=7,
        url=f"/user/{name}/",
        escaped_name=name,
        groups=[SimpleNamespace(name=g) for g in groups],
    )


def make_hub() -> Any:
    return SimpleNamespace(
        url="http://127.0.0.1:8081/hub/",
        base_url="/hub/",
        api_url="http://127.0.0.1:8081/hub/api",
        public_host="",
    )


def dataset(asset_id: str, name: str, *, interactive: bool, skeleton: list[str]) -> dict[str, Any]:
    return {
        "id": asset_id,
        "name": name,
        "owner_org": "UiO",
        "storage_type": "nfs",
        "skeleton": [{"path": p, "size": 10} for p in skeleton],
        "policy": {"interactive": interactive, "max_duration_s": 3600},
    }


def lease(lease_id: str, asset_id: str, state: str = "active") -> dict[str, Any]:
    return {
        "id": lease_id,
        "asset_id": asset_id,
        "state": state,
        "expires_at": "2030-01-01T00:00:00Z",
    }


@pytest.fixture
def seeded(broker: BrokerDouble) -> BrokerDouble:
    """Ann leases Weather (interactive) and Census (workflows only); one lease has ended."""
    broker.datasets = {
        "weather": dataset("weather", "Weather", interactive=True, skeleton=["2020/jan.csv"]),
        "census": dataset(
            "census", "Census 2020", interactive=False, skeleton=["a/b.csv", "c/", "../evil"]
        ),
        "old": dataset("old", "Old", interactive=False, skeleton=["x.csv"]),
    }
    broker.leases = [lease("L1", "weather"), lease("L2", "census"), lease("L0", "old", "expired")]
    return broker

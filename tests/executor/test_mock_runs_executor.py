"""Mock runs in the executor: the jobs read mocks the executor wrote from the schema, in
the same sandbox as a real run; outputs are released without checks under mock-runs/;
a mock submission can never reach an owner's data."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from dshare_hub.broker.materialize import LocalMaterializer
from dshare_hub.demo.content import PAYMENT_COLUMNS
from dshare_hub.executor.jail import Sandbox

from .conftest import home_of
from .service_world import World, data_dir, executor_world, later, manifest, run_body

READ_MOCK = """
head -1 /data/words/transactions.csv > header.txt
tail -n +2 /data/words/transactions.csv | wc -l | tr -d ' ' > rows.txt
cut -d, -f4 /data/words/transactions.csv | sed -n 2,4p > ids.txt
ls -A /data/words > listing.txt
find /data/words -mindepth 1 | sort > tree.txt
if touch /data/words/planted 2>/dev/null; then echo writable; else echo read-only; fi > w.txt
"""


def mock_mount(rows: int = 25, **over: Any) -> dict[str, Any]:
    mount = {
        "kind": "mock",
        "dataset_id": "uio-payments",
        "dataset_name": "UiO mobile payments",
        "owner_org": "UiO",
        "columns": PAYMENT_COLUMNS,
        "skeleton": [
            {"path": "transactions.csv", "size": 123456},
            {"path": "empty/", "size": 0},
            {"path": "docs/readme.txt", "size": 10},
        ],
        "rows": rows,
    }
    mount.update(over)
    return mount


def mock_body(run_id: str, home: Path, mount: dict[str, Any], **over: Any) -> dict[str, Any]:
    body = run_body(run_id, home, "unused", manifest(run_id, READ_MOCK, "true"), "", **over)
    body["mounts"] = {"dshare-lease-1": mount}
    body["mock"] = True
    body.update(over)
    return body


@pytest_asyncio.fixture
async def world(world: Path, sandbox: Sandbox) -> AsyncIterator[tuple[World, Path]]:
    async with executor_world(world, sandbox) as running:
        yield running


async def wait_gate(w: World, run_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = await w.call("GET", f"/runs/{run_id}")
        assert r.code == 200, r.body
        view = json.loads(r.body)
        if view["gate_done"]:
            return view
        await asyncio.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish: {view}")


@pytest.mark.asyncio
async def test_a_mock_run_reads_the_mock_and_its_outputs_arrive_labelled(world) -> None:
    w, _broker_dir = world
    home = home_of(w.top)
    r = await w.call("POST", "/runs", "uis-token", mock_body("M-run1", home, mock_mount(25)))
    assert r.code == 202, r.body
    view = await wait_gate(w, "M-run1")
    assert view["state"] == "succeeded", view
    assert view["mock"] is True
    out = home / "mock-runs" / "M-run1"
    names = [c["name"] for c in PAYMENT_COLUMNS]
    assert (out / "header.txt").read_text().strip() == ",".join(names)
    assert (out / "rows.txt").read_text().strip() == "25"
    assert all(re.fullmatch(r"C\d{9}", x) for x in (out / "ids.txt").read_text().split())
    assert (out / "listing.txt").read_text().split() == ["docs", "empty", "transactions.csv"]
    assert (out / "tree.txt").read_text().split() == [
        "/data/words/docs",
        "/data/words/docs/readme.txt",
        "/data/words/empty",
        "/data/words/transactions.csv",
    ]
    assert (out / "w.txt").read_text().strip() == "read-only"
    assert "mock data: synthetic rows" in (out / "MOCK.txt").read_text()
    # Released without checks, under mock-runs/<id>/, never where real results go.
    assert not (home / "header.txt").exists()
    released = {o["path"]: (o["decision"], o["checks"]) for o in view["outputs"]}
    assert released["mock-runs/M-run1/header.txt"] == ("released", [])
    assert all(p.startswith("mock-runs/M-run1/") for p in released)
    # The mock is the one the generator makes: the same rows everywhere.
    rows = list(csv.reader(io.StringIO((out / "ids.txt").read_text())))
    assert len(rows) == 3
    # The mock views went with the run, as lease views do.
    run_dir = w.web_app.settings["executor"].store.run_dir("M-run1")
    assert run_dir.is_dir() and not (run_dir / "data").exists()


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        # A mock run that names a real handle: refused before anything is opened.
        (
            {"handle": "HANDLE"},
            400,
            "mounts.dshare-lease-1.handle: is not a field of a mock mount; a mock mount "
            "carries a dataset's public schema only (columns, dataset_id, dataset_name, kind, "
            "owner_org, rows, skeleton), never a handle to its data",
        ),
        (
            {"kind": "lease"},
            400,
            "mounts.dshare-lease-1.kind: a mock run mounts mocks only: every mount must be of "
            "kind 'mock' (a dataset's public schema, no handle)",
        ),
        (
            {"rows": 100_001},
            400,
            "mounts.dshare-lease-1.rows: must be a whole number of rows from 0 to 100000",
        ),
        (
            {"skeleton": [{"path": "../../etc/passwd", "size": 1}]},
            400,
            "mounts.dshare-lease-1.skeleton[0].path: must be a relative path without '..'",
        ),
        (
            {"columns": [{"name": "a", "type": "integer", "mock": {"min": 2, "max": 1}}]},
            400,
            "mounts.dshare-lease-1.columns[0].mock.max: must not be below min (2), got 1",
        ),
    ],
)
@pytest.mark.asyncio
async def test_a_mock_submission_never_reaches_real_data(world, change, status, message) -> None:
    w, broker_dir = world
    home = home_of(w.top)
    data = data_dir(w.top)
    # A real, materialized handle of this very run id exists: a forged mock must not use it.
    made = await LocalMaterializer(broker_dir).materialize(
        asset={"id": "ds-words", "name": "words", "storage_type": "local"},
        details={"path": str(data)},
        lease={"id": "lease-1", "expires_at": later()},
        run_id="M-forged",
        user="sam",
    )
    mount = mock_mount()
    mount.update({k: made["handle"] if v == "HANDLE" else v for k, v in change.items()})
    r = await w.call("POST", "/runs", "uis-token", mock_body("M-forged", home, mount))
    assert r.code == status, r.body
    assert json.loads(r.body)["message"] == message
    assert (await w.call("GET", "/runs/M-forged")).code == 404  # nothing was created


@pytest.mark.asyncio
async def test_a_real_run_cannot_carry_a_mock_mount_nor_say_mock_loosely(world) -> None:
    w, _ = world
    home = home_of(w.top)
    body = mock_body("run-mixed", home, mock_mount())
    body.pop("mock")
    r = await w.call("POST", "/runs", "uis-token", body)
    assert r.code == 400
    assert json.loads(r.body)["message"] == (
        "mounts.dshare-lease-1.kind: a mock mount belongs to a mock run only; send mock: true "
        "with mock mounts alone"
    )
    body["mock"] = "yes"
    r = await w.call("POST", "/runs", "uis-token", body)
    assert json.loads(r.body)["message"] == "mock: must be true (a run on mocks) or false"


@pytest.mark.asyncio
async def test_one_scientist_cannot_flood_the_executor_with_mock_runs(world) -> None:
    """A mock run needs no lease: without a cap one scientist's sleeping mock runs would
    hold every job identity of the pool. The fourth at once is refused, nothing of it is
    created, and once one of the three ends another may start."""
    w, _ = world
    home = home_of(w.top)
    going = [f"M-flood{n}" for n in range(4)]

    def body(run_id: str) -> dict[str, Any]:
        return mock_body(run_id, home, mock_mount(), manifest=manifest(run_id, "sleep 60", "true"))

    for run_id in going[:3]:
        r = await w.call("POST", "/runs", "uis-token", body(run_id))
        assert r.code == 202, r.body
    r = await w.call("POST", "/runs", "uis-token", body(going[3]))
    assert r.code == 429, r.body
    assert json.loads(r.body) == {
        "code": "TOO_MANY_RUNS",
        "message": "you have 3 mock runs going and at most 3 may run at once; wait for one "
        "to finish, or interrupt the kernel that runs it to cancel it",
    }
    assert (await w.call("GET", f"/runs/{going[3]}")).code == 404
    assert (await w.call("POST", f"/runs/{going[0]}/cancel", "uis-token")).code == 200
    await wait_gate(w, going[0], timeout=30)
    assert (await w.call("POST", "/runs", "uis-token", body(going[3]))).code == 202
    for run_id in going[1:]:
        assert (await w.call("POST", f"/runs/{run_id}/cancel", "uis-token")).code == 200
    for run_id in going[1:]:
        assert (await wait_gate(w, run_id, timeout=30))["state"] == "cancelled"

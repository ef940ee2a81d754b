"""50 processes lease one exclusive asset at the same moment: exactly one wins."""

from __future__ import annotations

import json
import multiprocessing

from ledger_helpers import asset_json
from ledger_workers import lease_once

from dshare_hub.ledger.core import LedgerCore
from dshare_hub.ledger.identity import create_org
from dshare_hub.ledger.verify import verify

RACERS = 50


def test_fifty_processes_one_exclusive_lease(tmp_path):
    db = tmp_path / "ledger.db"
    ids = tmp_path / "identities"
    owner = create_org(db, "UiS", identity_dir=ids)
    create_org(db, "UiO", identity_dir=ids)
    core = LedgerCore(db)
    policy = {"exclusive": True, "max_duration_s": 3600}
    core.submit(owner, "RegisterAsset", [asset_json("hot", policy=policy)], "admin")

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(RACERS)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=lease_once,
            args=(str(db), str(ids), "UiO", f"user{i}", "hot", barrier, results),
        )
        for i in range(RACERS)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    granted = [o for o in outcomes if o[1] == "granted"]
    refused = [o for o in outcomes if o[1] != "granted"]
    assert len(granted) == 1
    assert len(refused) == RACERS - 1
    assert {(code, msg) for _actor, code, msg in refused} == {
        (
            "LEASE_CONFLICT",
            "asset 'hot' is exclusive and already leased; try again when a lease ends",
        )
    }
    winner_actor, _, lease_id = granted[0]
    leases = json.loads(core.evaluate(owner, "ListLeases", ['{"asset_id": "hot"}'], "admin"))
    assert [(x["id"], x["lessee_user"], x["state"]) for x in leases["items"]] == [
        (lease_id, winner_actor, "active")
    ]
    core.close()
    report = verify(db)
    assert report.ok, report.problems
    assert report.entries == 2  # the registration and the one granted lease

"""Races: many lessees ask for one exclusive dataset at the same instant; one wins."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from hubapi import Reply
from proof_support import Record, count, register
from proof_world import World


def test_concurrent_lease_attempts_on_an_exclusive_asset_have_one_winner(
    world: World, people: dict[str, str], tmp_path, record: Record
) -> None:
    register(world, people["uis_admin"], "proof-exclusive", tmp_path / "data", exclusive=True)
    attempts = count(100, 100)
    callers = [("UiO", people["uio_sci"]), ("UiS", people["uis_sci"])]
    barrier = threading.Barrier(attempts)

    def attempt(i: int) -> Reply:
        org, token = callers[i % len(callers)]
        barrier.wait(timeout=60)
        return world.broker(
            org,
            "POST",
            "/leases",
            token,
            {"dataset_id": "proof-exclusive", "duration_s": 600, "purpose": f"race {i}"},
        )

    with ThreadPoolExecutor(attempts) as pool:
        replies = list(pool.map(attempt, range(attempts)))

    outcomes = Counter(
        (r.status, r.body.get("code") if r.status != 201 else "granted") for r in replies
    )
    assert outcomes == {(201, "granted"): 1, (409, "LEASE_CONFLICT"): attempts - 1}, outcomes
    loser = next(r for r in replies if r.status == 409)
    assert "exclusive and already leased" in loser.body["message"]
    winner = next(r.body for r in replies if r.status == 201)
    assert winner["state"] == "active"

    # The ledger agrees: one active lease of the asset, held by the winner.
    active = []
    for org, token in callers:
        leases = world.broker(org, "GET", "/leases?scope=org&dataset=proof-exclusive", token)
        assert leases.status == 200, leases.text
        active += [x["id"] for x in leases.body["items"] if x["state"] == "active"]
    assert active == [winner["id"]]
    dataset = world.broker("UiS", "GET", "/datasets/proof-exclusive", people["uis_sci"])
    assert dataset.body["active_leases"] == 1, dataset.text
    record(
        "race",
        {"attempts": attempts, "granted": 1, "conflicts": outcomes[(409, "LEASE_CONFLICT")]},
    )

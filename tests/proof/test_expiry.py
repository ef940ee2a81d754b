"""Expiry: a lease that runs out is expired on the ledger and its materialized mount is
removed by the owner's reaper, also when the owner's broker was down at the moment of
expiry. The delay after expiry is recorded for the report (judged there, not here)."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from pathlib import Path

from proof_support import Record, register
from proof_world import World

SPEC = hashlib.sha256(b"proof jobs").hexdigest()


def lease_and_mount(world: World, token: str, dataset: str, seconds: int) -> tuple[dict, Path]:
    """A UiO scientist's lease of a UiS dataset, mounted by UiS's broker for a run."""
    lease = world.broker(
        "UiO",
        "POST",
        "/leases",
        token,
        {"dataset_id": dataset, "duration_s": seconds, "purpose": "expiry"},
    )
    assert lease.status == 201, lease.text
    run = world.broker(
        "UiO",
        "POST",
        "/runs",
        token,
        {"name": "expiry", "lease_ids": [lease.body["id"]], "spec_sha256": SPEC},
    )
    assert run.status == 201, run.text
    handle = Path(run.body["mounts"][lease.body["id"]]["handle"])
    assert handle.exists() and (handle / "words.txt").read_text() == "fjord fjord mountain\n"
    return lease.body, handle


def expiry_of(lease: dict) -> float:
    expires = dt.datetime.strptime(lease["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return expires.replace(tzinfo=dt.UTC).timestamp()


def wait_until_reaped(world: World, token: str, lease: dict, handle: Path) -> float:
    """Poll (up to a generous bound) until the mount is gone and the ledger says expired;
    return the epoch time at which both held."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        gone = not handle.exists() and not handle.is_symlink()
        if gone:
            leases = world.broker("UiO", "GET", "/leases?scope=mine", token).body["items"]
            if [x["state"] for x in leases if x["id"] == lease["id"]] == ["expired"]:
                return time.time()
        time.sleep(0.1)
    raise AssertionError(f"lease {lease['id']} was not expired and unmounted within 60 s")


def test_expired_lease_is_released_and_unmounted(
    world: World, people: dict[str, str], tmp_path: Path, record: Record
) -> None:
    register(world, people["uis_admin"], "proof-expiry", tmp_path / "data")
    lease, handle = lease_and_mount(world, people["uio_sci"], "proof-expiry", 3)
    done = wait_until_reaped(world, people["uio_sci"], lease, handle)
    again = world.broker(
        "UiO",
        "POST",
        "/runs",
        people["uio_sci"],
        {"name": "late", "lease_ids": [lease["id"]], "spec_sha256": SPEC},
    )
    assert (again.status, again.body["code"]) == (410, "LEASE_EXPIRED")
    record(
        "expiry",
        {
            "reaper_interval_s": world.reaper_interval,
            "delay_after_expiry_s": round(done - expiry_of(lease), 2),
        },
    )


def test_lease_expiring_while_the_owner_broker_is_down_is_reaped_after_restart(
    world: World, people: dict[str, str], tmp_path: Path, record: Record
) -> None:
    register(world, people["uis_admin"], "proof-expiry-restart", tmp_path / "data")
    lease, handle = lease_and_mount(world, people["uio_sci"], "proof-expiry-restart", 2)
    world.kill_broker("UiS")
    while time.time() < expiry_of(lease) + 1:
        time.sleep(0.1)
    # Still mounted: nobody was there to remove it.
    assert handle.exists()
    restarted = time.time()
    world.start_broker("UiS")
    done = wait_until_reaped(world, people["uio_sci"], lease, handle)
    record(
        "expiry_restart",
        {
            "reaper_interval_s": world.reaper_interval,
            "delay_after_restart_s": round(done - restarted, 2),
        },
    )

"""Crashes: brokers (the embedded ledger's writers) are killed -9 in a lease storm.

After the restart the ledger must verify, every lease a client was told was granted must
be on it, SQLite must find no damage, and the brokers must take new work at once.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from proof_support import Record, count, register
from proof_world import ORGS, World

DATASET = "proof-storm"


def storm(
    world: World,
    org: str,
    token: str,
    stop: threading.Event,
    granted: list[str],
    failures: list[int],
) -> None:
    """Ask for leases back to back until told to stop; remember every acknowledged one."""
    while not stop.is_set():
        try:
            reply = world.broker(
                org,
                "POST",
                "/leases",
                token,
                {"dataset_id": DATASET, "duration_s": 3600, "purpose": "storm"},
            )
        except OSError:
            failures.append(0)
            continue
        if reply.status == 201:
            granted.append(reply.body["id"])
        else:
            # 502/503 while the broker is down is what a client sees; never a 500.
            failures.append(reply.status)
            time.sleep(0.05)


def verify(world: World) -> subprocess.CompletedProcess[str]:
    """`dshare ledger verify` against every broker's checkpoints, torn by the kills or not."""
    witnesses = [arg for org in ORGS for arg in ("--witness", str(world.data_dir(org)))]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "dshare_hub.cli",
            "ledger",
            "verify",
            "--db",
            str(world.ledger_db),
            *witnesses,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_kill_9_in_a_lease_storm_loses_no_acknowledged_lease(
    world: World, people: dict[str, str], tmp_path, record: Record
) -> None:
    register(world, people["uis_admin"], DATASET, tmp_path / "data")
    rounds = count(2, 6)
    clients = [("UiO", people["uio_sci"]), ("UiS", people["uis_sci"])] * 2
    granted: list[str] = []
    failures: list[int] = []
    kills = 0
    for round_no in range(rounds):
        stop = threading.Event()
        threads = [
            threading.Thread(target=storm, args=(world, org, token, stop, granted, failures))
            for org, token in clients
        ]
        for thread in threads:
            thread.start()
        before = len(granted)
        deadline = time.monotonic() + 30
        while len(granted) < before + 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        # The broker that writes alternates: both write to the one ledger file.
        victim = ("UiO", "UiS")[round_no % 2]
        world.kill_broker(victim)
        kills += 1
        time.sleep(0.3)
        world.start_broker(victim)
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join(60)

    assert 500 not in failures
    result = verify(world)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK: ")
    assert result.stdout.strip().endswith(f"checkpoints of {', '.join(ORGS)}")

    integrity = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("
            "'PRAGMA integrity_check').fetchone()[0])",
            str(world.ledger_db),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert integrity.stdout.strip() == "ok"

    on_ledger: dict[str, str] = {}
    for org, token in (("UiO", people["uio_sci"]), ("UiS", people["uis_sci"])):
        reply = world.broker(org, "GET", f"/leases?scope=mine&dataset={DATASET}", token)
        assert reply.status == 200, reply.text
        on_ledger.update({x["id"]: x["state"] for x in reply.body["items"]})
    missing = [lease for lease in granted if lease not in on_ledger]
    assert missing == [], f"{len(missing)} acknowledged lease(s) missing after kill -9"
    assert {on_ledger[lease] for lease in granted} == {"active"}

    # Back at work at once: a new lease is granted and the dataset counts every lease.
    reply = world.broker(
        "UiO",
        "POST",
        "/leases",
        people["uio_sci"],
        {"dataset_id": DATASET, "duration_s": 60, "purpose": "after the crash"},
    )
    assert reply.status == 201, reply.text
    dataset = world.broker("UiS", "GET", f"/datasets/{DATASET}", people["uis_sci"])
    assert dataset.body["active_leases"] == len(on_ledger) + 1
    record(
        "crash",
        {
            "kills": kills,
            "acknowledged": len(granted),
            "on_ledger": len(on_ledger),
            "missing": len(missing),
            "refused_while_down": len(failures),
            "verify": result.stdout.strip().splitlines()[0],
        },
    )

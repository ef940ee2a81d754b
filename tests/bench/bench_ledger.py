"""Benchmark of the embedded ledger (not a test; run `python tests/bench/bench_ledger.py`).

Durable lease transactions (RequestLease: simulate, sign the endorsement, verify it at
commit, MVCC-check, append to the hash-chained log, sign the batch, fsync) per second with 1
and 8 writer processes, next to raw SQLite insert+commit at the same durability (WAL,
synchronous=FULL) measured in the same run; the same writers as brokers keeping their own
checkpoints (a witness each: the chain check before every commit and a signed checkpoint
after it) against the writers without; `verify` and a broker's start-up check per 1,000
entries; and a 50-asset QueryAssets page out of 10,000 assets. Prints markdown tables.
Each figure is the median of REPEATS runs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from dshare_hub.ledger.core import LedgerCore
from dshare_hub.ledger.identity import create_org, load_identity
from dshare_hub.ledger.verify import verify
from dshare_hub.ledger.witness import Witness

ASSETS = 200
REPEATS = 3


def _asset(asset_id: str, tag: str = "bench") -> str:
    return json.dumps(
        {
            "id": asset_id,
            "name": f"Dataset {asset_id}",
            "description": "benchmark asset with a realistic amount of metadata",
            "tags": [tag],
            "storage_type": "local",
            "sealed_storage": "v1." + "x" * 200,
            "columns": [{"name": f"c{i}", "type": "string", "tags": []} for i in range(8)],
            "skeleton": [{"path": f"part-{i}.csv", "size": 1000 * i} for i in range(8)],
            "policy": {"max_duration_s": 86400},
        }
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- ledger writers -----------------------------------------------------------------------------


def _lease_writer(
    db: str, ids: str, n: int, threads: int, witness: bool, barrier: Any, out: Any
) -> None:
    core = LedgerCore(db)
    identity = load_identity(Path(ids), "UiO")
    if witness:  # a broker of its own: state directory, trusted CAs, checkpoints
        w = Witness(Path(tempfile.mkdtemp(dir=Path(db).parent, prefix="witness-")), identity)
        w.trust({o: load_identity(Path(ids), o).ca_cert_pem for o in ("UiS", "UiO")})
        core.attach(w)
    lat: list[float] = []
    lock = threading.Lock()

    def loop(count: int) -> None:
        rnd = random.Random()
        mine = []
        for _ in range(count):
            args = [f"a{rnd.randrange(ASSETS)}", "600", "bench"]
            t0 = time.perf_counter()
            core.submit(identity, "RequestLease", args, "bench")
            mine.append(time.perf_counter() - t0)
        with lock:
            lat.extend(mine)

    barrier.wait()
    start = time.time()
    workers = [threading.Thread(target=loop, args=(n // threads,)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    out.put((start, time.time(), lat, [core.stats.commits, core.stats.committed]))
    core.close()


def _raw_writer(db: str, n: int, threads: int, barrier: Any, out: Any) -> None:
    """Raw SQLite: one ~2 KB row insert + commit per transaction, same durability, same lock."""
    import fcntl

    lock_fd = os.open(db + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    tlock = threading.Lock()
    lat: list[float] = []

    def loop(count: int) -> None:
        conn = sqlite3.connect(db, isolation_level=None, timeout=60)
        conn.execute("PRAGMA synchronous = FULL")
        mine = []
        for _ in range(count):
            t0 = time.perf_counter()
            with tlock:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO t (k, v) VALUES (?, ?)", (os.urandom(16), b"x" * 2048))
                conn.execute("COMMIT")
                fcntl.flock(lock_fd, fcntl.LOCK_UN)
            mine.append(time.perf_counter() - t0)
        conn.close()
        with tlock:
            lat.extend(mine)

    barrier.wait()
    start = time.time()
    workers = [threading.Thread(target=loop, args=(n // threads,)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    out.put((start, time.time(), lat, []))


def _run(target: Any, args: tuple[Any, ...], procs: int) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(procs)
    out = ctx.Queue()
    ps = [ctx.Process(target=target, args=(*args, barrier, out)) for _ in range(procs)]
    for p in ps:
        p.start()
    results = [out.get(timeout=600) for _ in ps]
    for p in ps:
        p.join()
    start = min(r[0] for r in results)
    end = max(r[1] for r in results)
    lat = [x for r in results for x in r[2]]
    commits = sum(r[3][0] for r in results if r[3])
    committed = sum(r[3][1] for r in results if r[3])
    return {
        "tps": len(lat) / (end - start),
        "p50": _percentile(lat, 0.50) * 1000,
        "p99": _percentile(lat, 0.99) * 1000,
        "batch": committed / commits if commits else 1.0,
    }


def _median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def bench_writes(root: Path, procs: int, threads: int, n_per_proc: int) -> dict[str, Any]:
    """Lease writers without and with witnesses, runs interleaved, and raw SQLite."""
    db = root / f"lease-{procs}-{threads}.db"
    ids = root / f"ids-{procs}-{threads}"
    owner = create_org(db, "UiS", identity_dir=ids)
    create_org(db, "UiO", identity_dir=ids)
    core = LedgerCore(db)
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda i: core.submit(owner, "RegisterAsset", [_asset(f"a{i}")], "admin"),
                range(ASSETS),
            )
        )
    core.close()
    plain_runs, witness_runs = [], []
    for _ in range(REPEATS):
        plain_runs.append(
            _run(_lease_writer, (str(db), str(ids), n_per_proc, threads, False), procs)
        )
        witness_runs.append(
            _run(_lease_writer, (str(db), str(ids), n_per_proc, threads, True), procs)
        )
    ledger, witnessed = _median_of(plain_runs), _median_of(witness_runs)
    raw_runs = []
    for r in range(REPEATS):
        raw_db = root / f"raw-{procs}-{threads}-{r}.db"
        conn = sqlite3.connect(raw_db, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (k BLOB PRIMARY KEY, v BLOB)")
        conn.close()
        raw_runs.append(_run(_raw_writer, (str(raw_db), n_per_proc, threads), procs))
    return {"ledger": ledger, "witnessed": witnessed, "raw": _median_of(raw_runs), "db": db}


def bench_checks(db: Path, ids: Path) -> dict[str, float]:
    """Milliseconds per 1,000 entries: `verify` (every signature, replay) and a broker's
    start-up check (every hash and signature), on the ledger the writers left."""
    identity = load_identity(ids, "UiO")
    cas = {o: load_identity(ids, o).ca_cert_pem for o in ("UiS", "UiO")}
    entries = LedgerCore(db)
    n = int(entries._reader().execute("SELECT max(seq) FROM txlog").fetchone()[0])
    entries.close()
    verify_ms, start_ms = [], []
    for r in range(REPEATS):
        t0 = time.perf_counter()
        assert verify(db).ok
        verify_ms.append((time.perf_counter() - t0) * 1000 * 1000 / n)
        core = LedgerCore(db)
        w = Witness(db.parent / f"start-{r}", identity)
        w.trust(cas)
        t0 = time.perf_counter()
        core.attach(w)
        start_ms.append((time.perf_counter() - t0) * 1000 * 1000 / n)
        core.close()
    return {
        "entries": n,
        "verify": statistics.median(verify_ms),
        "start": statistics.median(start_ms),
    }


# -- query page ---------------------------------------------------------------------------------


def bench_query(root: Path, n_assets: int) -> dict[str, float]:
    db = root / "query.db"
    ids = root / "ids-query"
    owner = create_org(db, "UiS", identity_dir=ids)
    core = LedgerCore(db)
    with ThreadPoolExecutor(32) as pool:
        list(
            pool.map(
                lambda i: core.submit(
                    owner, "RegisterAsset", [_asset(f"q{i:05d}", f"tag{i % 10}")], "admin"
                ),
                range(n_assets),
            )
        )
    out: dict[str, float] = {}
    cases = {
        "first page": {"limit": 50},
        "tag filter (1 in 10)": {"limit": 50, "tag": "tag7"},
        "available now": {"limit": 50, "available": True},
    }
    for name, filters in cases.items():
        arg = [json.dumps(filters)]
        page = json.loads(core.evaluate(owner, "QueryAssets", arg, "u"))
        assert len(page["items"]) == 50 and page["bookmark"]
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            core.evaluate(owner, "QueryAssets", arg, "u")
            times.append((time.perf_counter() - t0) * 1000)
        out[name] = statistics.median(times)
        out[name + " p99"] = _percentile(times, 0.99)
    core.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tx", type=int, default=1600, help="transactions per run (all writers)")
    parser.add_argument("--assets", type=int, default=10_000, help="assets for the query page")
    parser.add_argument(
        "--threads",
        type=int,
        default=8,
        help="concurrent submitters inside each writer process (a broker "
        "serves many requests at once); 1 is also measured",
    )
    opts = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        root = Path(tmp)
        for procs in (1, 8):
            for threads in sorted({1, opts.threads}):
                res = bench_writes(root, procs, threads, opts.tx // procs)
                rows.append((procs, threads, res))
                print(f"measured {procs} process(es) x {threads} thread(s)", file=sys.stderr)
        checks = bench_checks(rows[-1][2]["db"], root / f"ids-8-{opts.threads}")
        query = bench_query(root, opts.assets)
    print(
        "| writers (processes x threads) | lease tx/s | p50 ms | p99 ms | txs per fsync "
        "| raw SQLite commits/s | raw p50 ms | raw p99 ms | ledger / raw |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for procs, threads, res in rows:
        led, raw = res["ledger"], res["raw"]
        print(
            f"| {procs} x {threads} | {led['tps']:.0f} | {led['p50']:.2f} | {led['p99']:.2f} "
            f"| {led['batch']:.1f} | {raw['tps']:.0f} | {raw['p50']:.2f} | {raw['p99']:.2f} "
            f"| {led['tps'] / raw['tps']:.2f} |"
        )
    print()
    print(
        "| writers | lease tx/s, brokers keeping checkpoints | p50 ms | p99 ms "
        "| with / without checkpoints |"
    )
    print("|---|---|---|---|---|")
    for procs, threads, res in rows:
        led, wit = res["ledger"], res["witnessed"]
        print(
            f"| {procs} x {threads} | {wit['tps']:.0f} | {wit['p50']:.2f} | {wit['p99']:.2f} "
            f"| {wit['tps'] / led['tps']:.2f} |"
        )
    print()
    print(f"| check of a {checks['entries']:.0f}-entry ledger | ms per 1,000 entries |")
    print("|---|---|")
    print(f"| `dshare ledger verify` (signatures, entries re-run) | {checks['verify']:.0f} |")
    print(f"| a broker's check when it starts (the same) | {checks['start']:.0f} |")
    print()
    print(f"| QueryAssets, 50 of {opts.assets} assets | median ms | p99 ms |")
    print("|---|---|---|")
    for name in ("first page", "tag filter (1 in 10)", "available now"):
        print(f"| {name} | {query[name]:.2f} | {query[name + ' p99']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of the embedded ledger (not a test; run `python tests/bench/bench_ledger.py`).

Durable lease transactions (RequestLease: sign, verify, simulate, MVCC-check, append to the
hash-chained log, fsync) per second with 1 and 8 writer processes, next to raw SQLite
insert+commit at the same durability (WAL, synchronous=FULL) measured in the same run, and a
50-asset QueryAssets page out of 10,000 assets. Prints a markdown table. Each figure is the
median of REPEATS runs.
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


def _lease_writer(db: str, ids: str, n: int, threads: int, barrier: Any, out: Any) -> None:
    core = LedgerCore(db)
    identity = load_identity(Path(ids), "UiO")
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
    ledger = _median_of(
        [
            _run(_lease_writer, (str(db), str(ids), n_per_proc, threads), procs)
            for _ in range(REPEATS)
        ]
    )
    raw_runs = []
    for r in range(REPEATS):
        raw_db = root / f"raw-{procs}-{threads}-{r}.db"
        conn = sqlite3.connect(raw_db, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (k BLOB PRIMARY KEY, v BLOB)")
        conn.close()
        raw_runs.append(_run(_raw_writer, (str(raw_db), n_per_proc, threads), procs))
    return {"ledger": ledger, "raw": _median_of(raw_runs)}


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
    print(f"| QueryAssets, 50 of {opts.assets} assets | median ms | p99 ms |")
    print("|---|---|---|")
    for name in ("first page", "tag filter (1 in 10)", "available now"):
        print(f"| {name} | {query[name]:.2f} | {query[name + ' p99']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: dataset list/search through the broker's HTTP API at 10,000 assets.

50 concurrent clients on loopback, each fetching 50-item pages (plain listing and a text
search). The broker runs in this process with a real embedded ledger and key store; only
the hub's token lookup is replaced (HubAuth caches it in production too), so the figures
are the broker's and the ledger's. Target: p95 <= 30 ms for a 50-item page, no error.

Run: python tests/bench/bench_broker.py [--assets 10000] [--clients 50] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from dshare_hub.broker.app import BrokerApp
from dshare_hub.keys import generate_kek_line
from dshare_hub.ledger.embedded import EmbeddedLedger


class _FixedHubAuth:
    """Answers every token with one UiS scientist, as HubAuth's cache would after one lookup."""

    access_scopes = {"access:services!service=dshare-uis"}

    async def _user(self) -> dict[str, Any]:
        return {
            "kind": "user",
            "name": "bench",
            "groups": ["org:UiS", "role:scientist"],
            "scopes": ["access:services!service=dshare-uis", "custom:dshare:read"],
        }

    def get_user(self, handler: Any, *, sync: bool = True) -> Any:
        return self._user()

    def check_scopes(self, required: Any, model: dict[str, Any]) -> set[str]:
        return set(required) & set(model["scopes"])


async def seed(ledger: EmbeddedLedger, count: int) -> None:
    batch = 200
    for start in range(0, count, batch):
        await asyncio.gather(
            *(
                ledger.submit(
                    "RegisterAsset",
                    json.dumps(
                        {
                            "id": f"ds-{i:05d}",
                            "name": f"dataset {i} {'fjord' if i % 10 == 0 else 'plain'}",
                            "description": "benchmark asset",
                            "tags": ["bench"],
                            "storage_type": "local",
                            "sealed_storage": "dshare-seal:v1:1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                        }
                    ),
                    actor="seeder",
                )
                for i in range(start, min(start + batch, count))
            )
        )


async def measure(
    client: AsyncHTTPClient, url: str, args: argparse.Namespace
) -> tuple[list[float], int, float]:
    """Latencies (ms) of `args.requests` GETs of `url` by `args.clients` clients at once."""
    latencies: list[float] = []
    errors = 0
    remaining = args.requests

    async def worker() -> None:
        nonlocal errors, remaining
        while remaining > 0:
            remaining -= 1
            request = HTTPRequest(url, headers={"Authorization": "token x"})
            start = time.perf_counter()
            response = await client.fetch(request, raise_error=False)
            latencies.append((time.perf_counter() - start) * 1000)
            if response.code != 200 or len(json.loads(response.body)["items"]) != 50:
                errors += 1

    wall = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.clients)))
    return latencies, errors, time.perf_counter() - wall


async def run(args: argparse.Namespace) -> list[tuple[str, float, float, float, int]]:
    root = Path(tempfile.mkdtemp(prefix="dshare-bench-broker-"))
    ledger = EmbeddedLedger.open(root / "ledger.db", root / "identities", "UiS")
    t0 = time.perf_counter()
    await seed(ledger, args.assets)
    print(f"seeded {args.assets} assets in {time.perf_counter() - t0:.1f} s")
    kek = root / "kek"
    kek.write_text(generate_kek_line() + "\n")
    app_cfg = BrokerApp(
        org="UiS",
        ledger_db=str(root / "ledger.db"),
        identity_dir=str(root / "identities"),
        kek_file=str(kek),
        data_dir=str(root / "broker"),
        base_url="/services/dshare-uis/",
    )
    app, _broker, _reaper = app_cfg.build(ledger)
    app.settings["hub_auth"] = _FixedHubAuth()
    server = app.listen(0, "127.0.0.1")
    port = next(iter(server._sockets.values())).getsockname()[1]
    base = f"http://127.0.0.1:{port}/services/dshare-uis/api/v1/datasets"
    AsyncHTTPClient.configure(None, max_clients=args.clients)
    client = AsyncHTTPClient()
    rows = []
    for label, query in (("list, 50/page", "?limit=50"), ("search q=fjord", "?q=fjord&limit=50")):
        latencies, errors, wall = await measure(client, base + query, args)
        p95 = statistics.quantiles(latencies, n=20)[-1]
        rows.append((label, len(latencies) / wall, statistics.median(latencies), p95, errors))
    server.stop()
    await ledger.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    rows = asyncio.run(run(args))
    print(f"\n{args.assets} assets, {args.clients} concurrent clients, 50-item pages\n")
    print("| query | requests/s | p50 ms | p95 ms | errors |")
    print("|---|---:|---:|---:|---:|")
    for label, rps, p50, p95, errors in rows:
        print(f"| {label} | {rps:.0f} | {p50:.1f} | {p95:.1f} | {errors} |")


if __name__ == "__main__":
    main()

"""Benchmark: dataset list/search through the broker's HTTP API at 10,000 assets.

50 concurrent clients on loopback, each fetching 50-item pages (plain listing and a text
search), in a closed loop. The broker runs in this process with a real embedded ledger and
key store; only the hub's token lookup is replaced (HubAuth caches it in production too), so
the figures are the broker's and the ledger's. Target: p95 <= 30 ms for a 50-item page, no
error.

The clients run in a separate process, as real callers do: when they shared the broker's
event loop they used more CPU than the broker (a broker answering a fixed body at once
measured about 960 requests/s that way). Each client keeps its connection open between
requests, as a browser or a proxy's connection pool does; `--fresh-connections` opens one
per request instead. Rows marked "no page cache" run against a broker whose page cache is
off, so every request runs the ledger query: what the first request after a commit costs.

Run: python tests/bench/bench_broker.py [--assets 10000] [--clients 50] [--requests 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from dshare_hub.broker.app import BrokerApp
from dshare_hub.keys import generate_kek_line
from dshare_hub.ledger.embedded import EmbeddedLedger

Row = tuple[str, float, float, float, int]


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


# -- the clients' process --------------------------------------------------------------------


async def _client(
    port: int, path: str, state: dict[str, int], latencies: list[float], fresh: bool
) -> None:
    """One client: GET `path` until the shared request budget is spent (HTTP/1.1)."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: token x\r\n"
        + ("Connection: close\r\n" if fresh else "")
        + "\r\n"
    ).encode()
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while state["remaining"] > 0:
        state["remaining"] -= 1
        start = time.perf_counter()
        if writer is None or reader is None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        length = next(
            int(line.split(":", 1)[1])
            for line in head[1:]
            if line.lower().startswith("content-length:")
        )
        body = await reader.readexactly(length)
        latencies.append((time.perf_counter() - start) * 1000)
        if head[0].split()[1] != "200" or len(json.loads(body)["items"]) != 50:
            state["errors"] += 1
        if fresh:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def _clients_process(
    port: int, path: str, clients: int, requests: int, fresh: bool, out: Any
) -> None:
    async def main() -> None:
        state = {"remaining": requests, "errors": 0}
        latencies: list[float] = []
        wall = time.perf_counter()
        await asyncio.gather(
            *(_client(port, path, state, latencies, fresh) for _ in range(clients))
        )
        out.send((latencies, state["errors"], time.perf_counter() - wall))

    asyncio.run(main())


async def measure(
    port: int, path: str, args: argparse.Namespace
) -> tuple[float, float, float, int]:
    """Requests/s, p50, p95 (ms) and errors of `args.requests` GETs by `args.clients` clients."""
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    clients = ctx.Process(
        target=_clients_process,
        args=(port, path, args.clients, args.requests, args.fresh_connections, send),
    )
    clients.start()
    send.close()
    # The broker keeps serving on this loop while the clients run.
    while not receive.poll():
        await asyncio.sleep(0.05)
    latencies, errors, wall = receive.recv()
    clients.join()
    p95 = statistics.quantiles(latencies, n=20)[-1]
    return len(latencies) / wall, statistics.median(latencies), p95, errors


async def run(args: argparse.Namespace) -> list[Row]:
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
    app, broker, _reaper = app_cfg.build(ledger)
    app.settings["hub_auth"] = _FixedHubAuth()
    server = app.listen(0, "127.0.0.1")
    port = next(iter(server._sockets.values())).getsockname()[1]
    base = "/services/dshare-uis/api/v1/datasets"
    queries = (("list, 50/page", "?limit=50"), ("search q=fjord", "?q=fjord&limit=50"))
    rows = []
    cache_size = broker.pages.size
    for cached in (True, False):
        broker.pages.size = cache_size if cached else 0
        for label, query in queries:
            rps, p50, p95, errors = await measure(port, base + query, args)
            rows.append((label if cached else f"{label} (no page cache)", rps, p50, p95, errors))
    server.stop()
    await ledger.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--assets", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument(
        "--fresh-connections",
        action="store_true",
        help="open a new connection for every request instead of keeping one per client",
    )
    args = parser.parse_args()
    rows = asyncio.run(run(args))
    connections = "a new connection per request" if args.fresh_connections else "kept open"
    print(
        f"\n{args.assets} assets, {args.clients} concurrent clients in another process "
        f"(connections {connections}), 50-item pages\n"
    )
    print("| query | requests/s | p50 ms | p95 ms | errors |")
    print("|---|---:|---:|---:|---:|")
    for label, rps, p50, p95, errors in rows:
        print(f"| {label} | {rps:.0f} | {p50:.1f} | {p95:.1f} | {errors} |")


if __name__ == "__main__":
    main()

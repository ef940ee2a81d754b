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
The baseline row is a handler sending a fixed page-sized body in the same process: what
HTTP, loopback and the clients cost alone; "x baseline" is each row's throughput over it.

Run: python tests/bench/bench_broker.py [--assets 10000] [--clients 50] [--requests 4000]
     [--rounds 3] [--fresh-connections]
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

from tornado import web

from dshare_hub.broker.app import BrokerApp
from dshare_hub.broker.views import caller_from_hub
from dshare_hub.keys import generate_kek_line
from dshare_hub.ledger.embedded import EmbeddedLedger

Row = tuple[str, float, float, float, int]
Sample = tuple[float, float, float, int]
BASELINE = "baseline: a fixed page-sized body"


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


async def measure(port: int, path: str, requests: int, args: argparse.Namespace) -> Sample:
    """Requests/s, p50, p95 (ms) and errors of `requests` GETs by `args.clients` clients."""
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    clients = ctx.Process(
        target=_clients_process,
        args=(port, path, args.clients, requests, args.fresh_connections, send),
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


class _FixedPage(web.RequestHandler):
    """The baseline: a page-sized body sent at once (HTTP, loopback and clients alone)."""

    def initialize(self, body: bytes) -> None:
        self.body = body

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(self.body)


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
    base = "/services/dshare-uis/api/v1/datasets"
    caller = caller_from_hub(await _FixedHubAuth()._user())
    fixed = await broker.list_datasets_json(caller, {"limit": "50"})
    app.add_handlers(r".*", [("/bench/fixed-page", _FixedPage, {"body": fixed})])
    server = app.listen(0, "127.0.0.1")
    port = next(iter(server._sockets.values())).getsockname()[1]
    cases = [
        (BASELINE, "/bench/fixed-page", None),
        ("list, 50/page", base + "?limit=50", True),
        ("search q=fjord", base + "?q=fjord&limit=50", True),
        ("list, 50/page (no page cache)", base + "?limit=50", False),
        ("search q=fjord (no page cache)", base + "?q=fjord&limit=50", False),
    ]
    samples: dict[str, list[Sample]] = {label: [] for label, _path, _cached in cases}
    cache_size = broker.pages.size
    for _round in range(args.rounds):
        for label, path, cached in cases:
            broker.pages.size = 0 if cached is False else cache_size
            # A query without the cache is ~10x slower: fewer requests keep the run short.
            requests = args.requests // 4 if cached is False else args.requests
            samples[label].append(await measure(port, path, requests, args))
    server.stop()
    await ledger.close()
    return [
        (
            label,
            statistics.median(s[0] for s in runs),
            statistics.median(s[1] for s in runs),
            statistics.median(s[2] for s in runs),
            sum(s[3] for s in runs),
        )
        for label, runs in samples.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--assets", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3, help="medians of this many runs")
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
        f"(connections {connections}), 50-item pages; medians of {args.rounds} runs\n"
    )
    floor = rows[0][1]
    print("| query | requests/s | x baseline | p50 ms | p95 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, rps, p50, p95, errors in rows:
        print(f"| {label} | {rps:.0f} | {rps / floor:.2f} | {p50:.1f} | {p95:.1f} | {errors} |")


if __name__ == "__main__":
    main()

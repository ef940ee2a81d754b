"""Benchmarks for workflows; run with `python tests/bench/bench_workflow.py`.

1. parse + check + compile a DAG of 1,000 jobs and 5,000 edges (target <= 1 s), with
   yaml.safe_load of the same text as the in-process baseline.
2. Local runner overhead on the thesis experiment (three word counts over generated
   corpora, then an aggregate) against the same commands run directly with the same
   parallelism (target <= 1.2x).
Medians of repeated runs; prints a markdown table.
"""

from __future__ import annotations

import asyncio
import logging
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from dshare_server.workflow import CompileContext, LocalRunner, compile_workflow, parse
from dshare_server.workflow.sandbox import bwrap_path

REPEAT = 5
ORGS = ("uis", "uio", "uib")
COUNT = """import os, sys
count = 0
for name in sorted(os.listdir(sys.argv[1])):
    with open(os.path.join(sys.argv[1], name)) as f:
        for line in f:
            count += line.count('lorem')
with open(sys.argv[2], 'w') as out:
    out.write(str(count) + '\\n')
"""
FINAL = """import sys
total = sum(int(open(p).read()) for p in sys.argv[2:])
open(sys.argv[1], 'w').write(str(total) + '\\n')
"""


def median_time(fn: Callable[[], object], repeat: int = REPEAT) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def big_workflow(jobs: int = 1000, edges: int = 5000, seed: int = 1) -> str:
    rng = random.Random(seed)
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < edges:
        a, b = sorted(rng.sample(range(1, jobs + 1), 2))
        pairs.add((a, b))
    lines = ["jobs:"]
    lines += [f"- command: python step.py {i}\n  name: step-{i}" for i in range(1, jobs + 1)]
    lines.append("dags:")
    lines += [f"- {a} >> {b}" for a, b in sorted(pairs)]
    return "\n".join(lines) + "\n"


def bench_compile() -> list[tuple[str, float, str]]:
    text = big_workflow()
    ctx = CompileContext(
        user="alice", run_id="bench", image="img", home_claim="claim-alice", service_account="sa"
    )
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    baseline = median_time(lambda: yaml.load(text, Loader=loader))
    parse_t = median_time(lambda: parse(text, leases={}, user="alice"))
    spec = parse(text, leases={}, user="alice")
    compile_t = median_time(lambda: compile_workflow(spec, ctx))
    total = median_time(lambda: compile_workflow(parse(text, leases={}, user="alice"), ctx))
    return [
        ("yaml.load with CSafeLoader (baseline), 1,000 jobs / 5,000 edges", baseline, "1.00x"),
        ("parse + check", parse_t, f"{parse_t / baseline:.2f}x"),
        ("compile (hera models -> dict)", compile_t, f"{compile_t / baseline:.2f}x"),
        (
            "parse + check + compile (target <= 1 s)",
            total,
            f"{total / baseline:.2f}x; {'OK' if total <= 1.0 else 'OVER TARGET'}",
        ),
    ]


def make_experiment(root: Path) -> tuple[Path, dict[str, Path]]:
    home = root / "home"
    home.mkdir()
    (home / "count.py").write_text(COUNT)
    (home / "final.py").write_text(FINAL)
    rng = random.Random(7)
    words = ["lorem", "ipsum", "dolor", "sit", "amet", "elit", "sed", "do"]
    data = {}
    for org in ORGS:
        d = root / "data" / org
        d.mkdir(parents=True)
        for n in range(4):
            lines = (" ".join(rng.choices(words, k=16)) for _ in range(40_000))
            (d / f"part-{n}.txt").write_text("\n".join(lines) + "\n")
        data[org] = d
    return home, data


def bench_runner() -> list[tuple[str, float, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        home, data = make_experiment(root)
        text = "jobs:\n"
        for org in ORGS:
            text += (
                f"- command: python count.py /home/jovyan/{org} {org}-count.txt\n"
                f"  volumes: [{{id: lease-{org}, name: {org}, path: /home/jovyan/{org}}}]\n"
            )
        text += "- python final.py result.txt " + " ".join(f"{o}-count.txt" for o in ORGS) + "\n"
        text += "dags:\n" + "".join(f"- {i} >> 4\n" for i in (1, 2, 3))
        spec = parse(text, leases=None)
        ctx = CompileContext(
            user="alice",
            run_id="bench",
            image="img",
            home_claim="claim-alice",
            service_account="sa",
            claims={f"lease-{o}": f"c-{o}" for o in ORGS},
        )
        manifest = compile_workflow(spec, ctx)
        mounts = {"claim-alice": str(home), **{f"c-{o}": str(p) for o, p in data.items()}}
        sandboxed = bwrap_path() is not None
        runs = iter(range(10_000))

        def via_runner() -> None:
            runner = LocalRunner(root / "runs" / str(next(runs)), parallelism=3, sandbox=sandboxed)
            result = asyncio.run(runner.run(manifest, mounts))
            assert result.state == "succeeded", result.message

        def direct() -> None:
            procs = [
                subprocess.Popen(
                    [sys.executable, "count.py", str(data[o]), f"{o}-direct.txt"], cwd=home
                )
                for o in ORGS
            ]
            assert all(p.wait() == 0 for p in procs)
            outputs = [f"{o}-direct.txt" for o in ORGS]
            final = [sys.executable, "final.py", "direct.txt", *outputs]
            subprocess.run(final, cwd=home, check=True)

        direct()  # warm the page cache for both
        via_runner()
        # Interleaved, so drift in the machine's load affects both sides alike.
        base_times, local_times = [], []
        for _ in range(REPEAT):
            base_times.append(median_time(direct, 1))
            local_times.append(median_time(via_runner, 1))
        base, local = statistics.median(base_times), statistics.median(local_times)
        assert (home / "result.txt").read_text() == (home / "direct.txt").read_text()
    mode = "bwrap sandbox" if sandboxed else "no sandbox (bwrap unavailable)"
    ratio = local / base
    return [
        ("thesis experiment, direct processes (baseline)", base, "1.00x"),
        (
            f"thesis experiment, LocalRunner, {mode} (target <= 1.2x)",
            local,
            f"{ratio:.2f}x; {'OK' if ratio <= 1.2 else 'OVER TARGET'}",
        ),
    ]


def main() -> None:
    logging.getLogger("dshare_server").setLevel(logging.ERROR)  # the runner's per-run warnings
    rows = bench_compile() + bench_runner()
    print(f"| benchmark (median of {REPEAT}) | seconds | ratio |")
    print("|---|---:|---|")
    for name, seconds, ratio in rows:
        print(f"| {name} | {seconds:.3f} | {ratio} |")


if __name__ == "__main__":
    main()

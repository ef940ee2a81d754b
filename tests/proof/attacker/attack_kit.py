"""The attacker's kit: the arena (sessions, needles, what each attack found), the scanner's
self-proof and the checks every scan result goes through. Used by test_attacker.py."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attack_needles import Needles
from attack_scanner import mask_needles
from hubclient import HubSession
from proof_support import FULL

# A whole-filesystem scan takes 75-280 s on 2 cores (more files, other work on the machine:
# 273 s beside two other test runs); the cap bounds a slow machine, and a scan it cuts
# short fails its test (a partial scan proves nothing).
SCAN_CAP_S = 480
SCANNER = Path(__file__).with_name("attack_scanner.py")
KIT = "attack-kit"  # the attacker's folder in their home (not hidden: the contents API
# refuses hidden paths by default)


@dataclass
class Arena:
    layout: Any
    sessions: dict[str, HubSession]
    needles: Needles
    report: list[dict[str, Any]] = field(default_factory=list)

    def note(self, attack: str, user: str, held: bool, **figures: Any) -> None:
        self.report.append(
            {"attack": attack, "user": user, "held": held, "figures": figures, "at": _now()}
        )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def write_report(arena: Arena) -> None:
    out = Path(os.environ.get("DSHARE_TEST_OUTPUT") or tempfile.gettempdir())
    out.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
        check=False,
    ).stdout.strip()
    body = {
        "commit": commit,
        "full": FULL,
        "needles": len(arena.needles.items),
        "needle_kinds": sorted({n.kind for n in arena.needles.items}),
        "needle_notes": arena.needles.notes,
        "attacks": arena.report,
        "held": sum(1 for r in arena.report if r["held"]),
        "failed": sum(1 for r in arena.report if not r["held"]),
    }
    (out / "attacker-report.json").write_text(json.dumps(body, indent=1, sort_keys=True))
    results = os.environ.get("DSHARE_PROOF_RESULTS")
    if results:
        Path(results).mkdir(parents=True, exist_ok=True)
        (Path(results) / "attacker.json").write_text(json.dumps(body, indent=1, sort_keys=True))


def run_scanner_as_root(needles: dict[str, list[bytes]], *args: str) -> dict[str, Any]:
    spec = json.dumps(mask_needles(needles, secrets.token_bytes(16)))
    done = subprocess.run(
        [sys.executable, str(SCANNER), "-", *args],
        input=spec,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def prove_scanner(where: Path) -> dict[str, Any]:
    """The scanner finds planted needles in every place and form it claims to search."""
    raw, hexed, linked, env, split, named = (secrets.token_bytes(32) for _ in range(6))
    big = bytearray(os.urandom(20 * 1024 * 1024))
    big[12345678 : 12345678 + 32] = raw
    deep = where / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "blob.bin").write_bytes(bytes(big))
    (where / "notes.txt").write_text("token=" + hexed.hex() + "\n")
    (where / "link").symlink_to("/nowhere/" + base64.b64encode(linked).decode().replace("/", "_"))
    # Across the scanner's 8 MiB read boundary.
    boundary = bytearray(os.urandom(9 * 1024 * 1024))
    cut = 8 * 1024 * 1024 - 20
    boundary[cut : cut + 32] = split
    (where / "boundary.bin").write_bytes(bytes(boundary))
    (where / ("dir-" + named.hex())).mkdir()
    (where / "huge.bin").write_bytes(b"\0" * (2 * 1024 * 1024))
    child = subprocess.Popen(
        ["sleep", "300"], env={"PATH": os.environ["PATH"], "ATTACK_CANARY": env.hex()}
    )
    try:
        needles = {
            "raw in a 20 MiB file": [raw],
            "hex in a text file": [hexed.hex().encode()],
            "symlink target": [base64.b64encode(linked).replace(b"/", b"_")],
            "child environment": [env.hex().encode()],
            "across a read boundary": [split],
            "directory name": [named.hex().encode()],
            "nowhere": [secrets.token_bytes(32)],
        }
        started = time.monotonic()
        result = run_scanner_as_root(needles, "--root", str(where), "--size-cap", str(30 << 20))
        seconds = time.monotonic() - started
        capped = run_scanner_as_root({"x": [b"y" * 16]}, "--root", str(where), "--time-cap", "0")
        small = run_scanner_as_root(needles, "--root", str(where), "--size-cap", str(1 << 20))
    finally:
        child.kill()
        child.wait()
    found = result["found"]
    assert set(found) == set(needles) - {"nowhere"}, f"the scanner missed: {result}"
    assert found["raw in a 20 MiB file"] == [str(deep / "blob.bin")]
    assert f"/proc/{child.pid}/environ" in found["child environment"]
    assert result["bytes_read"] >= 29 * 1024 * 1024 and not result["capped"]
    assert capped["capped"], "a scan cut short by its time cap must say so"
    assert small["skipped_large"] == 3 and str(where / "huge.bin") in small["large_files"]
    return {"seconds": round(seconds, 2), "bytes": result["bytes_read"]}


def last_json(text: str, tag: str) -> dict[str, Any]:
    for line in reversed(text.splitlines()):
        if line.startswith(tag + " "):
            return dict(json.loads(line[len(tag) + 1 :]))
    raise AssertionError(f"no {tag} line in the output: {text[-3000:]}")


async def allowed_datasets(arena: Arena, user: str) -> frozenset[str]:
    """Interactive datasets `user` holds an active lease on: readable in the notebook."""
    status, body = await arena.sessions[user].api("dshare/api/leases?scope=mine")
    assert status == 200, body
    return frozenset(
        lease["asset_id"]
        for lease in body.get("items", [])
        if lease.get("state") == "active" and lease.get("asset_id") in arena.needles.interactive
    )


def leaks_of(arena: Arena, result: dict[str, Any], allowed_paths: tuple[str, ...] = ()) -> dict:
    """What the scan found, minus markers of leased data under `allowed_paths`."""
    by_name = arena.needles.by_name()
    leaks = {}
    for name, places in result["found"].items():
        needle = by_name.get(name)
        if needle is not None and needle.kind == "raw data" and allowed_paths:
            places = [p for p in places if not p.startswith(allowed_paths)]
        if places:
            leaks[name] = places
    return leaks


def check_scan(arena: Arena, attack: str, user: str, result: dict[str, Any], **kw: Any) -> None:
    assert "error" not in result, f"{attack} as {user}: the scanner failed: {result['error']}"
    allowed = kw.pop("allowed_paths", ())
    leaks = leaks_of(arena, result, allowed)
    root = str(arena.layout.root)
    unscanned = [p for p in result["large_files"] if p.startswith((root, "/tmp", "/home"))]
    aliases = {
        a: b for a, b in result["aliases"].items() if allowed and (a + "/").startswith(allowed)
    }
    figures = {
        k: result[k]
        for k in (
            "uid",
            "groups",
            "files_read",
            "bytes_read",
            "unreadable_files",
            "unreadable_dirs",
            "skipped_large",
            "proc_read",
            "proc_unreadable",
            "capped",
            "seconds",
            "needle_forms",
        )
    }
    held = not leaks and not result["capped"] and not unscanned and not aliases
    arena.note(attack, user, held, leaks=leaks, unscanned_large_files=unscanned, **figures, **kw)
    assert not result["capped"], (
        f"{attack} as {user}: the scan hit its {SCAN_CAP_S} s cap after {result['files_read']} "
        "files; a partial scan proves nothing"
    )
    assert not leaks, f"{attack} as {user} (uid {result['uid']}) found: {json.dumps(leaks)}"
    assert not unscanned, f"{attack} as {user}: too large to scan in the deployment: {unscanned}"
    assert not aliases, f"{attack} as {user}: the leased data is visible elsewhere: {aliases}"


def needle_spec(arena: Arena, user: str, allowed: frozenset[str]) -> str:
    return json.dumps(mask_needles(arena.needles.for_attacker(user, allowed), os.urandom(16)))


async def put_file(session: HubSession, path: str, text: str) -> None:
    status, body = await session.api(f"api/contents/{KIT}", "PUT", {"type": "directory"})
    assert status in (200, 201), f"could not make {KIT}: {status} {body}"
    status, body = await session.api(
        f"api/contents/{KIT}/{path}", "PUT", {"type": "file", "format": "text", "content": text}
    )
    assert status in (200, 201), f"could not write {path}: {status} {body}"


# The job of the last attack: it scans, connects, writes and copies from inside a run.
JOB_SCRIPT = """\
import json, os, shutil, socket, subprocess, sys
result = {{'uid': os.getuid(), 'cwd': os.getcwd()}}
done = subprocess.run([sys.executable, '{kit}/attack_scanner.py', '{kit}/needles.json',
                       '--time-cap', '{cap}'], capture_output=True, text=True)
lines = done.stdout.strip().splitlines()
result['scan'] = json.loads(lines[-1]) if lines else {{'error': done.stderr[-3000:]}}
result['network'] = {{}}
for host, port in {targets!r}:
    try:
        socket.create_connection((host, port), timeout=3).close()
        result['network'][f'{{host}}:{{port}}'] = 'connected'
    except OSError as e:
        result['network'][f'{{host}}:{{port}}'] = repr(e)
writes = {{}}
try:
    with open('{mount}/attacker-was-here.txt', 'w') as f:
        f.write('x')
    writes['new file'] = 'written'
except OSError as e:
    writes['new file'] = repr(e)
try:
    first = sorted(os.listdir('{mount}'))[0]
    with open(os.path.join('{mount}', first), 'a') as f:
        f.write('x')
    writes['append'] = 'written'
except (OSError, IndexError) as e:
    writes['append'] = repr(e)
result['writes'] = writes
try:
    shutil.copytree('{mount}', 'stolen-corpus')
    result['copied'] = sorted(os.listdir('stolen-corpus'))
except OSError as e:
    result['copied'] = repr(e)
print('ATTACK', json.dumps(result))
"""

WORKFLOW = """\
name: attacker
jobs:
- command: 'python {kit}/attack_job.py'
  volumes:
  - id: '{dataset}'
    name: 'loot'
    path: '{mount}'
- command: 'cat {mount}/*'
  volumes:
  - id: '{dataset}'
    name: 'loot'
    path: '{mount}'
"""

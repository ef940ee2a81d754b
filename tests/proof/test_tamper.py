"""Tampering: one byte flipped anywhere a transaction or its effect is stored in the ledger
file is found by `dshare ledger verify`, which names the transaction's sequence number."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from proof_support import Record, count

from dshare_hub.ledger.core import LedgerCore
from dshare_hub.ledger.identity import create_org
from dshare_hub.ledger.verify import verify


@dataclass(frozen=True)
class Stored:
    """Where one stored value sits in the raw file, and the transaction it belongs to."""

    what: str
    seq: int
    offset: int
    length: int


def _asset(asset_id: str) -> str:
    return json.dumps(
        {
            "id": asset_id,
            "name": f"Dataset {asset_id}",
            "description": "proof suite",
            "tags": ["text"],
            "storage_type": "local",
            "sealed_storage": "v1.sealed.Zm9vYmFy",
            "policy": {"max_duration_s": 3600},
        }
    )


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger of registrations, leases, updates and releases by two organizations."""
    root = tmp_path_factory.mktemp("tamper")
    db = root / "ledger.db"
    uis = create_org(db, "UiS", identity_dir=root / "ids")
    uio = create_org(db, "UiO", identity_dir=root / "ids")
    core = LedgerCore(db)
    try:
        for i in range(8):
            core.submit(uis, "RegisterAsset", [_asset(f"a{i}")], "siri")
            lease = json.loads(core.submit(uio, "RequestLease", [f"a{i}", "600", "p"], "ola"))
            core.submit(uis, "UpdateAsset", [f"a{i}", json.dumps({"name": f"N{i}"})], "siri")
            core.submit(uio, "ReleaseLease", [lease["id"]], "ola")
    finally:
        core.close()
    return db


def stored_values(db: Path) -> list[Stored]:
    """Every log entry's body, hash and signature and every world-state and history value,
    located in the raw file by its bytes (each occurrence, when one transaction owns them)."""
    raw = db.read_bytes()
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT seq, body, hash, signature FROM txlog").fetchall()
        states = conn.execute("SELECT value, version FROM state").fetchall()
        history = conn.execute("SELECT value, seq FROM history WHERE value IS NOT NULL").fetchall()
    finally:
        conn.close()
    owners: dict[tuple[str, bytes], set[int]] = {}
    for seq, body, hash_, signature in rows:
        for what, value in (("body", body), ("hash", hash_), ("signature", signature)):
            data = value.encode() if isinstance(value, str) else bytes(value)
            owners.setdefault((f"txlog.{what}", data), set()).add(seq)
    for value, seq in [*states, *history]:
        owners.setdefault(("state/history value", bytes(value)), set()).add(seq)
    found: list[Stored] = []
    # Bodies first: a later entry's body quotes the previous entry's hash, and that copy
    # belongs to the later entry.
    for (what, data), seqs in sorted(owners.items(), key=lambda item: item[0][0] != "txlog.body"):
        if len(seqs) != 1:
            continue  # the same bytes written by two transactions: no single answer
        at = raw.find(data)
        # A value that spills onto an overflow page is not contiguous and is not found.
        while at >= 0:
            inside = any(f.offset <= at < f.offset + f.length for f in found)
            if not inside:
                found.append(Stored(what, next(iter(seqs)), at, len(data)))
            at = raw.find(data, at + len(data))
    return found


def test_every_single_byte_flip_is_found_with_its_sequence_number(
    ledger: Path, tmp_path: Path, record: Record
) -> None:
    assert verify(ledger).ok
    targets = stored_values(ledger)
    kinds = {t.what for t in targets}
    assert kinds == {"txlog.body", "txlog.hash", "txlog.signature", "state/history value"}
    pristine = ledger.read_bytes()
    rng = random.Random(20221)  # fixed seed: a failure is reproducible
    flips = count(40, 400)
    missed: list[str] = []
    for _ in range(flips):
        target = rng.choice(targets)
        at = target.offset + rng.randrange(target.length)
        changed = bytearray(pristine)
        changed[at] ^= rng.randrange(1, 256)
        copy = tmp_path / "tampered.db"
        copy.write_bytes(bytes(changed))
        try:
            report = verify(copy)
        except Exception as error:
            missed.append(f"{target.what} seq {target.seq} byte {at}: verify raised {error!r}")
            continue
        if report.ok or target.seq not in {p.seq for p in report.problems}:
            missed.append(
                f"{target.what} seq {target.seq} byte {at}: "
                f"{[str(p) for p in report.problems] or 'not detected'}"
            )
    record("tamper", {"flips": flips, "detected": flips - len(missed), "missed": missed[:20]})
    assert missed == []


def test_verify_command_names_the_sequence(ledger: Path, tmp_path: Path) -> None:
    target = next(t for t in stored_values(ledger) if t.what == "txlog.signature" and t.seq == 7)
    changed = bytearray(ledger.read_bytes())
    raw = bytes(changed[target.offset : target.offset + target.length])
    at = target.offset + raw.index(b'"signature":"') + 20  # in the commit signature's base64
    changed[at] = ord("B") if changed[at] == ord("A") else ord("A")
    copy = tmp_path / "tampered.db"
    copy.write_bytes(bytes(changed))
    result = subprocess.run(
        [sys.executable, "-m", "dshare_hub.cli", "ledger", "verify", "--db", str(copy)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert (
        "seq 7: the commit signature of 'UiS' does not match this entry's position and hash "
        "(the chain was changed after it was committed)"
    ) in result.stdout

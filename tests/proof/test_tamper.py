"""Tampering: one byte flipped anywhere a transaction or its effect is stored in the ledger
file is found by `dshare ledger verify`, which names the transaction's sequence number; and
deliberate rewrites, by someone who can write the file and holds one organization's key and
recomputes every hash, are found against the brokers' checkpoints, and the brokers refuse."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import subprocess
import sys
from base64 import b64decode
from dataclasses import dataclass
from pathlib import Path

import pytest
from ledger_forgery import LedgerFile, find, rerun_with, rewrite_writes
from proof_support import Record, count

from dshare_hub.ledger import LedgerError
from dshare_hub.ledger.core import LedgerCore
from dshare_hub.ledger.identity import OrgIdentity, create_org, make_identity_files
from dshare_hub.ledger.verify import verify
from dshare_hub.ledger.witness import Witness


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


# -- deliberate rewrites ------------------------------------------------------------------------

ORGS = ("UiS", "UiO")


@dataclass
class Witnessed:
    """A ledger two brokers (one core and state directory each) wrote and checkpointed."""

    root: Path
    ids: dict[str, OrgIdentity]

    @property
    def db(self) -> Path:
        return self.root / "ledger.db"

    def state(self, org: str) -> Path:
        return self.root / "state" / org

    def copy(self, to: Path) -> Witnessed:
        shutil.copytree(self.root, to)
        return Witnessed(to, self.ids)


@pytest.fixture(scope="module")
def witnessed(tmp_path_factory: pytest.TempPathFactory) -> Witnessed:
    root = tmp_path_factory.mktemp("witnessed") / "w"
    root.mkdir()
    ids = {org: create_org(root / "ledger.db", org, identity_dir=root / "ids") for org in ORGS}
    w = Witnessed(root, ids)
    cores, witnesses = {}, {}
    for org in ORGS:
        witnesses[org] = Witness(w.state(org), ids[org])
        witnesses[org].trust({o: i.ca_cert_pem for o, i in ids.items()})
        cores[org] = LedgerCore(w.db)
        cores[org].attach(witnesses[org])
    try:
        for i in range(count(3, 8)):
            cores["UiS"].submit(ids["UiS"], "RegisterAsset", [_asset(f"a{i}")], "siri")
            lease = json.loads(
                cores["UiO"].submit(ids["UiO"], "RequestLease", [f"a{i}", "600", "p"], "ola")
            )
            if i % 2:
                cores["UiO"].submit(ids["UiO"], "ReleaseLease", [lease["id"]], "ola")
        for org in ORGS:
            cores[org].audit(witnesses[org])
    finally:
        for core in cores.values():
            core.close()
        # The WAL folded into the file, so a copy of the directory is the whole ledger.
        sqlite3.connect(w.db).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    return w


def _rewrite_lease(w: Witnessed) -> None:
    log = LedgerFile(w.db)
    entries = log.entries()
    at = find(entries, "RequestLease", "UiO")
    rerun_with(entries, at, ["a0", "3600", "p"], w.ids["UiO"])  # an hour, not ten minutes
    log.write(entries, keys={"UiO": w.ids["UiO"]})


def _forge_lease(w: Witnessed) -> None:
    log = LedgerFile(w.db)
    entries = log.entries()
    at = find(entries, "RequestLease", "UiO")
    rewrite_writes(entries[at], "lease/", lambda v: v.update(expires_at="2099-01-01T00:00:00Z"))
    log.write(entries)


def _delete_release(w: Witnessed) -> None:
    log = LedgerFile(w.db)
    entries = log.entries()
    del entries[find(entries, "ReleaseLease", "UiO")]
    log.write(entries, keys={"UiO": w.ids["UiO"]})


def _truncate(w: Witnessed) -> None:
    log = LedgerFile(w.db)
    log.write(log.entries()[:-3], keys={"UiO": w.ids["UiO"]})


def _roll_back_state(w: Witnessed) -> None:
    """The state of one lease back to before its release; log and history untouched."""
    log = LedgerFile(w.db)
    entries = log.entries()
    granted = entries[find(entries, "ReleaseLease", "UiO") - 1]
    for key, value in granted.endorsement["writes"]:
        if key.startswith("lease/"):
            log.sql("UPDATE state SET value = ? WHERE key = ?", b64decode(value), key.encode())


def _swap_certificate(w: Witnessed) -> None:
    fake = make_identity_files(w.root / "fake", "UiS")
    log = LedgerFile(w.db)
    entries = log.entries()
    for e in entries:
        if e.org == "UiS":
            e.proposal["cert_pem"] = fake.cert_pem
            e.changed = True
    log.write(entries, keys={"UiS": fake})
    log.sql("UPDATE orgs SET ca_cert_pem = ? WHERE msp_id = 'UiS'", fake.ca_cert_pem)


def _replay(w: Witnessed) -> None:
    log = LedgerFile(w.db)
    entries = log.entries()
    entries.append(entries[find(entries, "RequestLease", "UiO")])
    conn = sqlite3.connect(w.db, isolation_level=None)
    conn.executescript(  # without the log's unique tx_id, which would refuse the copy
        "CREATE TABLE t2 (seq INTEGER PRIMARY KEY, tx_id TEXT NOT NULL, body BLOB NOT NULL, "
        "hash TEXT NOT NULL, signature BLOB NOT NULL); DROP TABLE txlog; "
        "ALTER TABLE t2 RENAME TO txlog;"
    )
    conn.close()
    log.write(entries, keys={"UiO": w.ids["UiO"]})


ATTACKS = {
    "rewrite a lease longer and rehash (by UiO's key holder)": _rewrite_lease,
    "make up a lease's expiry (2099), without a key": _forge_lease,
    "delete an entry and renumber (UiO's release)": _delete_release,
    "truncate the tail, state rolled back to match": _truncate,
    "roll back state under an intact log": _roll_back_state,
    "swap UiS's certificate and re-sign its entries": _swap_certificate,
    "replay an old signed entry": _replay,
}


def _broker_refuses(w: Witnessed, org: str) -> str | None:
    """What `org`'s broker says when it starts on the attacked ledger; None if it serves."""
    core = LedgerCore(w.db)
    try:
        witness = Witness(w.state(org), w.ids[org])
        try:
            core.attach(witness)
        except LedgerError as error:
            return error.message
        return None
    finally:
        core.close()


def test_deliberate_rewrites_are_found_with_their_sequence_number(
    witnessed: Witnessed, tmp_path: Path, record: Record
) -> None:
    report = verify(witnessed.db, [witnessed.state(o) for o in ORGS])
    assert report.ok, report.problems
    results: dict[str, dict[str, object]] = {}
    for n, (name, attack) in enumerate(ATTACKS.items()):
        w = witnessed.copy(tmp_path / f"attack-{n}")
        attack(w)
        found = verify(w.db, [w.state(o) for o in ORGS])
        results[name] = {
            "detected": not found.ok,
            "first_seq": found.first_bad_seq,
            "first_problem": str(found.problems[0]) if found.problems else None,
            "file_only_verify_detects": not verify(w.db).ok,
            "uis_broker_start": _broker_refuses(w, "UiS"),
        }
    record("tamper_deliberate", {"attacks": results})
    assert all(r["detected"] and r["first_seq"] is not None for r in results.values()), results
    assert all(r["uis_broker_start"] for r in results.values()), results

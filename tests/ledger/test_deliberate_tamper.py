"""Deliberate rewrites of the embedded ledger, by whoever can write its file and by an
organization's admin holding that organization's key: each is found by `verify` with the
organizations' checkpoints, named by its sequence number, and the brokers stop serving.

Three cores on one file stand in for the three organizations' broker processes; each keeps
its own state directory (its witness), as `BrokerApp` does.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from ledger_forgery import LedgerFile, find, rerun_with, rewrite_writes
from ledger_helpers import asset_json

from dshare_chaincode.tx import fmt_time, parse_time
from dshare_hub.ledger import LedgerError
from dshare_hub.ledger.core import LedgerCore
from dshare_hub.ledger.identity import OrgIdentity, create_org, make_identity_files
from dshare_hub.ledger.verify import verify
from dshare_hub.ledger.witness import Witness

ORGS = ("UiS", "UiO", "UiB")


@dataclass
class World:
    db: Path
    ids: dict[str, OrgIdentity]
    cores: dict[str, LedgerCore]
    witnesses: dict[str, Witness]
    root: Path

    def state_dir(self, org: str) -> Path:
        return self.root / "state" / org

    def all_witnesses(self) -> list[Path]:
        return [self.state_dir(o) for o in ORGS]

    def submit(self, org: str, fn: str, *args: str, actor: str = "u") -> dict:
        return json.loads(self.cores[org].submit(self.ids[org], fn, list(args), actor))

    def restart(self, org: str) -> LedgerCore:
        """The broker of `org` starting again on the same state directory."""
        core = LedgerCore(self.db)
        witness = Witness(self.state_dir(org), self.ids[org])
        with pytest.raises(LedgerError) as info:
            core.attach(witness)
        core.close()
        assert info.value.code == "LEDGER_TAMPERED"
        return info.value


@pytest.fixture
def world(tmp_path: Path):
    db = tmp_path / "ledger.db"
    ids = {org: create_org(db, org, identity_dir=tmp_path / "ids") for org in ORGS}
    cas = {org: ident.ca_cert_pem for org, ident in ids.items()}
    cores, witnesses = {}, {}
    for org in ORGS:
        witness = Witness(tmp_path / "state" / org, ids[org])
        witness.trust(cas)
        core = LedgerCore(db)
        core.attach(witness)
        cores[org], witnesses[org] = core, witness
    w = World(db, ids, cores, witnesses, tmp_path)
    w.submit("UiS", "RegisterAsset", asset_json("a1"))  # 1
    w.submit("UiB", "RegisterAsset", asset_json("b1"))  # 2
    lease = w.submit("UiO", "RequestLease", "a1", "60", "study", actor="ola")  # 3
    w.submit("UiS", "UpdateAsset", "a1", '{"name": "A one"}')  # 4
    other = w.submit("UiO", "RequestLease", "b1", "60", "study", actor="ola")  # 5
    w.submit("UiB", "UpdateAsset", "b1", '{"name": "B one"}')  # 6
    w.submit("UiO", "ReleaseLease", other["id"], actor="ola")  # 7
    w.submit("UiS", "RegisterAsset", asset_json("a2"))  # 8
    for org in ORGS:  # a reaper pass each: everyone has seen sequence 8
        cores[org].audit(witnesses[org])
    w.lease = lease  # type: ignore[attr-defined]
    w.released = other  # type: ignore[attr-defined]
    yield w
    for core in cores.values():
        core.close()


def _problems(world: World, *witnesses: Path) -> list[str]:
    return [str(p) for p in verify(world.db, witnesses or world.all_witnesses()).problems]


def _saw(org: str, seq: int) -> str:
    return f"seq {seq}: the entry differs from the one {org}'s broker saw here on "


def test_an_untouched_ledger_extends_every_checkpoint(world):
    report = verify(world.db, world.all_witnesses())
    assert report.ok, report.problems
    assert sorted(report.witnesses) == sorted(ORGS)
    assert report.checkpoints >= 8


def test_lessee_admin_makes_its_lease_longer_and_rehashes(world):
    """UiO's admin, holding UiO's key, runs its own lease request again asking for an hour
    instead of a minute (the contract does that, so re-running it agrees), signs it,
    recomputes every later hash and countersigns the chain."""
    log = LedgerFile(world.db)
    entries = log.entries()
    i = find(entries, "RequestLease", "UiO")
    rerun_with(entries, i, ["a1", "3600", "study"], world.ids["UiO"])
    log.write(entries, keys={"UiO": world.ids["UiO"]})
    lease = json.loads(
        world.cores["UiO"].evaluate(world.ids["UiO"], "GetLease", [world.lease["id"]], "ola")
    )
    assert lease["expires_at"] > world.lease["expires_at"]  # served until someone looks

    # The file alone holds: every signature is someone's valid one, every entry replays.
    only_file = verify(world.db)
    assert only_file.ok, only_file.problems
    problems = _problems(world)
    # Each names the first of its checkpoints after the rewritten entry 3: UiS committed at
    # 1, 4 and 8, UiB at 2, 6 and 8. (UiO's own memory was UiO's to forge or keep.)
    assert any(p.startswith(_saw("UiS", 4)) for p in problems), problems
    assert any(p.startswith(_saw("UiB", 6)) for p in problems), problems

    with pytest.raises(LedgerError) as info:
        world.cores["UiS"].audit(world.witnesses["UiS"])  # UiS's next reaper pass
    assert info.value.code == "LEDGER_TAMPERED"
    assert info.value.message.startswith(
        "the ledger does not extend what UiS's broker saw: seq 8: the entry differs from the "
        "one UiS's broker saw here on "
    )
    assert info.value.message.endswith(
        "(history rewritten at or before this sequence). This broker serves nothing until an "
        "operator has run `dshare ledger verify` and restored the ledger"
    )
    # And from then on it answers nothing, reads included.
    with pytest.raises(LedgerError) as again:
        world.cores["UiS"].evaluate(world.ids["UiS"], "GetAsset", ["a1"], "siri")
    assert again.value.code == "LEDGER_TAMPERED"
    assert world.restart("UiB").code == "LEDGER_TAMPERED"


def test_file_writer_without_keys_rewrites_and_rehashes(world):
    log = LedgerFile(world.db)
    entries = log.entries()
    i = find(entries, "RequestLease", "UiO")
    rewrite_writes(entries[i], "lease/", lambda v: v.update(expires_at="2099-01-01T00:00:00Z"))
    log.write(entries)
    seq = i + 1
    problems = [str(p) for p in verify(world.db).problems]  # even without checkpoints
    assert (
        f"seq {seq}: the entry's effects are not what RequestLease does on the state before "
        "it (its reads, writes or answer were made up)"
    ) in problems
    assert (
        f"seq {seq}: the endorsement signature of 'UiO' does not match the entry (changed "
        "after it was signed)"
    ) in problems
    assert (
        f"seq {seq}: the commit signature of 'UiO' does not match this entry's position and "
        "hash (the chain was changed after it was committed)"
    ) in problems
    # A broker starting checks everything `verify` does, against its own checkpoints.
    assert world.restart("UiS").message.startswith(
        f"the ledger does not extend what UiS's broker saw: seq {seq}: the "
    )


def test_an_entry_removed_and_the_rest_renumbered(world):
    """UiO's admin removes its release of the second lease, as if it never happened."""
    log = LedgerFile(world.db)
    entries = log.entries()
    del entries[find(entries, "ReleaseLease", "UiO")]
    log.write(entries, keys={"UiO": world.ids["UiO"]})
    problems = _problems(world)
    assert any(p.startswith(_saw("UiS", 7)) for p in problems) or any(
        "UiS's broker saw the log reach this sequence" in p for p in problems
    ), problems
    assert "seq 8: UiS's broker saw the log reach this sequence on " in "\n".join(problems)
    assert world.restart("UiS").code == "LEDGER_TAMPERED"


def test_the_tail_cut_off_and_state_rolled_back_to_match(world):
    log = LedgerFile(world.db)
    log.write(log.entries()[:6], keys={"UiO": world.ids["UiO"]})
    problems = _problems(world)
    # Each names its first checkpoint past the cut: UiO committed at 7, the others at 8.
    for org, seq in (("UiS", 8), ("UiO", 7), ("UiB", 8)):
        assert any(
            p.startswith(f"seq {seq}: {org}'s broker saw the log reach this sequence on ")
            and p.endswith("but it ends at 6 (entries cut off)")
            for p in problems
        ), (org, problems)
    error = world.restart("UiB")
    assert error.message.startswith(
        "the ledger does not extend what UiB's broker saw: seq 8: UiB's broker saw the log "
        "reach this sequence on "
    )
    assert error.key == "8"


def test_a_running_broker_refuses_to_commit_onto_a_cut_ledger(world):
    log = LedgerFile(world.db)
    log.write(log.entries()[:6])
    with pytest.raises(LedgerError) as info:
        world.submit("UiS", "RegisterAsset", asset_json("a3"))
    assert info.value.code == "LEDGER_TAMPERED"
    assert "seq 8: UiS's broker saw the log reach this sequence on " in info.value.message
    assert log.head() == 6  # nothing was appended to the forged chain


def test_state_rolled_back_under_an_intact_log(world):
    """The lease's state goes back to before its release; the log is left alone."""
    before = world.root / "before.db"
    with sqlite3.connect(world.db) as src, sqlite3.connect(before) as dst:
        src.backup(dst)
    world.submit("UiO", "ReleaseLease", world.lease["id"], actor="ola")  # 9
    conn = sqlite3.connect(world.db, isolation_level=None)
    conn.execute("ATTACH DATABASE ? AS old", (str(before),))
    conn.execute("DELETE FROM state")
    conn.execute("INSERT INTO state SELECT * FROM old.state")
    conn.close()
    problems = _problems(world)
    assert problems and all(p.startswith("seq 9: world state") for p in problems), problems


def test_a_swapped_certificate(world, tmp_path):
    """The file's CA for UiS replaced by the forger's, UiS's entries re-signed under it."""
    fake = make_identity_files(tmp_path / "fake", "UiS")
    log = LedgerFile(world.db)
    entries = log.entries()
    for e in entries:
        if e.org == "UiS":
            e.proposal["cert_pem"] = fake.cert_pem
            e.changed = True
    log.write(entries, keys={"UiS": fake})
    log.sql("UPDATE orgs SET ca_cert_pem = ? WHERE msp_id = 'UiS'", fake.ca_cert_pem)
    only_file = verify(world.db)
    assert not only_file.ok  # tx ids bind the certificate: the forger re-derived none
    problems = _problems(world)
    assert problems[0].startswith(
        "seq 0: the ledger file registers another CA certificate for 'UiS' than its "
        "organizations trust ("
    )
    assert problems[0].endswith("): a swapped certificate")
    assert (
        "seq 1: the endorsing certificate is not trusted: the certificate presented for 'UiS' "
        "was not issued by 'UiS''s CA"
    ) in problems
    error = world.restart("UiO")
    assert error.message.startswith(
        "the ledger does not extend what UiO's broker saw: seq 0: the ledger file registers "
        "another CA certificate for 'UiS' than its organizations trust ("
    )


def test_an_old_signed_entry_replayed(world):
    """UiO's admin appends its own released lease request again: the lease is open again."""
    log = LedgerFile(world.db)
    entries = log.entries()
    replayed = entries[4]  # sequence 5: the second lease, released at 7
    assert replayed.proposal["fn"] == "RequestLease"
    entries.append(replayed)
    # The log's unique tx_id would refuse the copy: the forger rebuilds the table without it.
    conn = sqlite3.connect(world.db, isolation_level=None)
    conn.executescript(
        "CREATE TABLE t2 (seq INTEGER PRIMARY KEY, tx_id TEXT NOT NULL, body BLOB NOT NULL, "
        "hash TEXT NOT NULL, signature BLOB NOT NULL); DROP TABLE txlog; "
        "ALTER TABLE t2 RENAME TO txlog;"
    )
    conn.close()
    log.write(entries, keys={"UiO": world.ids["UiO"]})
    problems = _problems(world)
    tx = replayed.proposal["tx_id"][:16]
    assert f"seq 9: transaction {tx} was already committed at sequence 5 (a replayed entry)" in (
        problems
    )
    with pytest.raises(LedgerError) as info:
        world.cores["UiB"].audit(world.witnesses["UiB"])
    assert info.value.message.startswith(
        f"the ledger does not extend what UiB's broker saw: seq 9: transaction {tx} was "
        "already committed at sequence 5 (a replayed entry)"
    )


def test_a_full_audit_finds_state_changed_under_an_intact_log(world):
    """The lease's expiry edited in the world state alone: the contract would serve it; the
    reaper's incremental pass cannot see it, its periodic full check does."""
    key = f"lease/{world.lease['id']}".encode()
    conn = sqlite3.connect(world.db, isolation_level=None)
    (value,) = conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
    forged = json.loads(value) | {"expires_at": "2099-01-01T00:00:00.000000Z"}
    conn.execute("UPDATE state SET value = ? WHERE key = ?", (json.dumps(forged).encode(), key))
    conn.close()
    uis, witness = world.cores["UiS"], world.witnesses["UiS"]
    uis.audit(witness)  # what was added since the last pass: nothing
    with pytest.raises(LedgerError) as info:
        uis.audit(witness, full=True)
    assert info.value.message.startswith(
        "the ledger does not extend what UiS's broker saw: seq 3: world state of key "
        f"'lease/{world.lease['id']}' differs from what this entry wrote"
    )


def test_an_entry_dated_back(world):
    """UiO's admin re-signs its last entry as if made four and a half minutes earlier (a
    key kept after it was retired could append entries dated back to when it was valid):
    verify names it, even without checkpoints. (The certificates here are five minutes
    old: further back, their validity already refuses it.)"""
    log = LedgerFile(world.db)
    entries = log.entries()
    i = find(entries, "ReleaseLease", "UiO")
    at = parse_time(entries[i].proposal["timestamp"]) - timedelta(seconds=270)
    args = [world.released["id"]]
    rerun_with(entries, i, args, world.ids["UiO"], timestamp=fmt_time(at))
    log.write(entries, keys={"UiO": world.ids["UiO"]})
    assert [str(p) for p in verify(world.db).problems] == [
        f"seq {i + 1}: the entry is timestamped {fmt_time(at)}, before entries already "
        "committed by more than the clock allows (backdated)"
    ]

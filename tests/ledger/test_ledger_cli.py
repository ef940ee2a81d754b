"""`dshare ledger init|verify|log` as the lead wires them into `dshare`."""

from __future__ import annotations

import argparse
import sqlite3
import stat

from ledger_helpers import asset_json

from dshare_hub.ledger.cli import add_ledger_commands
from dshare_hub.ledger.core import LedgerCore
from dshare_hub.ledger.identity import load_identity
from dshare_hub.ledger.witness import Witness, read_trust


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="dshare")
    add_ledger_commands(parser.add_subparsers())
    args = parser.parse_args(["ledger", *argv])
    return int(args.func(args))


def test_init_creates_identity_and_registers_ca(tmp_path, capsys):
    db = tmp_path / "ledger.db"
    assert run("init", "--db", str(db), "--org", "UiS") == 0
    ids = tmp_path / "identities" / "UiS"
    assert capsys.readouterr().out == (
        f"organization UiS: identity in {ids}\nits CA is registered on {db}\n"
    )
    assert stat.S_IMODE((ids / "key.pem").stat().st_mode) == 0o600
    conn = sqlite3.connect(db)
    (ca,) = conn.execute("SELECT ca_cert_pem FROM orgs WHERE msp_id = 'UiS'").fetchone()
    conn.close()
    assert ca == (ids / "ca.pem").read_text()
    assert run("init", "--db", str(db), "--org", "UiS") == 2
    assert capsys.readouterr().err == (
        f"dshare ledger: an identity for organization 'UiS' already exists in {ids}; "
        "load it instead of creating a new one\n"
    )


def test_init_with_custom_dir(tmp_path):
    assert run("init", "--db", str(tmp_path / "l.db"), "--org", "UiO", "--dir", str(tmp_path)) == 0
    assert load_identity(tmp_path, "UiO").msp_id == "UiO"


def _ledger(tmp_path):
    db = tmp_path / "ledger.db"
    run("init", "--db", str(db), "--org", "UiS")
    ident = load_identity(tmp_path / "identities", "UiS")
    core = LedgerCore(db)
    for name in ("a", "b", "c"):
        core.submit(ident, "RegisterAsset", [asset_json(name)], "alice")
    head = core._reader().execute("SELECT hash FROM txlog WHERE seq = 3").fetchone()[0]
    core.close()
    return db, head


NO_WITNESS = (
    "warning: no organization's state directory given (--witness): signatures are checked "
    "against the CAs registered in the file itself and no checkpoint is compared, so a "
    "deliberate rewrite or a cut-off tail cannot be detected\n"
)


def test_verify_ok_and_tampered(tmp_path, capsys):
    db, head = _ledger(tmp_path)
    capsys.readouterr()
    assert run("verify", "--db", str(db)) == 0
    assert capsys.readouterr().out == NO_WITNESS + f"OK: 3 entries, head {head}\n"
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE state SET value = ? WHERE key = ?", (b"{}", b"asset/b"))
    conn.close()
    assert run("verify", "--db", str(db)) == 1
    assert capsys.readouterr().out == NO_WITNESS + (
        "TAMPERED: 1 problem(s) in 3 entries; first at sequence 2\n"
        "  seq 2: world state of key 'asset/b' differs from what this entry wrote\n"
    )


def test_verify_against_a_brokers_checkpoints(tmp_path, capsys):
    db = tmp_path / "ledger.db"
    run("init", "--db", str(db), "--org", "UiS")
    ident = load_identity(tmp_path / "identities", "UiS")
    core = LedgerCore(db)
    core.attach(Witness(tmp_path / "uis-broker", ident))
    for name in ("a", "b"):
        core.submit(ident, "RegisterAsset", [asset_json(name)], "alice")
    head = core._reader().execute("SELECT hash FROM txlog WHERE seq = 2").fetchone()[0]
    core.close()
    capsys.readouterr()
    assert run("verify", "--db", str(db), "--witness", str(tmp_path / "uis-broker")) == 0
    assert capsys.readouterr().out == f"OK: 2 entries, head {head}; extends 2 checkpoints of UiS\n"
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DELETE FROM txlog WHERE seq = 2")
    conn.close()
    assert run("verify", "--db", str(db), "--witness", str(tmp_path / "uis-broker")) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "TAMPERED: 3 problem(s) in 1 entries; first at sequence 2"
    assert out[1].startswith("  seq 2: UiS's broker saw the log reach this sequence on ")
    assert out[1].endswith(", but it ends at 1 (entries cut off)")


def test_trust_adds_a_new_organization_once(tmp_path, capsys):
    db = tmp_path / "ledger.db"
    run("init", "--db", str(db), "--org", "UiS")
    run("init", "--db", str(tmp_path / "other.db"), "--org", "UiB", "--dir", str(tmp_path))
    core = LedgerCore(db)
    core.attach(Witness(tmp_path / "uis-broker", load_identity(tmp_path / "identities", "UiS")))
    core.close()
    capsys.readouterr()
    ca = tmp_path / "UiB" / "ca.pem"
    args = ("trust", "--witness", str(tmp_path / "uis-broker"), "--org", "UiB", "--ca", str(ca))
    assert run(*args) == 0
    assert capsys.readouterr().out.startswith("UiS's broker now trusts UiB (CA ")
    assert "UiB" in read_trust(tmp_path / "uis-broker")[2]
    other = tmp_path / "identities" / "UiS" / "ca.pem"
    assert run(*args[:-1], str(other)) == 2
    assert capsys.readouterr().err.startswith(
        f"dshare ledger: {tmp_path / 'uis-broker'} already trusts another CA for 'UiB' ("
    )


def test_verify_missing_file(tmp_path, capsys):
    assert run("verify", "--db", str(tmp_path / "none.db")) == 2
    missing = tmp_path / "none.db"
    assert capsys.readouterr().err == f"dshare ledger: no ledger database at {missing}\n"


def test_log_tail(tmp_path, capsys):
    db, head = _ledger(tmp_path)
    capsys.readouterr()
    assert run("log", "--db", str(db), "--tail", "1") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert lines[0].split()[0] == "3"
    assert "UiS/alice  RegisterAsset  event=AssetRegistered  writes=1" in lines[0]
    assert lines[0].endswith(f"hash={head[:16]}")
    assert run("log", "--db", str(db)) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["1", "2", "3"]
    assert run("log", "--db", str(db), "--tail", "0") == 2
    assert capsys.readouterr().err == "dshare ledger log: --tail must be at least 1\n"


def test_ledger_without_action_prints_usage(capsys):
    assert run() == 2
    assert capsys.readouterr().err.startswith("usage: dshare ledger [-h] ACTION ...")

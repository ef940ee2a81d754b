"""Any altered byte of the embedded ledger's log or state is found and named by sequence."""

from __future__ import annotations

import json
import sqlite3

import pytest
from ledger_helpers import asset_json

from dshare_hub.ledger.core import LedgerCore
from dshare_hub.ledger.identity import create_org
from dshare_hub.ledger.verify import verify


@pytest.fixture
def ledger_db(tmp_path):
    """Five entries: 1 register a1, 2 register a2, 3 lease a1, 4 update a1, 5 release."""
    db = tmp_path / "ledger.db"
    uis = create_org(db, "UiS", identity_dir=tmp_path / "ids")
    uio = create_org(db, "UiO", identity_dir=tmp_path / "ids")
    core = LedgerCore(db)
    core.submit(uis, "RegisterAsset", [asset_json("a1")], "alice")
    core.submit(uis, "RegisterAsset", [asset_json("a2")], "alice")
    lease = json.loads(core.submit(uio, "RequestLease", ["a1", "60", "x"], "bob"))
    core.submit(uis, "UpdateAsset", ["a1", '{"name": "Renamed"}'], "alice")
    core.submit(uio, "ReleaseLease", [lease["id"]], "bob")
    core.close()
    return db


def _flip(data: bytes, at: int) -> bytes:
    """Change one byte to another printable byte, keeping the text valid."""
    new = b"B" if data[at : at + 1] == b"A" else b"A"
    return data[:at] + new + data[at + 1 :]


def _edit(db, sql, *params):
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(sql, params)
    conn.close()


def _row(db, sql, *params):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchone()
    finally:
        conn.close()


def test_intact_ledger_verifies(ledger_db):
    report = verify(ledger_db)
    assert report.ok
    assert report.entries == 5
    assert report.head_hash == _row(ledger_db, "SELECT hash FROM txlog WHERE seq = 5")[0]
    assert report.first_bad_seq is None


def test_altered_signature(ledger_db):
    (record,) = _row(ledger_db, "SELECT signature FROM txlog WHERE seq = 3")
    at = record.index(b'"signature":"') + 20  # inside the base64 of UiO's commit signature
    _edit(ledger_db, "UPDATE txlog SET signature = ? WHERE seq = 3", _flip(record, at))
    report = verify(ledger_db)
    assert [str(p) for p in report.problems] == [
        "seq 3: the commit signature of 'UiO' does not match this entry's position and hash "
        "(the chain was changed after it was committed)"
    ]


def test_altered_endorsement_signature(ledger_db):
    (body,) = _row(ledger_db, "SELECT body FROM txlog WHERE seq = 3")
    at = body.index(b'"signature":"') + 20
    _edit(ledger_db, "UPDATE txlog SET body = ? WHERE seq = 3", _flip(body, at))
    assert [str(p) for p in verify(ledger_db).problems] == [
        "seq 3: the entry's hash does not match its bytes (altered entry)",
        "seq 3: the endorsement signature of 'UiO' does not match the entry (changed after it "
        "was signed)",
    ]


def test_altered_write_set(ledger_db):
    (body,) = _row(ledger_db, "SELECT body FROM txlog WHERE seq = 2")
    marker = b'"writes":[["asset/a2","'
    _edit(
        ledger_db,
        "UPDATE txlog SET body = ? WHERE seq = 2",
        _flip(body, body.index(marker) + len(marker) + 8),
    )
    report = verify(ledger_db)
    assert report.first_bad_seq == 2
    assert "seq 2: the entry's hash does not match its bytes (altered entry)" in map(
        str, report.problems
    )
    assert "seq 2: world state of key 'asset/a2' differs from what this entry wrote" in map(
        str, report.problems
    )


def test_altered_state_value(ledger_db):
    key = b"asset/a1"
    (value,) = _row(ledger_db, "SELECT value FROM state WHERE key = ?", key)
    _edit(ledger_db, "UPDATE state SET value = ? WHERE key = ?", value.replace(b"Re", b"Ra"), key)
    assert [str(p) for p in verify(ledger_db).problems] == [
        "seq 4: world state of key 'asset/a1' differs from what this entry wrote"
    ]


def test_altered_state_version(ledger_db):
    _edit(ledger_db, "UPDATE state SET version = 1 WHERE key = ?", b"asset/a1")
    assert [str(p) for p in verify(ledger_db).problems] == [
        "seq 4: world state of key 'asset/a1' differs from what this entry wrote"
    ]


def test_inserted_state_key(ledger_db):
    _edit(ledger_db, "INSERT INTO state VALUES (?, ?, 3)", b"asset/ghost", b"{}")
    assert [str(p) for p in verify(ledger_db).problems] == [
        "seq 3: world state holds key 'asset/ghost' that the log never wrote"
    ]


def test_altered_history(ledger_db):
    _edit(ledger_db, "UPDATE history SET value = ? WHERE key = ? AND seq = 2", b"{}", b"asset/a2")
    assert [str(p) for p in verify(ledger_db).problems] == [
        "seq 2: the history of key 'asset/a2' differs from this entry's write"
    ]


def test_altered_hash_column(ledger_db):
    (digest,) = _row(ledger_db, "SELECT hash FROM txlog WHERE seq = 2")
    # A different first digit: "0" + digest[1:] is no change at all for one hash in 16.
    altered = ("1" if digest[0] == "0" else "0") + digest[1:]
    _edit(ledger_db, "UPDATE txlog SET hash = ? WHERE seq = 2", altered)
    assert [str(p) for p in verify(ledger_db).problems] == [
        "seq 2: the entry's hash does not match its bytes (altered entry)",
        "seq 2: the commit signature of 'UiS' does not match this entry's position and hash "
        "(the chain was changed after it was committed)",
        "seq 3: the entry does not link to the previous entry's hash",
    ]


def test_altered_actor_in_signed_proposal(ledger_db):
    (body,) = _row(ledger_db, "SELECT body FROM txlog WHERE seq = 5")
    _edit(ledger_db, "UPDATE txlog SET body = ? WHERE seq = 5", body.replace(b'"bob"', b'"bod"'))
    assert [str(p) for p in verify(ledger_db).problems] == [
        "seq 5: ReleaseLease run again on the state before this entry is refused "
        "(NOT_LESSEE): the entry records effects the contract does not produce",
        "seq 5: the entry's hash does not match its bytes (altered entry)",
        "seq 5: the endorsement signature of 'UiO' does not match the entry (changed after it "
        "was signed)",
    ]


def test_removed_entry(ledger_db):
    _edit(ledger_db, "DELETE FROM txlog WHERE seq = 3")
    problems = [str(p) for p in verify(ledger_db).problems]
    assert "seq 4: the log skips from sequence 2 to 4 (entries removed)" in problems
    assert "seq 4: the entry does not link to the previous entry's hash" in problems
    assert verify(ledger_db).first_bad_seq == 3  # state rows written by the removed entry


def test_altered_tx_id_column(ledger_db):
    (tx_id,) = _row(ledger_db, "SELECT tx_id FROM txlog WHERE seq = 1")
    forged = "f" * 64
    _edit(ledger_db, "UPDATE txlog SET tx_id = ? WHERE seq = 1", forged)
    assert [str(p) for p in verify(ledger_db).problems] == [
        f"seq 1: the tx_id column '{forged}' differs from the signed proposal's"
    ]
    assert tx_id != forged


def test_replaced_org_ca(ledger_db):
    (ca,) = _row(ledger_db, "SELECT ca_cert_pem FROM orgs WHERE msp_id = 'UiS'")
    _edit(ledger_db, "UPDATE orgs SET ca_cert_pem = ? WHERE msp_id = 'UiO'", ca)
    problems = [str(p) for p in verify(ledger_db).problems]
    untrusted = "the certificate presented for 'UiO' was not issued by 'UiO''s CA"
    assert problems == [
        f"seq 3: the committer's certificate is not trusted: {untrusted}",
        f"seq 3: the endorsing certificate is not trusted: {untrusted}",
        f"seq 5: the committer's certificate is not trusted: {untrusted}",
        f"seq 5: the endorsing certificate is not trusted: {untrusted}",
    ]


def test_removed_org(ledger_db):
    _edit(ledger_db, "DELETE FROM orgs WHERE msp_id = 'UiO'")
    unknown = "organization 'UiO' has no registered CA"
    assert [str(p) for p in verify(ledger_db).problems] == [
        f"seq 3: the committer's certificate is not trusted: {unknown}",
        f"seq 3: the endorsing certificate is not trusted: {unknown}",
        f"seq 5: the committer's certificate is not trusted: {unknown}",
        f"seq 5: the endorsing certificate is not trusted: {unknown}",
    ]


def test_removed_state_key(ledger_db):
    _edit(ledger_db, "DELETE FROM state WHERE key = ?", b"asset/a2")
    assert [str(p) for p in verify(ledger_db).problems] == [
        "seq 2: world state lacks key 'asset/a2' written by this entry"
    ]


def test_unreadable_entry_body(ledger_db):
    _edit(ledger_db, "UPDATE txlog SET body = ? WHERE seq = 1", b"not json")
    problems = [str(p) for p in verify(ledger_db).problems]
    assert problems[:3] == [
        "seq 1: the entry's hash does not match its bytes (altered entry)",
        "seq 1: the entry's body is not a readable log entry (altered bytes)",
        "seq 1: the commit signature cannot be checked: its entry is unreadable",
    ]


def test_verify_refuses_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        verify(tmp_path / "nope.db")
    assert str(info.value) == f"no ledger database at {tmp_path / 'nope.db'}"

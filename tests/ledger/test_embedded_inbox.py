"""Cross-process group commit: whoever holds the write lock commits every waiting
transaction, and outcomes survive for the process that submitted them."""

from __future__ import annotations

import json
import sqlite3

import pytest
from ledger_helpers import asset_json

from dshare_hub.ledger.core import LedgerCore
from dshare_hub.ledger.identity import create_org
from dshare_hub.ledger.inbox import decode, encode
from dshare_hub.ledger.verify import verify


@pytest.fixture
def two_processes(tmp_path):
    """Two cores on one file stand in for two broker processes."""
    db = tmp_path / "ledger.db"
    uis = create_org(db, "UiS", identity_dir=tmp_path / "ids")
    a, b = LedgerCore(db), LedgerCore(db)
    yield a, b, uis
    a.close()
    b.close()


def _endorsed_item(core, ident, asset_id):
    args = [asset_json(asset_id)]
    return core.endorse(ident, core.propose(ident, "RegisterAsset", args, "alice"), args).item()


def _count(core, table):
    return core._reader().execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_item_round_trips_through_the_inbox_encoding(two_processes):
    a, _b, uis = two_processes
    item = _endorsed_item(a, uis, "x")
    assert decode(encode(item)) == item


def test_waiting_transaction_of_another_process_is_committed_by_the_lock_holder(
    two_processes,
):
    a, b, uis = two_processes
    waiting = _endorsed_item(a, uis, "from-a")
    (inbox_id,) = a._inbox.put([waiting], [])  # A is waiting for the lock
    b.submit(uis, "RegisterAsset", [asset_json("from-b")], "bob")
    assert _count(a, "txlog") == 2
    assert a._inbox.outcomes([inbox_id]) == {
        inbox_id: {"status": "ok", "tx_id": waiting.proposal.tx_id, "seq": 1}
    }
    assert a._inbox.waiting() == []
    got = json.loads(a.evaluate(uis, "GetAsset", ["from-a"], "alice"))
    assert got["created_by"] == {"org": "UiS", "actor": "alice"}
    assert verify(a.path).ok


def test_committed_transaction_whose_outcome_was_lost_is_not_applied_twice(two_processes):
    a, b, uis = two_processes
    item = _endorsed_item(a, uis, "once")
    a._process([(0, encode(item))], uis)  # committed; the process "dies" before leaving outcomes
    (inbox_id,) = a._inbox.put([item], [])  # the entry is still in the inbox
    b.submit(uis, "RegisterAsset", [asset_json("next")], "bob")
    assert a._inbox.outcomes([inbox_id]) == {
        inbox_id: {"status": "ok", "tx_id": item.proposal.tx_id, "seq": 1}
    }
    assert _count(a, "txlog") == 2
    assert verify(a.path).ok


def test_unreadable_inbox_entry_is_dropped_with_an_outcome(two_processes):
    a, b, uis = two_processes
    conn = sqlite3.connect(a._inbox.path)
    with conn:
        garbage_id = conn.execute("INSERT INTO inbox (payload) VALUES (?)", (b"{",)).lastrowid
    conn.close()
    b.submit(uis, "RegisterAsset", [asset_json("fine")], "bob")
    assert a._inbox.outcomes([garbage_id]) == {
        garbage_id: {
            "status": "error",
            "tx_id": None,
            "code": "LEDGER_ERROR",
            "message": "an unreadable transaction was dropped from the inbox",
        }
    }
    assert a._inbox.waiting() == []
    assert _count(a, "txlog") == 1


def test_conflicting_waiting_transactions_get_conflict_outcomes(two_processes):
    a, b, uis = two_processes
    first = _endorsed_item(a, uis, "same")
    second = _endorsed_item(b, uis, "same")  # both simulated before either committed
    ids = a._inbox.put([first, second], [])
    out = a._process(a._inbox.waiting(), uis)
    assert out[ids[0]] == {"status": "ok", "tx_id": first.proposal.tx_id, "seq": 1}
    assert out[ids[1]]["status"] == "conflict"
    assert _count(a, "txlog") == 1

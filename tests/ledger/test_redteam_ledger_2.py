"""Second red-team pass on the embedded ledger: the defences added after the first one.

Same threat model and world as `test_redteam_ledger.py` (three brokers that have all seen
sequence 8): (a) anyone who can write ledger.db, ledger.db.inbox and ledger.db.lock, with
or without ONE organization's private key; (b) nobody writes another organization's state
directory. Each test performs one attack and asserts the secure outcome: it passes while
the defence holds and fails while the hole is open.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ledger_forgery import LedgerFile
from ledger_helpers import asset_json
from test_redteam_ledger import (  # the world fixture and the attackers' helpers
    World,
    append,
    append_entry,
    append_item,
    chain_tx_ids,
    leave_in_inbox,
    leave_raw,
    outcome,
    refused_or_applied,
    sql,
)
from test_redteam_ledger import world as first_world  # noqa: F401 - a fixture

from dshare_chaincode import keys
from dshare_chaincode.stub import create_composite_key
from dshare_hub.ledger import LedgerError
from dshare_hub.ledger import commit as commit_module
from dshare_hub.ledger import core as core_module
from dshare_hub.ledger.chain import file_problems
from dshare_hub.ledger.core import LEDGER_TAMPERED, LedgerCore, ReadConflict
from dshare_hub.ledger.identity import OrgIdentity, make_identity_files
from dshare_hub.ledger.inbox import Item
from dshare_hub.ledger.txlog import (
    Proposal,
    canonical,
    endorsed_bytes,
    entry_body,
    result_hash,
    sha256_hex,
)
from dshare_hub.ledger.verify import verify
from dshare_hub.ledger.witness import TRUST_FILE

EXCLUSIVE = {"max_duration_s": 3600, "exclusive": True}


@pytest.fixture
def world(request: pytest.FixtureRequest) -> World:
    """The first pass's world: three brokers that have all seen sequence 8."""
    return request.getfixturevalue("first_world")


# -- what a key holder does: run the contract itself, at a time of its choosing ----------------


def run_as(
    world: World,
    org: str,
    fn: str,
    *args: str,
    actor: str = "u",
    at: datetime,
    identity: OrgIdentity | None = None,
) -> Item:
    """`org`'s admin executes `fn` honestly on the current state as if at `at` (the
    committers' clock rule never sees it) and signs the result with `org`'s key."""
    identity = identity or world.ids[org]
    proposal = LedgerCore.propose(identity, fn, list(args), actor, at=at)
    stub, result = world.cores[org]._simulate(proposal, list(args))
    digest = result_hash(result)
    endorsement = stub.effects().endorsement(digest, list(args))
    signature = identity.sign(endorsed_bytes(proposal.as_dict(), endorsement))
    return Item(proposal, signature, stub.effects(), digest, list(args))


def resign(world: World, org: str, item: Item) -> Item:
    item.signature = world.ids[org].sign(
        endorsed_bytes(item.proposal.as_dict(), item.endorsement())
    )
    return item


def lease_key(item: Item) -> bytes:
    return next(k for k in item.effects.writes if k.startswith(b"lease/"))


def head(db: Path) -> int:
    return LedgerFile(db).head()


def seq_problems(world: World, seq: int) -> list[str]:
    return [p for p in world.verify() if p.startswith(f"seq {seq}:")]


# == 1. re-running the contract: what the re-run compares, and on which state ====================


def test_rogue_made_up_lease_is_not_served_by_the_owners_broker(world):
    """UiO's admin appends, signed and committed with UiO's own key, a lease of UiS's asset
    whose policy needs UiS's approval, already active. Every signature is genuine and the
    chain extends every checkpoint; only re-running the entry shows that RequestLease makes
    a *pending* lease. UiS's broker looks at the new entry before it answers GetLease (as it
    does before it mounts the data), but that look does not re-run anything."""
    world.submit("UiS", "RegisterAsset", asset_json("p1", policy={"approval_required": True}))
    for org in ("UiS", "UiO"):
        assert world.audit(org) is None  # 9 seen by both
    item = world.endorse("UiO", "RequestLease", "p1", "600", "study", actor="ola").item()
    key = lease_key(item)
    lease = json.loads(item.effects.writes[key])
    assert lease["state"] == "pending"
    lease.update(
        state="active",
        granted_at=lease["requested_at"],
        expires_at="2099-01-01T00:00:00.000000Z",
    )
    item.effects.writes[key] = json.dumps(lease).encode()
    append_item(world.db, resign(world, "UiO", item), committer=world.ids["UiO"])  # 10
    assert seq_problems(world, 10), "verify re-runs it and names it (the defence that holds)"
    assert refused_or_applied(lambda: world.evaluate("UiS", "GetLease", lease["id"])), (
        "UiS's broker served an active lease of its approval-only asset that the contract "
        "never granted; only its hourly full audit re-runs entries"
    )


def test_keyless_state_edit_makes_an_honest_committer_sign_a_double_lease(world):
    """Keyless: UiB holds the exclusive x1; the attacker deletes the row of UiB's lease from
    the open-lease index in the state table (the log is untouched, so no look sees it). UiO's
    honest request is executed and re-executed on that state: both agree, and UiS's
    committer countersigns a second lease of an exclusive asset. Verify's re-run later
    finds the entry, but it is now signed by two honest organizations and checkpointed: the
    ledger can only be repaired by cutting history every broker saw."""
    world.submit("UiS", "RegisterAsset", asset_json("x1", policy=EXCLUSIVE))  # 9
    held = world.submit("UiB", "RequestLease", "x1", "600", "study", actor="bo")  # 10
    index = create_composite_key(keys.OPEN_LEASES, ["x1", held["id"]]).encode()
    sql(world.db, "DELETE FROM state WHERE key = ?", index)
    endorsed = world.endorse("UiO", "RequestLease", "x1", "600", "study", actor="ola")
    try:
        world.cores["UiS"].commit(endorsed)  # UiS's broker commits what waits
    except (LedgerError, ReadConflict):
        return
    active = world.evaluate("UiS", "ListLeases", '{"asset_id": "x1", "state": "active"}')
    assert len(active["items"]) <= 1, (
        "an honest committer re-executed on a state table nobody checks and countersigned a "
        f"second active lease of exclusive x1 (verify now says: {seq_problems(world, 11)})"
    )


def test_rogue_float_read_version_bricks_the_ledger_through_an_honest_committer(world):
    """UiO's admin signs its genuine lease request with every read version written as a
    float (8.0). The committer's checks compare with ==, so 8 == 8.0 passes MVCC and the
    re-run, and UiS's broker appends, countersigns and checkpoints the entry; every walker
    then rejects it as unreadable (versions must be ints). One org's key thus makes every
    broker refuse for good: the entry is under UiS's checkpoint and cannot be removed."""
    item = world.endorse("UiO", "RequestLease", "a2", "600", "study", actor="ola").item()
    item.effects.reads = {k: float(v) for k, v in item.effects.reads.items()}
    (inbox_id,) = leave_in_inbox(world.db, resign(world, "UiO", item))
    world.submit("UiS", "RegisterAsset", asset_json("a3"))
    committed = item.proposal.tx_id in chain_tx_ids(world.db)
    refusal = world.audit("UiS")
    assert not committed and refusal is None, (
        f"UiS's committer accepted read versions 8.0 ({outcome(world.db, inbox_id)}); its own "
        f"next look answers {refusal}, and so will every broker's, for good"
    )


@pytest.mark.parametrize(
    "forge",
    ["result_hash", "args", "extra_read"],
)
def test_inbox_item_whose_signed_answer_or_args_differ_is_not_committed(world, forge):
    """UiO's admin signs honest effects with another answer, with arguments that are not
    the ones the effects come from (digest updated), or with a read the contract never
    made: the committer's re-run must refuse each."""
    item = world.endorse("UiO", "RequestLease", "a2", "600", "study", actor="ola").item()
    if forge == "result_hash":
        item.result_hash = result_hash(b'{"state":"active"}')
    elif forge == "args":
        args = ["a2", "3600", "study"]
        item.args = args
        item.proposal = LedgerCore.propose(world.ids["UiO"], "RequestLease", args, "ola")
        item.proposal = dataclasses.replace(
            item.proposal,
            timestamp=json.loads(item.effects.writes[lease_key(item)])["requested_at"],
        )
    else:
        item.effects.reads[b"asset/a1"] = 4
    (inbox_id,) = leave_in_inbox(world.db, resign(world, "UiO", item))
    world.submit("UiS", "RegisterAsset", asset_json("a3"))
    assert item.proposal.tx_id not in chain_tx_ids(world.db)
    assert outcome(world.db, inbox_id)["code"] == "ENDORSEMENT_MISMATCH"


def test_rogue_entry_with_the_right_effects_but_another_answer_is_found_by_verify(world):
    """Appended directly with UiO's own commit signature: what it answered (the result
    hash) is part of what the re-run compares."""
    item = world.endorse("UiO", "RequestLease", "a2", "600", "study", actor="ola").item()
    item.result_hash = result_hash(b"{}")
    seq = append_item(world.db, resign(world, "UiO", item), committer=world.ids["UiO"])
    assert seq_problems(world, seq)


# == 2. the refused table and the clock rule =====================================================


def test_resurrected_conflict_is_refused_by_the_clock_once_its_window_passed(world, monkeypatch):
    """The documented residue is a file writer deleting a `refused` row within 120 s; past
    the clock window the rule alone must refuse it, whatever the table says."""
    world.submit("UiS", "RegisterAsset", asset_json("x1", policy=EXCLUSIVE))  # 9
    lost = world.endorse("UiO", "RequestLease", "x1", "600", "study", actor="ola")
    won = world.endorse("UiB", "RequestLease", "x1", "600", "study", actor="bo")
    world.cores["UiB"].commit(won)
    with pytest.raises(ReadConflict):
        world.cores["UiO"].commit(lost)
    world.submit("UiB", "ReleaseLease", json.loads(won.result)["id"], actor="bo")
    sql(world.db, "DELETE FROM refused")

    class Later(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return datetime.now(tz) + timedelta(seconds=125)

    monkeypatch.setattr(commit_module, "datetime", Later)
    monkeypatch.setattr(core_module, "datetime", Later)
    (inbox_id,) = leave_in_inbox(world.db, lost.item())
    world.submit("UiS", "RegisterAsset", asset_json("a3"))
    assert lost.proposal.tx_id not in chain_tx_ids(world.db)
    refusal = outcome(world.db, inbox_id)
    assert refusal["code"] == "LEDGER_ERROR"
    assert "from the ledger's clock" in refusal["message"]


def test_forward_dated_lease_is_found_by_verify(world):
    """UiO's admin (its own key, its own commit signature) runs RequestLease of the
    exclusive x1, which UiB holds, as if a day from now: then UiB's lease has ended, so the
    contract grants it, expiring tomorrow, and it counts as active today. The clock rule
    binds committers only; the walker catches entries dated *back*, not forward, and the
    re-run agrees (it runs at the entry's own time). So two exclusive leases are active and
    verify, with every witness, says the ledger is intact."""
    world.submit("UiS", "RegisterAsset", asset_json("x1", policy=EXCLUSIVE))  # 9
    world.submit("UiB", "RequestLease", "x1", "600", "study", actor="bo")  # 10
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    item = run_as(world, "UiO", "RequestLease", "x1", "600", "study", actor="ola", at=tomorrow)
    seq = append_item(world.db, item, committer=world.ids["UiO"])  # 11
    assert seq_problems(world, seq), (
        f"verify accepts an entry dated a day ahead of every other: {world.verify()}"
    )


def test_forward_dated_entry_is_refused_by_a_running_broker(world):
    """The same forgery at the next look of the broker that owns x1, before it answers."""
    world.submit("UiS", "RegisterAsset", asset_json("x1", policy=EXCLUSIVE))  # 9
    world.submit("UiB", "RequestLease", "x1", "600", "study", actor="bo")  # 10
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    item = run_as(world, "UiO", "RequestLease", "x1", "600", "study", actor="ola", at=tomorrow)
    append_item(world.db, item, committer=world.ids["UiO"])
    assert refused_or_applied(
        lambda: world.evaluate("UiS", "ListLeases", '{"asset_id": "x1", "state": "active"}')
    ), "UiS's broker served a second active lease of its exclusive asset, dated tomorrow"


# == 3. the submitter's confirmation and the brokers' catch-up ===================================


def _carry(db: Path, seq: int, tx_id: str) -> None:
    """Keyless: rewrite old entry `seq` (body, hash, tx_id column) so it claims `tx_id`."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        (body,) = conn.execute("SELECT body FROM txlog WHERE seq = ?", (seq,)).fetchone()
        doc = json.loads(body)
        doc["proposal"]["tx_id"] = tx_id
        forged = canonical(doc)
        conn.execute(
            "UPDATE txlog SET body = ?, hash = ?, tx_id = ? WHERE seq = ?",
            (forged, sha256_hex(forged), tx_id, seq),
        )
    finally:
        conn.close()


def test_keyless_old_entry_rewritten_to_carry_a_new_tx_swallows_it(world):
    """UiS's RegisterAsset waits; the attacker (holding ledger.db.lock meanwhile) rewrites
    entry 1, which every broker walked long ago, to carry its tx id. The committer takes it
    for "committed by a process that died" and reports seq 1; `_confirm` finds the body
    there carrying the tx id with a matching hash; `_catch_up` does not look, since every
    broker has seen past 1. The submitter is told it committed; nothing was appended."""
    endorsed = world.endorse("UiS", "RegisterAsset", asset_json("a3"))
    _carry(world.db, 1, endorsed.proposal.tx_id)
    try:
        world.cores["UiS"].commit(endorsed)
    except LedgerError:
        return  # refused: the submitter is not lied to
    assert head(world.db) == 9, (
        "UiS's broker reported RegisterAsset a3 committed at sequence 1, an old entry "
        "rewritten to claim it; the log holds no such transaction"
    )


def test_forged_ok_outcome_with_a_matching_row_at_the_head_is_refused(world):
    """The outcome says seq 9 and a keyless row at 9 carries the tx id with a matching
    hash: `_confirm` believes it, `_catch_up` then walks 9 and refuses."""
    endorsed = world.endorse("UiS", "RegisterAsset", asset_json("a3"))
    tx = endorsed.proposal.tx_id
    append(world.db, tx, lambda seq, prev: canonical({"proposal": {"tx_id": tx}}), record=b"{}")
    sql(
        Path(str(world.db) + ".inbox"),
        "CREATE TRIGGER mallory AFTER INSERT ON inbox BEGIN "
        "INSERT OR REPLACE INTO outcome (id, body, created) VALUES (NEW.id, json_object("
        "'status', 'ok', 'tx_id', json_extract(CAST(NEW.payload AS TEXT), '$.p.tx_id'), "
        "'seq', 9), 1e12); DELETE FROM inbox WHERE id = NEW.id; END",
    )
    with pytest.raises(LedgerError) as info:
        world.cores["UiS"].commit(endorsed)
    assert info.value.code == LEDGER_TAMPERED


def test_backdated_entry_is_refused_at_the_next_look(world):
    """UiO's admin appends, with its own commit signature, a lease request dated 270 s back
    (a key kept after it was retired signs within its validity). Verify names it; a running
    broker's look walks only the new entries with a fresh walker that remembers no earlier
    timestamp, so it checkpoints the entry and serves it."""
    back = datetime.now(UTC) - timedelta(seconds=270)
    item = run_as(world, "UiO", "RequestLease", "a2", "600", "study", actor="ola", at=back)
    seq = append_item(world.db, item, committer=world.ids["UiO"])  # 9
    assert any("backdated" in p for p in seq_problems(world, seq))  # verify: holds
    assert refused_or_applied(lambda: world.evaluate("UiS", "GetAsset", "a2")), (
        "UiS's broker looked at a backdated entry and served the ledger"
    )


# == 4. the witness's tx-id map after a failed check =============================================


def test_failed_check_does_not_poison_the_replay_map(world):
    """A replay (seq 5 again) is refused; the operator removes it; the same Witness object
    is attached to a new core (full audit). A second replay must still be found and a
    genuine commit must still pass."""
    sql(world.db, "UPDATE txlog SET tx_id = 'x' || tx_id WHERE seq = 5")
    original = LedgerFile(world.db).entries()[4]

    def replay() -> int:
        return append_entry(
            world.db,
            Proposal.from_dict(original.proposal),
            original.endorsement,
            base64.b64decode(original.signature),
            committer=world.ids["UiO"],
        )

    seq = replay()
    assert world.audit("UiS") == LEDGER_TAMPERED
    sql(world.db, "DELETE FROM txlog WHERE seq = ?", seq)
    sql(world.db, "UPDATE txlog SET tx_id = substr(tx_id, 2) WHERE seq = 5")
    LedgerFile(world.db).rebuild_state()
    witness = world.witnesses["UiS"]
    core = LedgerCore(world.db)
    try:
        core.attach(witness)
        core.submit(world.ids["UiS"], "RegisterAsset", [asset_json("a3")], "u")  # 9
        sql(world.db, "UPDATE txlog SET tx_id = 'x' || tx_id WHERE seq = 5")
        replay()  # 10
        with pytest.raises(LedgerError) as info:
            core.audit(witness)
        assert info.value.code == LEDGER_TAMPERED
        assert "replayed entry" in info.value.message
    finally:
        core.close()


# == 5. the file around the log ==================================================================


def _hidden_trigger(db: Path, type_: str) -> None:
    """A trigger whose schema row's type is not spelled 'trigger': SQLite still loads it
    from its SQL. It forgets every refusal as it is recorded."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        (version,) = conn.execute("PRAGMA schema_version").fetchone()
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute(
            "INSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql) VALUES "
            "(?, 'mallory', 'refused', 0, 'CREATE TRIGGER mallory AFTER INSERT ON refused "
            "BEGIN DELETE FROM refused WHERE tx_id = NEW.tx_id; END')",
            (type_,),
        )
        conn.execute(f"PRAGMA schema_version = {version + 1}")
        conn.execute("PRAGMA writable_schema = OFF")
    finally:
        conn.close()


def test_trigger_hidden_by_its_schema_type_is_found(world):
    _hidden_trigger(world.db, "Trigger")
    conn = sqlite3.connect(world.db)
    try:
        problems = file_problems(conn)
    finally:
        conn.close()
    assert problems, "file_problems looks for type = 'trigger' only"
    assert world.audit("UiS") == LEDGER_TAMPERED


def test_hidden_trigger_resurrects_a_conflicted_lease(world):
    """With the hidden trigger no refusal is ever remembered: the first pass's resurrected
    conflict commits again, and no broker's look objects."""
    _hidden_trigger(world.db, "Trigger")
    try:
        world.submit("UiS", "RegisterAsset", asset_json("x1", policy=EXCLUSIVE))  # 9
        lost = world.endorse("UiO", "RequestLease", "x1", "600", "study", actor="ola")
        won = world.endorse("UiB", "RequestLease", "x1", "600", "study", actor="bo")
        world.cores["UiB"].commit(won)
        with pytest.raises(ReadConflict):
            world.cores["UiO"].commit(lost)
        world.submit("UiB", "ReleaseLease", json.loads(won.result)["id"], actor="bo")
        leave_in_inbox(world.db, lost.item())
        world.submit("UiS", "RegisterAsset", asset_json("a3"))
    except LedgerError as exc:
        assert exc.code == LEDGER_TAMPERED
        return
    assert lost.proposal.tx_id not in chain_tx_ids(world.db), (
        "a trigger the file check cannot see made a refused lease request commit"
    )


def test_rows_at_sequence_zero_and_negative_are_reported(world):
    for seq in (0, -3):
        sql(
            world.db,
            "INSERT INTO txlog (seq, tx_id, body, hash, signature) VALUES (?, ?, '{}', '', x'')",
            seq,
            f"hidden{seq}",
        )
    assert world.audit("UiS") == LEDGER_TAMPERED
    assert any(p.startswith("seq 0:") and "sequence 0 or below" in p for p in world.verify())


# == robustness: what a keyless writer makes the committer and verify choke on ====================


def test_keyless_inbox_item_with_a_lone_surrogate_nonce_does_not_wedge_every_commit(world):
    """The nonce is hashed into the tx id (`nonce.encode()`) inside `check_item`, outside
    the guard that drops unreadable items: a UnicodeEncodeError aborts the whole batch, the
    item stays, and every broker's every commit fails the same way."""
    p = LedgerCore.propose(world.ids["UiO"], "UpdateAsset", [], "mallory").as_dict()
    p["nonce"] = "\ud800"
    doc = {"p": p, "s": "", "r": [], "g": [], "w": [], "e": None, "h": "", "a": []}
    leave_raw(world.db, json.dumps(doc).encode())
    failed = []
    for org, asset in (("UiS", "a3"), ("UiB", "b3"), ("UiS", "a4")):
        try:
            world.submit(org, "RegisterAsset", asset_json(asset))
        except Exception as exc:
            failed.append(f"{org}: {type(exc).__name__}")
    assert not failed, f"every commit fails while the item waits: {failed}"


@pytest.mark.parametrize("field", ["nonce", "cert_pem", "actor"])
def test_verify_survives_a_lone_surrogate_in_a_logged_proposal(world, field):
    """Keyless: an appended entry whose proposal has a lone surrogate (JSON \\ud800) in a
    field the walker or the re-run encodes; verify must name it, not crash."""
    proposal = LedgerCore.propose(world.ids["UiO"], "UpdateAsset", [], "mallory")
    proposal = dataclasses.replace(proposal, **{field: "\ud800"})
    endorsement = {
        "args": [],
        "reads": [],
        "ranges": [],
        "writes": [],
        "event": None,
        "result_hash": "0" * 64,
    }
    tx = proposal.tx_id
    append(
        world.db,
        tx,
        lambda seq, prev: entry_body(seq, prev, proposal, endorsement, b"x"),
        record=b"{}",
    )
    try:
        report = verify(world.db, world.dirs())
    except Exception as exc:
        pytest.fail(f"verify crashed: {exc!r}"[:300])
    assert not report.ok
    assert world.audit("UiS") == LEDGER_TAMPERED


# == 6. verify's trust rule ======================================================================


def test_verify_refuses_a_ca_one_witness_swapped_for_another_org(world, tmp_path):
    """UiO's admin (owning UiO's state directory) swaps UiB's CA in UiO's trust file for
    one of its own and re-signs UiB's entries with it, and its own checkpoints are left as
    they are: the other witnesses still trust UiB's real CA, so verify refuses."""
    fake = make_identity_files(tmp_path / "fake", "UiB")
    trust_path = world.state_dir("UiO") / TRUST_FILE
    trust = json.loads(trust_path.read_text())
    trust["orgs"]["UiB"] = fake.ca_cert_pem
    trust_path.write_text(json.dumps(trust))
    log = LedgerFile(world.db)
    entries = log.entries()
    for e in entries:
        if e.org == "UiB":
            e.changed = True
    log.write(entries, keys={"UiB": fake})
    problems = world.verify()
    assert any("witnesses trust different CA certificates for 'UiB'" in p for p in problems)
    only_uio = verify(world.db, [world.state_dir("UiO")])
    assert not only_uio.ok  # UiO's own checkpoints contradict the rewrite


def test_verify_with_the_rogue_witness_only_still_needs_the_real_cas(world):
    """With UiS's and UiO's witnesses, an entry of an org neither trusts is not vouched for
    even when the rogue UiO's broker committed it."""
    evil = make_identity_files(world.root / "evil", "Evil")
    trust_path = world.state_dir("UiO") / TRUST_FILE
    trust = json.loads(trust_path.read_text())
    trust["orgs"]["Evil"] = evil.ca_cert_pem
    trust_path.write_text(json.dumps(trust))
    now = datetime.now(UTC)
    item = run_as(world, "UiO", "RegisterAsset", asset_json("e1"), at=now, identity=evil)
    append_item(world.db, item, committer=world.ids["UiO"])
    report = verify(world.db, [world.state_dir("UiS"), world.state_dir("UiO")])
    assert any("'Evil' is trusted by UiO only" in str(p) for p in report.problems)

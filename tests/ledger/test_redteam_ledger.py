"""Red-team attacks on the embedded ledger's promise: history no single party can rewrite.

Attackers: (a) anyone who can write ledger.db, ledger.db.inbox and ledger.db.lock, with or
without ONE organization's private key (a rogue org admin, who also owns that org's broker
state directory); (b) nobody writes another organization's state directory.

Each test performs one attack and asserts the secure outcome: it passes while the defence
holds and fails while the hole is open. Three cores on one file stand in for the three
brokers' processes, each with its own witness (state directory), as `BrokerApp` runs them.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from ledger_forgery import LedgerFile
from ledger_helpers import asset_json

from dshare_hub.ledger import LedgerError
from dshare_hub.ledger.core import LEDGER_TAMPERED, LedgerCore, ReadConflict
from dshare_hub.ledger.identity import OrgIdentity, create_org, make_identity_files
from dshare_hub.ledger.inbox import Inbox, Item, encode
from dshare_hub.ledger.snapshot import Effects
from dshare_hub.ledger.txlog import (
    Proposal,
    b64,
    commit_bytes,
    commit_record,
    endorsed_bytes,
    entry_body,
    new_tx_id,
    result_hash,
    sha256_hex,
)
from dshare_hub.ledger.verify import verify
from dshare_hub.ledger.witness import CHECKPOINTS_FILE, Witness

ORGS = ("UiS", "UiO", "UiB")
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
DEEP = 100_000  # nesting depth of the deep-JSON attacks (far past Python's recursion limit)

# -- the world: three brokers that have all seen sequence 8 --------------------------------


@dataclass
class World:
    db: Path
    ids: dict[str, OrgIdentity]
    cores: dict[str, LedgerCore]
    witnesses: dict[str, Witness]
    root: Path
    lease: dict[str, Any]

    def state_dir(self, org: str) -> Path:
        return self.root / "state" / org

    def dirs(self) -> list[Path]:
        return [self.state_dir(o) for o in ORGS]

    def submit(self, org: str, fn: str, *args: str, actor: str = "u") -> dict:
        return json.loads(self.cores[org].submit(self.ids[org], fn, list(args), actor))

    def evaluate(self, org: str, fn: str, *args: str) -> dict:
        return json.loads(self.cores[org].evaluate(self.ids[org], fn, list(args), "u"))

    def endorse(self, org: str, fn: str, *args: str, actor: str = "u") -> Any:
        proposal = LedgerCore.propose(self.ids[org], fn, list(args), actor)
        return self.cores[org].endorse(self.ids[org], proposal, list(args))

    def audit(self, org: str, *, full: bool = False) -> str | None:
        """The reaper pass of `org`'s broker: None when it passes, else the refusal code."""
        try:
            self.cores[org].audit(self.witnesses[org], full=full)
        except LedgerError as exc:
            return exc.code
        return None

    def fresh(self, org: str) -> LedgerError | None:
        """`org`'s broker starting again on its state directory (full check)."""
        core = LedgerCore(self.db)
        try:
            core.attach(Witness(self.state_dir(org), self.ids[org]))
        except LedgerError as exc:
            return exc
        finally:
            core.close()
        return None

    def verify(self) -> list[str]:
        return [str(p) for p in verify(self.db, self.dirs()).problems]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
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
    w = World(db, ids, cores, witnesses, tmp_path, {})
    w.submit("UiS", "RegisterAsset", asset_json("a1"))  # 1
    w.submit("UiB", "RegisterAsset", asset_json("b1"))  # 2
    w.lease = w.submit("UiO", "RequestLease", "a1", "600", "study", actor="ola")  # 3
    w.submit("UiS", "UpdateAsset", "a1", '{"name": "A one"}')  # 4
    other = w.submit("UiO", "RequestLease", "b1", "600", "study", actor="ola")  # 5
    w.submit("UiB", "UpdateAsset", "b1", '{"name": "B one"}')  # 6
    w.submit("UiO", "ReleaseLease", other["id"], actor="ola")  # 7
    w.submit("UiS", "RegisterAsset", asset_json("a2"))  # 8
    for org in ORGS:
        assert w.audit(org) is None
    yield w
    for core in cores.values():
        core.close()


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Callable[..., tuple[LedgerCore, Witness]]]:
    """Start brokers on small worlds of their own; closed at the end."""
    cores: list[LedgerCore] = []

    def start(
        db: Path, identity: OrgIdentity, trusted: dict[str, str] | None
    ) -> tuple[LedgerCore, Witness]:
        witness = Witness(tmp_path / "state" / identity.msp_id, identity)
        if trusted:
            witness.trust(trusted)
        core = LedgerCore(db)
        cores.append(core)
        core.attach(witness)
        return core, witness

    yield start
    for core in cores:
        core.close()


# -- what the attackers do with the files -----------------------------------------------------


def sql(db: Path, statement: str, *params: Any) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute(statement, params)
    finally:
        conn.close()


def state_row(db: Path, key: bytes) -> tuple[bytes, int]:
    conn = sqlite3.connect(db)
    try:
        value, version = conn.execute(
            "SELECT value, version FROM state WHERE key = ?", (key,)
        ).fetchone()
    finally:
        conn.close()
    return bytes(value), int(version)


def forged_item(
    signer: OrgIdentity,
    writes: dict[bytes, bytes | None],
    *,
    claims: OrgIdentity | None = None,
    at: datetime | None = None,
) -> Item:
    """An inbox item whose proposal names `claims` (default: the signer) and whose effects
    are whatever the attacker wants, endorsed with `signer`'s key."""
    proposal = LedgerCore.propose(claims or signer, "UpdateAsset", [], "mallory", at=at)
    effects = Effects({}, [], dict(writes), None)
    rh = result_hash(b"{}")
    signature = signer.sign(endorsed_bytes(proposal.as_dict(), effects.endorsement(rh, [])))
    return Item(proposal, signature, effects, rh, [])


def leave_in_inbox(db: Path, *items: Item) -> list[int]:
    """What any process (or anyone who can write ledger.db.inbox) does."""
    inbox = Inbox(db)
    try:
        return inbox.put(list(items), [])
    finally:
        inbox.close()


def leave_raw(db: Path, payload: bytes) -> int:
    conn = sqlite3.connect(str(db) + ".inbox", isolation_level=None)
    try:
        return int(conn.execute("INSERT INTO inbox (payload) VALUES (?)", (payload,)).lastrowid)
    finally:
        conn.close()


def outcome(db: Path, inbox_id: int) -> dict[str, Any]:
    conn = sqlite3.connect(str(db) + ".inbox")
    try:
        row = conn.execute("SELECT body FROM outcome WHERE id = ?", (inbox_id,)).fetchone()
    finally:
        conn.close()
    return json.loads(row[0]) if row else {}


def chain_tx_ids(db: Path) -> list[str]:
    """The transactions the hash chain carries (read from the bodies, seq 1 on)."""
    conn = sqlite3.connect(db)
    try:
        bodies = conn.execute("SELECT body FROM txlog WHERE seq > 0 ORDER BY seq").fetchall()
    finally:
        conn.close()
    return [json.loads(body)["proposal"]["tx_id"] for (body,) in bodies]


def append(
    db: Path,
    tx_id: str,
    make_body: Callable[[int, str], bytes],
    *,
    record: bytes = b"",
    committer: OrgIdentity | None = None,
) -> int:
    """Append a row at the head, hashed as the walker expects; `committer` signs it."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        seq, prev = conn.execute("SELECT seq, hash FROM txlog ORDER BY seq DESC LIMIT 1").fetchone()
        seq += 1
        body = make_body(seq, prev)
        digest = sha256_hex(body)
        if committer is not None:
            sig = committer.sign(commit_bytes(seq, digest, committer.msp_id))
            record = commit_record(committer.msp_id, committer.cert_pem, sig)
        conn.execute(
            "INSERT INTO txlog (seq, tx_id, body, hash, signature) VALUES (?, ?, ?, ?, ?)",
            (seq, tx_id, body, digest, record),
        )
    finally:
        conn.close()
    return seq


def append_entry(
    db: Path,
    proposal: Proposal,
    endorsement: dict[str, Any],
    signature: bytes,
    **kw: Any,
) -> int:
    seq = append(
        db,
        proposal.tx_id,
        lambda seq, prev: entry_body(seq, prev, proposal, endorsement, signature),
        **kw,
    )
    LedgerFile(db).rebuild_state()  # a careful forger leaves state matching the log
    return seq


def append_item(db: Path, item: Item, **kw: Any) -> int:
    return append_entry(db, item.proposal, item.endorsement(), item.signature, **kw)


def cut_after(db: Path, seq: int) -> None:
    sql(db, "DELETE FROM txlog WHERE seq > ?", seq)
    LedgerFile(db).rebuild_state()


def forget_checkpoints_after(state_dir: Path, seq: int) -> None:
    """The rogue admin edits its own broker's memory (its own state directory)."""
    path = state_dir / CHECKPOINTS_FILE
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(line for line in lines if json.loads(line)["seq"] <= seq))


def refused_or_applied(call: Callable[[], Any]) -> bool:
    """True when `call` was refused as tampering (the secure outcome of a forged setup)."""
    try:
        call()
    except LedgerError as exc:
        assert exc.code == LEDGER_TAMPERED, exc
        return True
    return False


# == the inbox: items a victim's committer applies ===============================================


def test_inbox_item_with_effects_changed_after_signing_is_rejected(world):
    endorsed = world.endorse("UiO", "RequestLease", "a2", "600", "study", actor="ola")
    item = endorsed.item()
    lease_key = next(k for k in item.effects.writes if k.startswith(b"lease/"))
    forged = json.loads(item.effects.writes[lease_key])
    forged["expires_at"] = "2099-01-01T00:00:00.000000Z"
    item.effects.writes[lease_key] = json.dumps(forged).encode()
    (inbox_id,) = leave_in_inbox(world.db, item)
    world.submit("UiS", "RegisterAsset", asset_json("a3"))  # UiS commits what waits
    assert outcome(world.db, inbox_id)["code"] == "IDENTITY_REJECTED"
    assert item.proposal.tx_id not in chain_tx_ids(world.db)


@pytest.mark.parametrize("how", ["UiS cert, UiO key", "UiS name, UiO cert"])
def test_inbox_item_impersonating_another_org_is_rejected(world, how):
    asset = json.loads(state_row(world.db, b"asset/a1")[0])
    asset["owner_org"] = "UiO"
    writes = {b"asset/a1": json.dumps(asset).encode()}
    if how == "UiS cert, UiO key":
        item = forged_item(world.ids["UiO"], writes, claims=world.ids["UiS"])
    else:
        item = forged_item(world.ids["UiO"], writes)
        item.proposal = dataclasses.replace(item.proposal, msp_id="UiS")
        item.signature = world.ids["UiO"].sign(
            endorsed_bytes(item.proposal.as_dict(), item.endorsement())
        )
    (inbox_id,) = leave_in_inbox(world.db, item)
    world.submit("UiB", "RegisterAsset", asset_json("b3"))
    assert outcome(world.db, inbox_id)["code"] == "IDENTITY_REJECTED"
    assert world.evaluate("UiB", "GetAsset", "a1")["owner_org"] == "UiS"


def test_fake_org_added_to_the_orgs_table_is_not_trusted_by_running_brokers(world, tmp_path):
    evil = make_identity_files(tmp_path / "evil", "Evil")
    sql(world.db, "INSERT INTO orgs VALUES ('Evil', ?, '2024-01-01T00:00:00Z')", evil.ca_cert_pem)
    item = forged_item(evil, {b"asset/e1": b'{"owner_org": "Evil"}'})
    (inbox_id,) = leave_in_inbox(world.db, item)
    world.submit("UiS", "RegisterAsset", asset_json("a3"))
    assert outcome(world.db, inbox_id)["code"] == "IDENTITY_REJECTED"
    assert item.proposal.tx_id not in chain_tx_ids(world.db)
    # An org the file registers but nobody trusts is not tampering: no spurious refusal.
    assert [world.audit(org) for org in ORGS] == [None, None, None]


def test_inbox_item_backdated_beyond_the_clock_skew_is_rejected(world):
    """UiO's admin, with UiO's key, backdates a write by an hour (lease expiry decides)."""
    item = forged_item(
        world.ids["UiO"], {b"asset/o1": b"{}"}, at=datetime.now(UTC) - timedelta(hours=1)
    )
    (inbox_id,) = leave_in_inbox(world.db, item)
    world.submit("UiS", "RegisterAsset", asset_json("a3"))
    assert outcome(world.db, inbox_id)["code"] == "LEDGER_ERROR"
    assert item.proposal.tx_id not in chain_tx_ids(world.db)


def test_inbox_duplicate_key_in_the_write_set_is_rejected(world):
    """The inbox's write set is a JSON list: a second entry for a key, with a forged value,
    would win in the dict the committer builds."""
    item = world.endorse("UiO", "RequestLease", "a2", "600", "study", actor="ola").item()
    doc = json.loads(encode(item))
    lease = next(w for w in doc["w"] if base64.b64decode(w[0]).startswith(b"lease/"))
    doc["w"].append([lease[0], b64(b'{"state": "active", "expires_at": "2099"}')])
    inbox_id = leave_raw(world.db, json.dumps(doc).encode())
    world.submit("UiS", "RegisterAsset", asset_json("a3"))
    assert outcome(world.db, inbox_id)["code"] == "IDENTITY_REJECTED"
    assert item.proposal.tx_id not in chain_tx_ids(world.db)


def test_inbox_replay_and_high_s_twin_of_a_committed_item_add_nothing(world):
    """ECDSA signatures are malleable: (r, n - s) verifies too. A twin item with the other
    signature, left next to the original and again after it committed, is the same tx."""
    item = world.endorse("UiO", "RequestLease", "a2", "600", "study", actor="ola").item()
    r, s = decode_dss_signature(item.signature)
    twin = dataclasses.replace(item, signature=encode_dss_signature(r, P256_N - s))
    assert twin.signature != item.signature
    signed = endorsed_bytes(item.proposal.as_dict(), item.endorsement())
    world.ids["UiO"].key.public_key().verify(twin.signature, signed, ec.ECDSA(hashes.SHA256()))
    leave_in_inbox(world.db, item, twin)
    world.submit("UiS", "RegisterAsset", asset_json("a3"))
    leave_in_inbox(world.db, twin, item)
    world.submit("UiB", "RegisterAsset", asset_json("b3"))
    assert chain_tx_ids(world.db).count(item.proposal.tx_id) == 1
    assert len(world.evaluate("UiS", "ListLeases", '{"asset_id": "a2"}')["items"]) == 1


def test_rogue_org_inbox_item_taking_another_orgs_asset_is_not_countersigned(world):
    """UiO's admin signs, with UiO's own key, a write set no contract call would produce:
    UiS's asset a1 now owned by UiO. UiS's broker commits what waits in the inbox."""
    asset = json.loads(state_row(world.db, b"asset/a1")[0])
    asset["owner_org"] = "UiO"
    item = forged_item(world.ids["UiO"], {b"asset/a1": json.dumps(asset).encode()})
    leave_in_inbox(world.db, item)
    world.submit("UiS", "RegisterAsset", asset_json("a3"))
    owner = world.evaluate("UiS", "GetAsset", "a1")["owner_org"]
    assert owner == "UiS" or world.verify(), (
        "UiS's broker committed and countersigned UiO's forged write set, and verify with "
        "every witness accepts it"
    )


def test_rogue_org_appends_an_arbitrary_write_set_directly(world):
    """Same forgery without any victim: appended to the file with UiO's endorsement and
    UiO's own commit signature. It extends every checkpoint."""
    asset = json.loads(state_row(world.db, b"asset/a1")[0])
    asset["owner_org"] = "UiO"
    item = forged_item(world.ids["UiO"], {b"asset/a1": json.dumps(asset).encode()})
    append_item(world.db, item, committer=world.ids["UiO"])
    assert world.verify(), "verify with every witness accepts a write set the contract never made"


def _payload(world: World, **over: Any) -> bytes:
    """An inbox payload with a well-formed, current proposal; `over` replaces fields."""
    p = LedgerCore.propose(world.ids["UiO"], "UpdateAsset", [], "mallory")
    doc = {"p": p.as_dict(), "s": b64(b"0"), "r": [], "g": [], "w": [], "e": None, "h": ""}
    return json.dumps({**doc, **over}).encode()


POISONS: dict[str, Callable[[World], bytes]] = {
    "non_utf8_key": lambda world: _payload(world, w=[[b64(b"asset/\xff"), b64(b"{}")]]),
    "deep_json": lambda world: b"[" * DEEP + b"]" * DEEP,
    "non_string_base64": lambda world: _payload(world, s=5),
}


@pytest.mark.parametrize("poison", sorted(POISONS))
def test_poisoned_inbox_item_does_not_wedge_every_commit(world, poison):
    """An item the committer cannot read must be dropped ("an unreadable transaction was
    dropped from the inbox"), not abort every batch of every broker while it stays."""
    leave_raw(world.db, POISONS[poison](world))
    for org, asset in (("UiS", "a3"), ("UiB", "b3")):
        try:
            world.submit(org, "RegisterAsset", asset_json(asset))
        except Exception as exc:
            pytest.fail(f"{org}'s commit failed on the poisoned inbox item: {exc!r}")
    assert world.evaluate("UiO", "GetAsset", "b3")["id"] == "b3"


def test_forged_ok_outcome_is_not_believed(world):
    """A trigger in ledger.db.inbox (anyone who can write the file) swallows each item and
    leaves an "ok" outcome for it: the submitter is told its transaction committed."""
    sql(
        Path(str(world.db) + ".inbox"),
        "CREATE TRIGGER mallory AFTER INSERT ON inbox BEGIN "
        "INSERT OR REPLACE INTO outcome (id, body, created) VALUES (NEW.id, json_object("
        "'status', 'ok', 'tx_id', json_extract(CAST(NEW.payload AS TEXT), '$.p.tx_id'), "
        "'seq', 1), 1e12); DELETE FROM inbox WHERE id = NEW.id; END",
    )
    try:
        world.submit("UiS", "RegisterAsset", asset_json("a3"))
    except LedgerError:
        return  # refused: the submitter is not lied to
    assert LedgerFile(world.db).head() == 9, (
        "UiS's broker reported RegisterAsset a3 committed, but nothing was appended"
    )


def test_hidden_row_at_seq_0_fakes_a_commit(world):
    """The committer takes a tx id found anywhere in txlog for "already committed"; a row at
    sequence 0 is outside the chain, so no walker (broker or verify) ever reads it."""
    endorsed = world.endorse("UiS", "RegisterAsset", asset_json("a3"))
    sql(
        world.db,
        "INSERT INTO txlog (seq, tx_id, body, hash, signature) VALUES (0, ?, '{}', '', x'')",
        endorsed.proposal.tx_id,
    )
    try:
        world.cores["UiS"].commit(endorsed)
    except LedgerError:
        pass
    else:
        assert endorsed.proposal.tx_id in chain_tx_ids(world.db), (
            "UiS's broker reported RegisterAsset a3 committed; the chain does not carry it"
        )
    assert world.verify(), "verify does not report a txlog row outside the chain"


def test_conflicted_item_resurrected_from_the_inbox_is_not_committed(world):
    """UiO's lease request of the exclusive x1 loses to UiB's and UiO is told so. Once UiB
    releases, the range it read is as it was: a file writer leaves the rejected item in the
    inbox again (within the 120 s clock skew) and it commits, a lease UiO's user was told
    they did not get. Fabric records an invalidated tx id so it can never commit later."""
    policy = {"max_duration_s": 3600, "exclusive": True}
    world.submit("UiS", "RegisterAsset", asset_json("x1", policy=policy))  # 9
    lost = world.endorse("UiO", "RequestLease", "x1", "600", "study", actor="ola")
    won = world.endorse("UiB", "RequestLease", "x1", "600", "study", actor="bo")
    world.cores["UiB"].commit(won)
    with pytest.raises(ReadConflict):
        world.cores["UiO"].commit(lost)
    world.submit("UiB", "ReleaseLease", json.loads(won.result)["id"], actor="bo")
    leave_in_inbox(world.db, lost.item())
    world.submit("UiS", "RegisterAsset", asset_json("a3"))
    assert lost.proposal.tx_id not in chain_tx_ids(world.db), (
        "a transaction rejected with a read conflict committed later"
    )


# == the committer's check at commit time: what a victim countersigns ============================


def test_victim_does_not_countersign_an_entry_with_a_bogus_commit_record(world):
    """Keyless: an entry with a forged effect and a non-empty (unsigned) commit record is
    appended; the commit-time check sees a record and asks no more, so UiS's broker would
    chain its own batch onto it and sign the head."""
    item = world.endorse("UiO", "RequestLease", "a2", "600", "study", actor="ola").item()
    lease_key = next(k for k in item.effects.writes if k.startswith(b"lease/"))
    lease = json.loads(item.effects.writes[lease_key])
    lease["expires_at"] = "2099-01-01T00:00:00.000000Z"
    item.effects.writes[lease_key] = json.dumps(lease).encode()
    append_item(world.db, item, record=b"{}")
    with pytest.raises(LedgerError) as info:
        world.submit("UiS", "RegisterAsset", asset_json("a3"))
    assert info.value.code == LEDGER_TAMPERED


def test_keyless_replay_countersigned_by_the_victim_passes_its_audit(world):
    """Keyless: UiO's released lease request (seq 5) is appended again, re-opening it. The
    tx_id column of seq 5 (not hashed) is altered so the broker's file-wide replay lookup
    misses it; a bogus record lets UiS's broker countersign it; the record is then removed
    (UiS's signature on the next entry covers it)."""
    sql(world.db, "UPDATE txlog SET tx_id = 'x' || tx_id WHERE seq = 5")
    original = LedgerFile(world.db).entries()[4]
    assert original.proposal["fn"] == "RequestLease"
    seq = append_entry(
        world.db,
        Proposal.from_dict(original.proposal),
        original.endorsement,
        base64.b64decode(original.signature),
        record=b"{}",
    )
    if refused_or_applied(lambda: world.submit("UiS", "RegisterAsset", asset_json("a3"))):
        return
    sql(world.db, "UPDATE txlog SET signature = x'' WHERE seq = ?", seq)
    assert world.audit("UiS") == LEDGER_TAMPERED, (
        "UiS's reaper pass accepts a replayed entry it countersigned itself"
    )


def test_rogue_replay_of_another_orgs_entry_passes_running_audits(world):
    """UiO's admin replays UiS's own signed UpdateAsset of a1 after UiS changed a1 again,
    reverting UiS's asset without UiS's key (the seq 4 tx_id column altered to hide it)."""
    world.submit("UiS", "UpdateAsset", "a1", '{"name": "A two"}')  # 9
    for org in ORGS:
        assert world.audit(org) is None
    sql(world.db, "UPDATE txlog SET tx_id = 'x' || tx_id WHERE seq = 4")
    old = LedgerFile(world.db).entries()[3]
    assert (old.proposal["fn"], old.org) == ("UpdateAsset", "UiS")
    append_entry(
        world.db,
        Proposal.from_dict(old.proposal),
        old.endorsement,
        base64.b64decode(old.signature),
        committer=world.ids["UiO"],
    )
    # UiS's broker looks before it answers from the longer log: the revert is never served.
    assert refused_or_applied(lambda: world.evaluate("UiS", "GetAsset", "a1")), (
        "UiS's broker served UiO's replay of UiS's old transaction"
    )
    assert world.audit("UiS") == LEDGER_TAMPERED


def test_keyless_mvcc_bypass_double_leases_an_exclusive_asset(world):
    """UiO and UiB request the exclusive asset x1 on one snapshot; the committer rejects the
    second (its range read of the open leases changed). The attacker appends it anyway with
    a bogus record, lets UiS's broker countersign, and removes the record: every signature is
    genuine and verify replays point reads only, not range reads."""
    policy = {"max_duration_s": 3600, "exclusive": True}
    world.submit("UiS", "RegisterAsset", asset_json("x1", policy=policy))  # 9
    first = world.endorse("UiO", "RequestLease", "x1", "600", "study", actor="ola")
    second = world.endorse("UiB", "RequestLease", "x1", "600", "study", actor="bo")
    world.cores["UiO"].commit(first)  # 10
    seq = append_item(world.db, second.item(), record=b"{}")  # 11
    if refused_or_applied(lambda: world.submit("UiS", "RegisterAsset", asset_json("a3"))):
        return
    sql(world.db, "UPDATE txlog SET signature = x'' WHERE seq = ?", seq)
    leases = world.evaluate("UiS", "ListLeases", '{"asset_id": "x1", "state": "active"}')
    assert len(leases["items"]) <= 1 or world.verify() or world.audit("UiS", full=True), (
        "two active leases of an exclusive asset, and neither verify nor a full audit objects"
    )


# == rewriting history ===========================================================================


def test_rewrite_between_checkpoints_keeping_later_rows_is_found(world):
    """Entry 3 changed and rehashed; entries 4-8 (checkpointed) left byte for byte."""
    conn = sqlite3.connect(world.db, isolation_level=None)
    (body,) = conn.execute("SELECT body FROM txlog WHERE seq = 3").fetchone()
    forged = bytes(body).replace(b'"actor":"ola"', b'"actor":"eve"', 1)
    assert forged != body
    conn.execute("UPDATE txlog SET body = ?, hash = ? WHERE seq = 3", (forged, sha256_hex(forged)))
    conn.close()
    assert any(p.startswith("seq 3:") or p.startswith("seq 4:") for p in world.verify())
    assert world.fresh("UiB").code == LEDGER_TAMPERED
    assert world.audit("UiS", full=True) == LEDGER_TAMPERED


def test_keyless_cut_of_the_newest_batch_is_found_by_its_committer(world):
    """The window after the last checkpoint, for a file writer: an honest committer
    checkpoints its batch as it commits it, so even the newest entry is covered."""
    world.submit("UiS", "RegisterAsset", asset_json("a3"))  # 9, nobody else saw it
    cut_after(world.db, 8)
    assert world.audit("UiS") == LEDGER_TAMPERED
    assert any("entries cut off" in p for p in world.verify())


def test_rogue_committer_drops_another_orgs_committed_transaction(world):
    """UiS's transaction waits in the inbox; UiO's broker commits it (and its own) and UiS is
    told it committed at 9. UiO's admin cuts the log back to 8 and drops its own checkpoints
    past 8: UiS's broker never checkpointed 9, so nothing anyone kept remembers it."""
    endorsed = world.endorse("UiS", "RegisterAsset", asset_json("a3"))
    leave_in_inbox(world.db, endorsed.item())  # UiS's process leaves it...
    world.submit("UiO", "RegisterAsset", asset_json("o1"))  # ...UiO's commits it at 9, o1 at 10
    world.cores["UiS"].commit(endorsed)  # UiS collects: committed
    assert chain_tx_ids(world.db)[8] == endorsed.proposal.tx_id
    cut_after(world.db, 8)
    forget_checkpoints_after(world.state_dir("UiO"), 8)
    assert world.audit("UiS") == LEDGER_TAMPERED or world.verify(), (
        "UiS's committed RegisterAsset vanished and no broker or verify notices"
    )


def test_rogue_lessee_erases_its_lease_after_the_owner_read_it(world):
    """UiO's broker commits UiO's own lease of UiS's a2; UiS's broker reads it (as it does
    before mounting the data). UiO's admin then erases the lease and its own checkpoints:
    the ledger no longer records that UiO leased a2."""
    lease = world.submit("UiO", "RequestLease", "a2", "600", "study", actor="ola")  # 9
    assert world.evaluate("UiS", "GetLease", lease["id"])["state"] == "active"
    cut_after(world.db, 8)
    forget_checkpoints_after(world.state_dir("UiO"), 8)
    assert world.audit("UiS") == LEDGER_TAMPERED or world.verify(), (
        "a lease UiS's broker acted on was erased by UiO alone, undetected"
    )


# == the world state next to the log =============================================================


def _forge_lease_state(world: World) -> None:
    key = ("lease/" + world.lease["id"]).encode()
    value, version = state_row(world.db, key)
    lease = json.loads(value)
    lease["expires_at"] = "2099-01-01T00:00:00.000000Z"
    sql(world.db, "UPDATE state SET value = ? WHERE key = ?", json.dumps(lease).encode(), key)
    assert state_row(world.db, key)[1] == version


def test_state_forged_under_an_intact_log_is_found_by_the_full_audit(world):
    """Only the full audit (every ledger_audit_interval, 1 h by default) looks at state."""
    _forge_lease_state(world)
    assert world.audit("UiS", full=True) == LEDGER_TAMPERED
    assert world.verify()


def test_junk_state_row_does_not_disable_the_full_audit(world):
    """A state row whose key is TEXT, not BLOB, is invisible to the contract; verify (and the
    full audit built on it) must report it, not crash, or forged state is never refused."""
    _forge_lease_state(world)
    sql(world.db, "INSERT INTO state (key, value, version) VALUES ('junk', x'00', 1)")
    assert world.audit("UiS", full=True) == LEDGER_TAMPERED


# == crashes and denial of service ===============================================================


def _deep_body(world: World) -> None:
    deep = b"[" * DEEP + b"]" * DEEP
    append(world.db, "deep", lambda seq, prev: deep, record=b"{}")


def _text_state_key(world: World) -> None:
    sql(world.db, "INSERT INTO state (key, value, version) VALUES ('junk', x'00', 1)")


def _garbage_ca(world: World) -> None:
    sql(world.db, "UPDATE orgs SET ca_cert_pem = 'not a certificate' WHERE msp_id = 'UiB'")


def _non_utf8_hash(world: World) -> None:
    sql(world.db, "UPDATE txlog SET hash = CAST(x'fffe' AS TEXT) WHERE seq = 8")


GARBAGE: dict[str, Callable[[World], None]] = {
    "deep_body": _deep_body,
    "text_state_key": _text_state_key,
    "garbage_ca": _garbage_ca,
    "non_utf8_hash": _non_utf8_hash,
}


@pytest.mark.parametrize("garbage", sorted(GARBAGE))
def test_verify_reports_keyless_garbage_instead_of_crashing(world, garbage):
    GARBAGE[garbage](world)
    try:
        report = verify(world.db, world.dirs())
    except Exception as exc:
        pytest.fail(f"verify crashed on {garbage}: {exc!r}"[:500])
    assert not report.ok


@pytest.mark.parametrize("garbage", ["deep_body", "garbage_ca", "non_utf8_hash"])
def test_broker_refuses_keyless_garbage_as_tampering(world, garbage):
    """A broker must answer LEDGER_TAMPERED, not crash its reaper pass and keep serving."""
    GARBAGE[garbage](world)
    try:
        code = world.audit("UiS")
    except Exception as exc:
        pytest.fail(f"UiS's reaper pass crashed on {garbage}: {exc!r}"[:500])
    assert code == LEDGER_TAMPERED


@pytest.mark.parametrize(
    "writes",
    [[["asset/\ud800", b64(b"{}")]], [["asset/z"]], 7],
    ids=["lone_surrogate_key", "write_not_a_pair", "writes_not_a_list"],
)
def test_verify_survives_a_malformed_entry_signed_by_a_rogue_org(world, writes):
    """UiO's admin signs (and commits) an entry verify's replay cannot digest."""
    uio = world.ids["UiO"]
    proposal = LedgerCore.propose(uio, "UpdateAsset", [], "mallory")
    endorsement = {
        "reads": [],
        "ranges": [],
        "writes": writes,
        "event": None,
        "result_hash": "0" * 64,
    }
    signature = uio.sign(endorsed_bytes(proposal.as_dict(), endorsement))
    append(
        world.db,
        proposal.tx_id,
        lambda seq, prev: entry_body(seq, prev, proposal, endorsement, signature),
        committer=uio,
    )
    try:
        report = verify(world.db, world.dirs())
    except Exception as exc:
        pytest.fail(f"verify crashed: {exc!r}"[:500])
    assert not report.ok


def test_vandalised_byte_is_named_by_verify_and_recoverable(world):
    """Any file writer can make every broker refuse (inherent); the refusal names the entry
    verify names, and restoring the bytes lets a restarted broker serve again."""
    conn = sqlite3.connect(world.db, isolation_level=None)
    (body,) = conn.execute("SELECT body FROM txlog WHERE seq = 2").fetchone()
    conn.execute("UPDATE txlog SET body = ? WHERE seq = 2", (bytes(body).replace(b"b1", b"c1"),))
    conn.close()
    error = world.fresh("UiB")
    assert error is not None and (error.code, error.key) == (LEDGER_TAMPERED, "2")
    assert verify(world.db, world.dirs()).first_bad_seq == 2
    sql(world.db, "UPDATE txlog SET body = ? WHERE seq = 2", body)
    assert world.fresh("UiB") is None
    assert verify(world.db, world.dirs()).ok


def test_meta_format_row_removed_is_not_blamed_on_an_old_format(world):
    """Keyless: the meta row deleted. The broker then refuses to start, saying the file holds
    a format-1 log and advising a new ledger: an operator following it abandons history."""
    sql(world.db, "DELETE FROM meta WHERE key = 'format'")
    try:
        core = LedgerCore(world.db)
    except LedgerError as exc:
        assert exc.code == LEDGER_TAMPERED, exc.message
        return
    core.close()


# == organizations: trust on first sight =========================================================


def test_verify_does_not_vouch_for_an_org_only_one_witness_trusts(tmp_path, started):
    """A file writer registers 'Evil' before UiO's broker first starts without configured
    CAs; that broker pins it (trust on first sight, logged) and commits Evil's entries.
    UiS's broker refuses them, but verify trusts the union of the witnesses' CAs."""
    db = tmp_path / "ledger.db"
    uis = create_org(db, "UiS", identity_dir=tmp_path / "ids")
    uio = create_org(db, "UiO", identity_dir=tmp_path / "ids")
    evil = make_identity_files(tmp_path / "evil", "Evil")
    sql(db, "INSERT INTO orgs VALUES ('Evil', ?, '2024-01-01T00:00:00Z')", evil.ca_cert_pem)
    uis_core, uis_w = started(db, uis, {"UiS": uis.ca_cert_pem, "UiO": uio.ca_cert_pem})
    uio_core, _ = started(db, uio, None)
    args = [asset_json("e1")]
    uio_core.commit(
        uio_core.endorse(evil, LedgerCore.propose(evil, "RegisterAsset", args, "e"), args)
    )
    with pytest.raises(LedgerError):
        uis_core.audit(uis_w)
    report = verify(db, [tmp_path / "state" / "UiS", tmp_path / "state" / "UiO"])
    assert not report.ok, "verify accepts entries of an org that UiS's broker refuses"


def test_fresh_broker_pinning_a_swapped_ca_is_caught_by_verify(tmp_path, started):
    """Inherent to trust on first sight: UiO's broker, started without configured CAs after
    a file writer swapped UiS's CA and re-signed UiS's entries, believes the forgery. UiS's
    broker and verify with both witnesses do not."""
    db = tmp_path / "ledger.db"
    uis = create_org(db, "UiS", identity_dir=tmp_path / "ids")
    uio = create_org(db, "UiO", identity_dir=tmp_path / "ids")
    uis_core, uis_w = started(db, uis, {"UiS": uis.ca_cert_pem, "UiO": uio.ca_cert_pem})
    for asset in ("a1", "a2"):
        uis_core.submit(uis, "RegisterAsset", [asset_json(asset)], "u")
    uis_core.audit(uis_w)
    fake = make_identity_files(tmp_path / "fake", "UiS")
    log = LedgerFile(db)
    entries = log.entries()
    for e in entries:
        e.proposal["cert_pem"] = fake.cert_pem
        e.proposal["tx_id"] = new_tx_id(e.proposal["nonce"], fake.cert_pem)
        e.changed = True
    log.write(entries, keys={"UiS": fake})
    sql(db, "UPDATE orgs SET ca_cert_pem = ? WHERE msp_id = 'UiS'", fake.ca_cert_pem)
    started(db, uio, None)  # fooled: trust on first sight
    with pytest.raises(LedgerError):
        uis_core.audit(uis_w)
    assert not verify(db, [tmp_path / "state" / "UiS", tmp_path / "state" / "UiO"]).ok

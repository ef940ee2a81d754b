"""Making a batch durable: validate every waiting transaction, append it, sign the batch.

Whoever holds the ledger's write lock does this for the transactions every process left in
the inbox (`inbox.py`), so nothing waiting there is taken on trust: each endorsement is
checked against the CAs this process trusts, each read set is re-checked against the state
(MVCC, as Fabric's committing peers do), then the entries are appended to the hash chain and
the batch's last entry is signed by the committing organization, as Fabric's orderer signs a
block. The brokers' witnesses check the chain they are about to extend first, and checkpoint
the head it reached after.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dshare_chaincode import contract
from dshare_chaincode.errors import ContractError
from dshare_chaincode.stub import is_composite_key, split_composite_key
from dshare_chaincode.tx import fmt_time, parse_time

from . import LedgerError
from .chain import Entry, Problem, check_shape
from .identity import IdentityError, OrgIdentity
from .inbox import Item
from .inbox import decode as decode_item
from .replay import Replay
from .signatures import Signatures
from .snapshot import Effects, SnapshotStub, scan
from .txlog import (
    GENESIS_HASH,
    MAX_CLOCK_SKEW,
    Proposal,
    args_digest,
    b64,
    canonical,
    commit_bytes,
    commit_record,
    entry_body,
    new_tx_id,
    result_hash,
)
from .txlog import sha256_hex as digest_of
from .witness import LedgerTampered, Witness

IDENTITY_REJECTED = "IDENTITY_REJECTED"
LEDGER_ERROR = "LEDGER_ERROR"
LEDGER_TAMPERED = "LEDGER_TAMPERED"
ENDORSEMENT_MISMATCH = "ENDORSEMENT_MISMATCH"


def display_key(key: bytes) -> str:
    text = key.decode()
    if is_composite_key(text):
        object_type, attrs = split_composite_key(text)
        return f"{object_type}[{', '.join(attrs)}]"
    return text


class ReadConflict(Exception):
    """Another transaction changed something this one read before it could commit."""

    def __init__(self, key: bytes) -> None:
        super().__init__(display_key(key))
        self.key = key


@dataclass
class CommitStats:
    batches: int = 0  # in-process batches handed to the inbox
    transactions: int = 0
    conflicts: int = 0
    sizes: list[int] = field(default_factory=list)
    commits: int = 0  # durable SQLite commits this process made (one fsync each)
    committed: int = 0  # transactions those commits carried, from every process


def tampered(exc: LedgerTampered, org: str) -> LedgerError:
    return LedgerError(
        LEDGER_TAMPERED,
        f"the ledger does not extend what {org}'s broker saw: {exc}. This broker serves "
        "nothing until an operator has run `dshare ledger verify` and restored the ledger",
        str(exc.problem.seq),
    )


def check_time(proposal: Proposal, now: datetime) -> datetime:
    """The proposal's timestamp, if it is readable and within MAX_CLOCK_SKEW of `now`."""
    try:
        ts = parse_time(proposal.timestamp)
    except ValueError as exc:
        raise LedgerError(
            LEDGER_ERROR, f"transaction {proposal.tx_id}: {exc}", proposal.tx_id
        ) from None
    if abs(now - ts) > MAX_CLOCK_SKEW:
        raise LedgerError(
            LEDGER_ERROR,
            f"transaction {proposal.tx_id} is timestamped {proposal.timestamp}, more than "
            f"{int(MAX_CLOCK_SKEW.total_seconds())} s from the ledger's clock; "
            "check the submitting machine's clock",
            proposal.tx_id,
        )
    return ts


def check_item(item: Item, signatures: Signatures, now: datetime) -> None:
    """Raise LedgerError unless `item` is a well-formed transaction endorsed by its org."""
    p = item.proposal
    ts = check_time(p, now)
    if p.tx_id != new_tx_id(p.nonce, p.cert_pem):
        raise LedgerError(LEDGER_ERROR, f"transaction id {p.tx_id} does not match its nonce")
    try:
        signatures.check_endorsement(p, item.endorsement(), item.signature, ts)
    except IdentityError as exc:
        raise LedgerError(IDENTITY_REJECTED, str(exc), p.msp_id) from None


class BatchCommit:
    """One durable SQLite transaction carrying every waiting transaction that validates."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        signatures: Signatures,
        committer: OrgIdentity,
        witnesses: Sequence[Witness],
        stats: CommitStats,
    ) -> None:
        self.conn = conn
        self.signatures = signatures
        self.committer = committer
        self.witnesses = witnesses
        self.stats = stats
        self._before = 0  # the head before this batch
        self._replay: Replay | None = None

    def run(self, waiting: list[tuple[int, bytes]]) -> dict[int, dict[str, Any]]:
        held = [w.lock for w in self.witnesses]
        for lock in held:
            lock.acquire()
        try:
            return self._run(waiting)
        finally:
            for lock in held:
                lock.release()

    def _run(self, waiting: list[tuple[int, bytes]]) -> dict[int, dict[str, Any]]:
        conn = self.conn
        out: dict[int, dict[str, Any]] = {}
        conn.execute("BEGIN IMMEDIATE")
        try:
            for witness in self.witnesses:
                try:
                    # Everything since its last look, signatures too: once this batch is
                    # countersigned, the chain makes the signature cover those entries.
                    witness.check(conn)
                except LedgerTampered as exc:
                    raise tampered(exc, witness.identity.msp_id) from None
            row = conn.execute("SELECT seq, hash FROM txlog ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (row[0], row[1]) if row else (0, GENESIS_HASH)
            first = seq + 1
            self._before = seq
            now = datetime.now(UTC)
            # The state the checked log replays to, not the file's state table (anyone who
            # can write the file can change that): what items are validated and run on.
            self._replay = self.witnesses[0].replay if self.witnesses else None
            if self._replay is not None:
                self._replay.db.execute("SAVEPOINT batch")
            for inbox_id, payload in waiting:
                outcome, seq, prev = self._one(payload, seq, prev, now)
                out[inbox_id] = outcome
            # A refused transaction older than the clock allows can never pass check_time.
            stale = fmt_time(now - 2 * MAX_CLOCK_SKEW)
            conn.execute("DELETE FROM refused WHERE timestamp < ?", (stale,))
            if seq >= first:
                sig = self.committer.sign(commit_bytes(seq, prev, self.committer.msp_id))
                record = commit_record(self.committer.msp_id, self.committer.cert_pem, sig)
                conn.execute("UPDATE txlog SET signature = ? WHERE seq = ?", (record, seq))
            conn.execute("COMMIT")
            self.stats.commits += 1
            self.stats.committed += len(waiting)
        except BaseException:
            conn.execute("ROLLBACK")
            if self._replay is not None:
                self._replay.db.execute("ROLLBACK TO batch")
                self._replay.db.execute("RELEASE batch")
            raise
        if self._replay is not None:
            self._replay.db.execute("RELEASE batch")
        if seq >= first:
            applied = [(str(o["tx_id"]), int(o["seq"])) for o in out.values() if _new(o, first)]
            for n, witness in enumerate(self.witnesses):
                # It checked everything before this batch and made the batch itself (on the
                # first witness's replay: the others run it again at their next look).
                witness.committed(applied, (seq, prev), now, replayed=n == 0)
                witness.record(seq, prev, "commit")
        return out

    def _one(
        self, payload: bytes, seq: int, prev: str, now: datetime
    ) -> tuple[dict[str, Any], int, str]:
        try:
            item = decode_item(payload)
            tx_id = item.proposal.tx_id
            # The shapes every reader of the log will insist on (versions are ints, keys
            # text): an entry no walker accepts must never be countersigned.
            check_shape(item.endorsement())
            canonical(item.proposal.as_dict()).decode("ascii")
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError, UnicodeError):
            return _error(None, LEDGER_ERROR, UNREADABLE), seq, prev
        done = self.conn.execute(
            "SELECT seq, body FROM txlog WHERE tx_id = ? AND seq >= 1", (tx_id,)
        ).fetchone()
        if done is not None and carries(bytes(done[1]), tx_id):
            # In this batch, or found there by every check made before it.
            for witness in self.witnesses if int(done[0]) <= self._before else ():
                if not witness.saw(tx_id, int(done[0])):
                    problem = Problem(
                        int(done[0]),
                        f"the entry now claims transaction {tx_id[:16]}, which "
                        f"{witness.identity.msp_id}'s broker did not see there (history "
                        "rewritten)",
                    )
                    raise tampered(LedgerTampered(problem), witness.identity.msp_id)
            # Committed by a process that died before it could leave the outcome.
            return {"status": "ok", "tx_id": tx_id, "seq": done[0]}, seq, prev
        refused = "SELECT 1 FROM refused WHERE tx_id = ?"
        if self.conn.execute(refused, (tx_id,)).fetchone():
            message = f"transaction {tx_id} was refused before; a refused proposal never commits"
            return _error(tx_id, LEDGER_ERROR, message), seq, prev
        state = self._replay.db if self._replay is not None else self.conn
        try:
            check_item(item, self.signatures, now)
            validate(state, item.effects)
            reexecute(state, item)
        except Exception as exc:
            self.conn.execute(
                "INSERT OR IGNORE INTO refused (tx_id, timestamp) VALUES (?, ?)",
                (tx_id, item.proposal.timestamp),
            )
            if isinstance(exc, ReadConflict):
                self.stats.conflicts += 1
                return {"status": "conflict", "tx_id": tx_id, "key": b64(exc.key)}, seq, prev
            if isinstance(exc, LedgerError):
                return _error(tx_id, exc.code, exc.message), seq, prev
            return _error(tx_id, LEDGER_ERROR, UNREADABLE), seq, prev
        seq += 1
        prev = apply(self.conn, item, seq, prev)
        if self._replay is not None:
            entry = Entry(
                seq, prev, item.proposal, item.endorsement(), parse_time(item.proposal.timestamp)
            )
            self._replay.apply(_never, entry)
        return {"status": "ok", "tx_id": tx_id, "seq": seq}, seq, prev


UNREADABLE = "an unreadable transaction was dropped from the inbox"


def _never(seq: int, problem: str) -> None:
    raise AssertionError(f"seq {seq}: {problem}")  # an item that validated always applies


def _new(outcome: dict[str, Any], first: int) -> bool:
    return outcome["status"] == "ok" and int(outcome["seq"]) >= first


def _error(tx_id: str | None, code: str, message: str) -> dict[str, Any]:
    return {"status": "error", "tx_id": tx_id, "code": code, "message": message}


def carries(body: bytes, tx_id: str) -> bool:
    """Whether the log entry `body` is transaction `tx_id`'s."""
    try:
        return bool(json.loads(body)["proposal"]["tx_id"] == tx_id)
    except (ValueError, KeyError, TypeError, RecursionError):
        return False


def reexecute(conn: sqlite3.Connection, item: Item) -> None:
    """Run the contract again on the state the batch has reached and require exactly the
    effects and answer the endorser signed: an organization's key signs only what the
    contract does, never a write set of its own making. Its read set was just validated,
    so an honest endorsement executes the same way."""
    p = item.proposal
    if args_digest(p.fn, item.args) != p.args_digest:
        raise LedgerError(
            LEDGER_ERROR, f"the arguments of transaction {p.tx_id} do not match its digest"
        )
    stub = SnapshotStub.for_proposal(conn, p)
    try:
        result: bytes | None = contract.invoke(stub, p.fn, list(item.args))
    except ContractError:
        result = None
    finally:
        stub.close()
    if result is None or canonical(stub.effects().endorsement(result_hash(result), item.args)) != (
        canonical(item.endorsement())
    ):
        raise LedgerError(
            ENDORSEMENT_MISMATCH,
            f"transaction {p.tx_id}: the effects '{p.msp_id}' signed are not what {p.fn} "
            "does on the ledger's state; it was not committed",
            p.tx_id,
        )


def validate(conn: sqlite3.Connection, effects: Effects) -> None:
    for key, version in effects.reads.items():
        row = conn.execute("SELECT version FROM state WHERE key = ?", (key,)).fetchone()
        if (row[0] if row else 0) != version:
            raise ReadConflict(key)
    for rr in effects.ranges:
        limit = len(rr.results) + 1 if rr.exhausted else len(rr.results)
        now = [(bytes(k), ver) for k, _v, ver in scan(conn, rr.start, rr.end, limit)]
        if now != rr.results:
            changed = next(
                (a[0] for a, b in zip(now, rr.results, strict=False) if a != b),
                (now or rr.results or [(rr.start, 0)])[-1][0],
            )
            raise ReadConflict(changed)


def apply(conn: sqlite3.Connection, item: Item, seq: int, prev: str) -> str:
    """Write `item`'s effects to state and history and append its log entry; its hash."""
    p, effects = item.proposal, item.effects
    writes = sorted(effects.writes.items())
    conn.executemany("DELETE FROM state WHERE key = ?", [(k,) for k, v in writes if v is None])
    conn.executemany(
        "INSERT OR REPLACE INTO state (key, value, version) VALUES (?, ?, ?)",
        [(k, v, seq) for k, v in writes if v is not None],
    )
    conn.executemany(
        "INSERT INTO history (key, seq, tx_id, timestamp, is_delete, value) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(k, seq, p.tx_id, p.timestamp, int(v is None), v) for k, v in writes],
    )
    body = entry_body(seq, prev, p, item.endorsement(), item.signature)
    entry_hash = digest_of(body)
    conn.execute(
        "INSERT INTO txlog (seq, tx_id, body, hash, signature) VALUES (?, ?, ?, ?, ?)",
        (seq, p.tx_id, body, entry_hash, b""),
    )
    return entry_hash

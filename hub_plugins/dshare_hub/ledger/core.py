"""The embedded ledger's synchronous core: verify, simulate on a snapshot, group-commit.

Each transaction is signed by its organization, executed against a consistent snapshot
(no lock held), then validated and applied under the single write lock: every read-set
version and every scanned range is re-checked first, as Fabric's MVCC validation does, so of
two leases of one exclusive asset exactly one commits. Transactions that arrive while a
batch is being made durable wait and share the next commit: one fsync for many writers.
Several processes may share one file; a lock file orders their batches.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dshare_chaincode import contract, keys
from dshare_chaincode.errors import LEASE_CONFLICT, ContractError
from dshare_chaincode.stub import (
    Creator,
    is_composite_key,
    partial_key_range,
    split_composite_key,
)
from dshare_chaincode.tx import fmt_time, parse_time

from . import LedgerError
from .identity import IdentityError, OrgIdentity, check_chain, verify_signature
from .inbox import Inbox, Item
from .inbox import decode as decode_item
from .snapshot import Effects, SnapshotStub, scan
from .store import connect, init_schema
from .txlog import (
    GENESIS_HASH,
    Proposal,
    args_digest,
    b64,
    entry_body,
    new_nonce,
    new_tx_id,
    sha256_hex,
    unb64,
)

IDENTITY_REJECTED = "IDENTITY_REJECTED"
LEDGER_ERROR = "LEDGER_ERROR"
# A proposal's timestamp decides lease expiry, so an org must not be able to backdate one.
MAX_CLOCK_SKEW = timedelta(seconds=120)
DEFAULT_RETRIES = 8
QUERY_THREADS = 1


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


@dataclass(frozen=True)
class Endorsed:
    """A simulated transaction waiting for commit: its read/write sets are in `stub`."""

    proposal: Proposal
    signature: bytes
    stub: SnapshotStub
    result: bytes


@dataclass
class _Pending:
    proposal: Proposal
    signature: bytes
    effects: Effects
    result: bytes
    done: bool = False
    error: BaseException | None = None
    seq: int = 0


@dataclass
class CommitStats:
    batches: int = 0  # in-process batches handed to the inbox
    transactions: int = 0
    conflicts: int = 0
    sizes: list[int] = field(default_factory=list)
    commits: int = 0  # durable SQLite commits this process made (one fsync each)
    committed: int = 0  # transactions those commits carried, from every process


class LedgerCore:
    """One SQLite ledger file, shared by every identity in this process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        init_schema(self.path)
        self._writer = connect(self.path)
        self._lock_fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._inbox = Inbox(self.path)
        self._collected: list[int] = []  # outcome ids read, deleted with the next put
        self._local = threading.local()
        self._thread_write_lock = threading.Lock()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._cond = threading.Condition()
        self._queue: list[_Pending] = []
        self._leader = False
        self._orgs: dict[str, str] = {}
        self._trusted: set[tuple[str, str, str]] = set()
        self.stats = CommitStats()
        self._closed = False
        # (head sequence, sorted expiries of active leases at that head), for state_token.
        self._expiries: tuple[int, list[str]] | None = None
        # Queries are Python-bound and sqlite3 drops the GIL at every row, so queries in
        # many threads at once mostly wait for each other's GIL hand-offs: one thread
        # answered 200 concurrent page queries in 60-67% of the time that 6 threads took.
        # Submits keep the default pool: they wait on the commit lock and fsync.
        self.query_executor = ThreadPoolExecutor(
            max_workers=QUERY_THREADS, thread_name_prefix="dshare-ledger-query"
        )

    # -- connections -------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, readonly=True)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.query_executor.shutdown(wait=True)
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self._writer.close()
        self._inbox.close()
        os.close(self._lock_fd)

    # -- organizations -----------------------------------------------------------------------

    def register_org(self, msp_id: str, ca_cert_pem: str) -> None:
        """Trust `ca_cert_pem` as `msp_id`'s CA (adding an org to a running ledger)."""
        with self._write_lock():
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                row = self._writer.execute(
                    "SELECT ca_cert_pem FROM orgs WHERE msp_id = ?", (msp_id,)
                ).fetchone()
                if row is not None and row[0] != ca_cert_pem:
                    raise LedgerError(
                        IDENTITY_REJECTED,
                        f"organization '{msp_id}' is already registered with another CA; "
                        "a ledger never replaces an organization's CA silently",
                        msp_id,
                    )
                if row is None:
                    self._writer.execute(
                        "INSERT INTO orgs (msp_id, ca_cert_pem, added_at) VALUES (?, ?, ?)",
                        (msp_id, ca_cert_pem, fmt_time(datetime.now(UTC))),
                    )
                self._writer.execute("COMMIT")
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
        self._orgs[msp_id] = ca_cert_pem

    def _ca_for(self, msp_id: str) -> str:
        ca = self._orgs.get(msp_id)
        if ca is None:
            # Another process may have added the org since we last looked.
            row = (
                self._reader()
                .execute("SELECT ca_cert_pem FROM orgs WHERE msp_id = ?", (msp_id,))
                .fetchone()
            )
            if row is None:
                raise LedgerError(
                    IDENTITY_REJECTED,
                    f"organization '{msp_id}' is not registered on this ledger; "
                    "register its CA with `dshare ledger init`",
                    msp_id,
                )
            ca = self._orgs[msp_id] = row[0]
        return ca

    def _check_proposal(self, p: Proposal, signature: bytes, args: Sequence[str]) -> None:
        ca = self._ca_for(p.msp_id)
        try:
            ts = parse_time(p.timestamp)
        except ValueError as exc:
            raise LedgerError(LEDGER_ERROR, f"transaction {p.tx_id}: {exc}", p.tx_id) from None
        trust_key = (p.msp_id, p.cert_pem, ca)
        if trust_key not in self._trusted:
            try:
                cert = check_chain(p.cert_pem, ca, p.msp_id, ts)
            except IdentityError as exc:
                raise LedgerError(IDENTITY_REJECTED, str(exc), p.msp_id) from None
            self._trusted.add(trust_key)
        else:
            from cryptography import x509

            cert = x509.load_pem_x509_certificate(p.cert_pem.encode())
        if not verify_signature(cert, signature, p.signing_bytes()):
            raise LedgerError(
                IDENTITY_REJECTED,
                f"the signature on transaction {p.tx_id} does not match the certificate of "
                f"'{p.msp_id}'",
                p.tx_id,
            )
        if p.tx_id != new_tx_id(p.nonce, p.cert_pem):
            raise LedgerError(LEDGER_ERROR, f"transaction id {p.tx_id} does not match its nonce")
        if self._reader().execute("SELECT 1 FROM txlog WHERE tx_id = ?", (p.tx_id,)).fetchone():
            raise LedgerError(
                LEDGER_ERROR,
                f"transaction {p.tx_id} was already committed; a proposal is never replayed",
                p.tx_id,
            )
        if p.args_digest != args_digest(p.fn, args):
            raise LedgerError(
                LEDGER_ERROR, f"the arguments of transaction {p.tx_id} do not match its digest"
            )
        skew = abs(datetime.now(UTC) - ts)
        if skew > MAX_CLOCK_SKEW:
            raise LedgerError(
                LEDGER_ERROR,
                f"transaction {p.tx_id} is timestamped {p.timestamp}, more than "
                f"{int(MAX_CLOCK_SKEW.total_seconds())} s from the ledger's clock; "
                "check the submitting machine's clock",
                p.tx_id,
            )

    # -- proposals ----------------------------------------------------------------------------

    @staticmethod
    def propose(
        identity: OrgIdentity, fn: str, args: Sequence[str], actor: str
    ) -> tuple[Proposal, bytes]:
        """Build and sign a proposal as `identity` (what a client does before submitting)."""
        nonce = new_nonce()
        proposal = Proposal(
            tx_id=new_tx_id(nonce, identity.cert_pem),
            timestamp=fmt_time(datetime.now(UTC)),
            msp_id=identity.msp_id,
            cert_pem=identity.cert_pem,
            actor=actor,
            fn=fn,
            args_digest=args_digest(fn, args),
            nonce=nonce,
        )
        return proposal, identity.sign(proposal.signing_bytes())

    def _simulate(self, p: Proposal, args: Sequence[str]) -> tuple[SnapshotStub, bytes]:
        conn = self._reader()
        stub = SnapshotStub(
            conn,
            tx_id=p.tx_id,
            timestamp=p.timestamp,
            creator=Creator(p.msp_id, p.cert_pem),
            actor=p.actor,
        )
        conn.execute("BEGIN")  # one snapshot for every read of this transaction
        try:
            result = contract.invoke(stub, p.fn, list(args))
        except ContractError as exc:
            raise LedgerError(exc.code, exc.message, exc.key) from None
        finally:
            stub.close()
            conn.execute("COMMIT")
        return stub, result

    # -- public API ---------------------------------------------------------------------------

    def evaluate(self, identity: OrgIdentity, fn: str, args: Sequence[str], actor: str) -> bytes:
        """Run `fn` on the current state as `identity`; nothing is recorded.

        Unsigned: a query never reaches the log and this core checks no signature on it, so
        signing one (as `propose` does for a submit) would only cost an ECDSA operation.
        """
        proposal = Proposal(
            tx_id=secrets.token_hex(32),
            timestamp=fmt_time(datetime.now(UTC)),
            msp_id=identity.msp_id,
            cert_pem=identity.cert_pem,
            actor=actor,
            fn=fn,
            args_digest="",
            nonce="",
        )
        return self._simulate(proposal, args)[1]

    def state_token(self) -> tuple[int, str]:
        """What every query result depends on: (log head sequence, next lease expiry).

        The head changes with every commit, from any process sharing the file; without a
        commit a result changes only when an active lease passes its expiry (it then counts
        as expired). So two equal tokens mean every query would answer the same. The second
        part is "" when no active lease is waiting to expire.
        """
        conn = self._reader()
        now = fmt_time(datetime.now(UTC))
        cached = self._expiries
        conn.execute("BEGIN")  # head and lease index from one snapshot
        try:
            row = conn.execute("SELECT max(seq) FROM txlog").fetchone()
            head = int(row[0] or 0)
            if cached is None or cached[0] != head:
                cached = (head, _active_expiries(conn))
                self._expiries = cached
        finally:
            conn.execute("COMMIT")
        expiries = cached[1]
        at = bisect.bisect_right(expiries, now)
        return head, expiries[at] if at < len(expiries) else ""

    def submit(
        self,
        identity: OrgIdentity,
        fn: str,
        args: Sequence[str],
        actor: str,
        *,
        retries: int = DEFAULT_RETRIES,
    ) -> bytes:
        """Sign, execute and durably commit `fn`; re-propose on a read conflict.

        A retry re-executes on fresh state, so a lost race on an exclusive asset ends with
        the contract's own LEASE_CONFLICT; when retries run out the conflict is reported.
        """
        attempt = 0
        while True:
            proposal, signature = self.propose(identity, fn, args, actor)
            try:
                return self.execute(proposal, signature, args)
            except ReadConflict as exc:
                if attempt >= retries:
                    raise LedgerError(
                        LEASE_CONFLICT,
                        f"{fn} conflicted with a concurrent change to '{exc}' and was not "
                        "committed; retry",
                        str(exc),
                    ) from None
                attempt += 1

    def execute(self, proposal: Proposal, signature: bytes, args: Sequence[str]) -> bytes:
        """Verify, simulate and commit one signed proposal. Raises ReadConflict on MVCC."""
        return self.commit(self.endorse(proposal, signature, args))

    def endorse(self, proposal: Proposal, signature: bytes, args: Sequence[str]) -> Endorsed:
        """Check the signature and identity, then execute on a snapshot; nothing is written."""
        self._check_proposal(proposal, signature, args)
        stub, result = self._simulate(proposal, args)
        return Endorsed(proposal, signature, stub, result)

    def commit(self, endorsed: Endorsed) -> bytes:
        """Validate the read set and append durably (sharing an fsync with concurrent commits)."""
        pending = _Pending(
            endorsed.proposal, endorsed.signature, endorsed.stub.effects(), endorsed.result
        )
        self._group_commit(pending)
        if pending.error is not None:
            raise pending.error
        return endorsed.result

    # -- group commit --------------------------------------------------------------------------

    def _group_commit(self, pending: _Pending) -> None:
        with self._cond:
            self._queue.append(pending)
            while not pending.done and self._leader:
                self._cond.wait()
            if pending.done:
                return
            self._leader = True
            batch, self._queue = self._queue, []
        try:
            self._commit_batch(batch)
        finally:
            with self._cond:
                self._leader = False
                self._cond.notify_all()

    def _write_lock(self) -> contextlib.AbstractContextManager[None]:
        return self._lock(fcntl.LOCK_EX)

    @contextlib.contextmanager
    def _lock(self, mode: int) -> Iterator[None]:
        # flock wakes a waiting process at once; SQLite's busy handler would sleep and poll.
        # flock does not exclude threads sharing the descriptor, hence the thread lock too.
        with self._thread_write_lock:
            fcntl.flock(self._lock_fd, mode)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _commit_batch(self, batch: list[_Pending]) -> None:
        try:
            forget, self._collected = self._collected, []
            ids = self._inbox.put([Item(p.proposal, p.signature, p.effects) for p in batch], forget)
            try:
                outcomes = self._await_outcomes(ids)
            except BaseException:
                with contextlib.suppress(Exception):
                    self._inbox.discard(ids)
                raise
            for inbox_id, item in zip(ids, batch, strict=True):
                self._settle(item, outcomes.get(inbox_id))
        except BaseException as exc:
            for item in batch:
                if item.error is None and not item.seq:
                    item.error = exc
        finally:
            self.stats.batches += 1
            self.stats.transactions += len(batch)
            self.stats.sizes.append(len(batch))
            with self._cond:
                for item in batch:
                    item.done = True

    def _await_outcomes(self, ids: list[int]) -> dict[int, Any]:
        # A shared lock is granted to every waiter at once when the committing process lets
        # go, so the processes whose transactions it carried all see their outcomes together
        # instead of taking the exclusive lock one after another.
        with self._lock(fcntl.LOCK_SH):
            outcomes = self._inbox.outcomes(ids)
        if len(outcomes) == len(ids):
            self._collected.extend(ids)
            return outcomes
        with self._write_lock():
            outcomes = self._inbox.outcomes(ids)
            self._collected.extend(outcomes)
            if len(outcomes) < len(ids):
                # Nobody committed ours yet: commit everything waiting, ours included.
                processed = self._process(self._inbox.waiting())
                self._inbox.finish(processed, keep_for=set(ids))
                outcomes.update({i: processed[i] for i in ids if i in processed})
        return outcomes

    @staticmethod
    def _settle(item: _Pending, outcome: dict[str, Any] | None) -> None:
        tx_id = item.proposal.tx_id
        if outcome is None or outcome.get("tx_id") != tx_id:
            item.error = LedgerError(
                LEDGER_ERROR,
                f"the outcome of transaction {tx_id} was lost; look for it with "
                "`dshare ledger log` before retrying",
                tx_id,
            )
        elif outcome["status"] == "ok":
            item.seq = int(outcome["seq"])
        elif outcome["status"] == "conflict":
            item.error = ReadConflict(unb64(outcome["key"]))
        else:
            item.error = LedgerError(outcome["code"], outcome["message"], tx_id)

    def _process(self, waiting: list[tuple[int, bytes]]) -> dict[int, dict[str, Any]]:
        """Validate and apply every waiting transaction in one durable SQLite transaction."""
        conn = self._writer
        out: dict[int, dict[str, Any]] = {}
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT seq, hash FROM txlog ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (row[0], row[1]) if row else (0, GENESIS_HASH)
            for inbox_id, payload in waiting:
                try:
                    item = decode_item(payload)
                except (ValueError, KeyError, TypeError):
                    out[inbox_id] = {
                        "status": "error",
                        "tx_id": None,
                        "code": LEDGER_ERROR,
                        "message": "an unreadable transaction was dropped from the inbox",
                    }
                    continue
                tx_id = item.proposal.tx_id
                done = conn.execute("SELECT seq FROM txlog WHERE tx_id = ?", (tx_id,)).fetchone()
                if done is not None:
                    # Committed by a process that died before it could leave the outcome.
                    out[inbox_id] = {"status": "ok", "tx_id": tx_id, "seq": done[0]}
                    continue
                try:
                    self._validate(conn, item.effects)
                except ReadConflict as exc:
                    self.stats.conflicts += 1
                    out[inbox_id] = {"status": "conflict", "tx_id": tx_id, "key": b64(exc.key)}
                    continue
                seq += 1
                prev = self._apply(conn, item, seq, prev)
                out[inbox_id] = {"status": "ok", "tx_id": tx_id, "seq": seq}
            conn.execute("COMMIT")
            self.stats.commits += 1
            self.stats.committed += len(waiting)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return out

    @staticmethod
    def _validate(conn: sqlite3.Connection, effects: Effects) -> None:
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

    @staticmethod
    def _apply(conn: sqlite3.Connection, item: Item, seq: int, prev: str) -> str:
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
        body = entry_body(
            seq,
            p,
            reads=[[k.decode(), v] for k, v in sorted(effects.reads.items())],
            ranges=[
                [
                    rr.start.decode(),
                    None if rr.end is None else rr.end.decode(),
                    rr.exhausted,
                    [[k.decode(), v] for k, v in rr.results],
                ]
                for rr in effects.ranges
            ],
            writes=[[k.decode(), None if v is None else b64(v)] for k, v in writes],
            event=None if effects.event is None else [effects.event[0], b64(effects.event[1])],
            prev_hash=prev,
        )
        digest = sha256_hex(body)
        conn.execute(
            "INSERT INTO txlog (seq, tx_id, body, hash, signature) VALUES (?, ?, ?, ?, ?)",
            (seq, p.tx_id, body, digest, item.signature),
        )
        return digest


def _active_expiries(conn: sqlite3.Connection) -> list[str]:
    """Sorted expiry times of the active leases in the contract's open-lease index.

    The embedded ledger knows this one index of the contract it runs because lease expiry is
    the only way a query's answer changes without a commit (see `LedgerCore.state_token`).
    """
    start, end = partial_key_range(keys.OPEN_LEASES, [])
    out = []
    for _key, value, _version in scan(conn, start.encode(), end.encode()):
        entry = json.loads(value)
        if entry.get("state") == "active" and entry.get("expires_at"):
            out.append(str(entry["expires_at"]))
    out.sort()
    return out


_CORES: dict[Path, tuple[LedgerCore, int]] = {}
_CORES_LOCK = threading.Lock()


def acquire_core(path: str | Path) -> LedgerCore:
    """The process's shared core for `path` (so all its identities share group commits)."""
    key = Path(path).resolve()
    with _CORES_LOCK:
        core, refs = _CORES.get(key, (None, 0))
        if core is None:
            core = LedgerCore(key)
        _CORES[key] = (core, refs + 1)
        return core


def release_core(core: LedgerCore) -> None:
    key = core.path.resolve()
    with _CORES_LOCK:
        entry = _CORES.get(key)
        if entry is None or entry[0] is not core:
            core.close()
            return
        if entry[1] <= 1:
            del _CORES[key]
            core.close()
        else:
            _CORES[key] = (core, entry[1] - 1)


def decode(result: bytes) -> Any:
    return json.loads(result)

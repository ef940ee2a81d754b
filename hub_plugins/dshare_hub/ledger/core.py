"""The embedded ledger's synchronous core: simulate on a snapshot, endorse, group-commit.

Each transaction is executed against a consistent snapshot (no lock held) and signed with
its effects by its organization, then validated and applied under the single write lock:
its endorsement and every read-set version and scanned range are re-checked first, as
Fabric's committing peers do, so of two leases of one exclusive asset exactly one commits.
Transactions that arrive while a batch is being made durable wait and share the next commit
(`groupcommit.py`): one fsync for many writers. Several processes may share one file; a
lock file orders their batches. A broker's witness (`witness.py`) checks what it extends.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dshare_chaincode import contract, keys
from dshare_chaincode.errors import LEASE_CONFLICT, ContractError
from dshare_chaincode.stub import partial_key_range
from dshare_chaincode.tx import fmt_time

from . import LedgerError
from .chain import Problem, blob
from .commit import (
    IDENTITY_REJECTED,
    LEDGER_ERROR,
    LEDGER_TAMPERED,
    BatchCommit,
    CommitStats,
    ReadConflict,
    carries,
    check_time,
    tampered,
)
from .groupcommit import GroupCommit, Pending
from .identity import IdentityError, OrgIdentity
from .inbox import Inbox, Item
from .signatures import Signatures
from .snapshot import SnapshotStub, scan
from .store import connect, init_schema
from .txlog import (
    Proposal,
    args_digest,
    endorsed_bytes,
    new_nonce,
    new_tx_id,
    result_hash,
    sha256_hex,
)
from .verify import verify
from .witness import LedgerTampered, Witness

__all__ = [
    "IDENTITY_REJECTED",
    "LEDGER_ERROR",
    "LEDGER_TAMPERED",
    "CommitStats",
    "Endorsed",
    "LedgerCore",
    "ReadConflict",
    "acquire_core",
    "release_core",
]

DEFAULT_RETRIES = 8
QUERY_THREADS = 1

log = logging.getLogger("dshare.ledger")


@dataclass(frozen=True)
class Endorsed:
    """A simulated transaction waiting for commit, signed by the org that executed it."""

    proposal: Proposal
    signature: bytes
    stub: SnapshotStub
    result: bytes
    endorser: OrgIdentity

    args: list[str]

    def item(self) -> Item:
        effects, digest = self.stub.effects(), result_hash(self.result)
        return Item(self.proposal, self.signature, effects, digest, self.args)


class LedgerCore:
    """One SQLite ledger file, shared by every identity in this process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        init_schema(self.path)
        self._writer = connect(self.path)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._orgs: dict[str, str] = {}
        # The brokers' own memories of the ledger (witness.py); without one, the CAs
        # registered in the file are trusted (tests, `dshare ledger` commands).
        self.witnesses: list[Witness] = []
        self.signatures = Signatures(self._ca_for, self._unknown_org)
        self._refusal: LedgerError | None = None
        self.stats = CommitStats()
        self._group = GroupCommit(self.path, self._process, self.stats)
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
        self._group.close()

    # -- organizations -----------------------------------------------------------------------

    @property
    def _inbox(self) -> Inbox:
        return self._group.inbox

    def register_org(self, msp_id: str, ca_cert_pem: str) -> None:
        """Trust `ca_cert_pem` as `msp_id`'s CA (adding an org to a running ledger)."""
        with self._group.write_lock():
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

    def _unknown_org(self, msp_id: str) -> str:
        if self.witnesses:
            return (
                f"organization '{msp_id}' is not trusted by {self.witnesses[0].identity.msp_id}'s "
                "broker; add its CA with `dshare ledger trust` on every broker"
            )
        return (
            f"organization '{msp_id}' is not registered on this ledger; "
            "register its CA with `dshare ledger init`"
        )

    def _ca_for(self, msp_id: str) -> str | None:
        if self.witnesses:
            return self.witnesses[0].ca_for(msp_id)
        ca = self._orgs.get(msp_id)
        if ca is None:
            # Another process may have added the org since we last looked.
            row = (
                self._reader()
                .execute("SELECT ca_cert_pem FROM orgs WHERE msp_id = ?", (msp_id,))
                .fetchone()
            )
            if row is None:
                return None
            ca = self._orgs[msp_id] = row[0]
        return ca

    # -- witnesses -----------------------------------------------------------------------------

    def attach(self, witness: Witness) -> None:
        """Check the whole ledger against `witness` (`audit(full=True)`: every hash,
        signature and checkpoint, and the state replayed) and keep checking and
        checkpointing with it at every commit and `audit`."""
        if witness.new and set(witness.orgs) <= {witness.identity.msp_id}:
            # First start without configured CAs: pin what the file registers now (logged).
            with self._snapshot() as conn:
                registered = dict(conn.execute("SELECT msp_id, ca_cert_pem FROM orgs"))
            own = witness.identity.msp_id
            witness.trust({own: witness.identity.ca_cert_pem})
            witness.trust({m: c for m, c in registered.items() if m != own}, first_sight=True)
        self.witnesses.append(witness)
        self.audit(witness, reason="start", full=True)

    def detach(self, witness: Witness) -> None:
        if witness in self.witnesses:
            self.witnesses.remove(witness)

    def audit(self, witness: Witness, *, reason: str = "audit", full: bool = False) -> None:
        """Check the entries since `witness` last looked, signatures too, and checkpoint the
        head (the reaper's pass). `full` also replays the whole log against the stored state
        and history (`verify`), which is what a changed state table without a changed log
        shows in. Once a check fails, this core refuses every call."""
        self._refuse_if_tampered()
        try:
            if full:
                try:
                    report = verify(self.path, [witness.directory])
                except Exception as exc:
                    raise LedgerTampered(
                        Problem(0, f"the ledger cannot be verified ({type(exc).__name__})")
                    ) from None
                if not report.ok:
                    raise LedgerTampered(report.problems[0], len(report.problems) - 1)
                with witness.lock:
                    witness.verified(
                        (report.entries, report.head_hash),
                        report.tx_seqs,
                        report.latest,
                        report.replay,
                    )
            self._look(witness, reason, durable=True)
        except LedgerTampered as exc:
            self._refuse(tampered(exc, witness.identity.msp_id))
            raise self._refusal from None  # type: ignore[misc]

    def _look(self, witness: Witness, reason: str, *, durable: bool = False) -> None:
        """Check what was added since `witness` last looked and checkpoint the head."""
        with witness.lock, self._snapshot() as conn:
            head = witness.check(conn)
            if head[0]:
                witness.record(*head, reason, durable=durable)

    def _catch_up(self, seq: int, reason: str) -> None:
        """Look with every witness that has not seen `seq` yet (after a commit another
        process made for us, before answering a read of a newer ledger): so every broker
        checkpoints what it was told or shown, and a committer cannot take it back."""
        for witness in self.witnesses:
            if witness.latest is None or witness.latest.seq < seq:
                try:
                    self._look(witness, reason)
                except LedgerTampered as exc:
                    self._refuse(tampered(exc, witness.identity.msp_id))
                    raise self._refusal from None  # type: ignore[misc]

    def _refuse(self, error: LedgerError) -> None:
        if self._refusal is None:
            log.error("%s", error.message)
        self._refusal = error

    def _refuse_if_tampered(self) -> None:
        if self._refusal is not None:
            raise self._refusal

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    # -- proposals ----------------------------------------------------------------------------

    @staticmethod
    def propose(
        identity: OrgIdentity,
        fn: str,
        args: Sequence[str],
        actor: str,
        *,
        at: datetime | None = None,
    ) -> Proposal:
        """What `identity` asks the ledger to run (signed with its effects by `endorse`)."""
        nonce = new_nonce()
        return Proposal(
            tx_id=new_tx_id(nonce, identity.cert_pem),
            timestamp=fmt_time(at or datetime.now(UTC)),
            msp_id=identity.msp_id,
            cert_pem=identity.cert_pem,
            actor=actor,
            fn=fn,
            args_digest=args_digest(fn, args),
            nonce=nonce,
        )

    def _simulate(self, p: Proposal, args: Sequence[str]) -> tuple[SnapshotStub, bytes]:
        conn = self._reader()
        stub = SnapshotStub.for_proposal(conn, p)
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
        A broker answering from a ledger newer than it last looked first checks and
        checkpoints it: what it acts on (a lease it mounts) can then not be taken back.
        """
        self._refuse_if_tampered()
        if self.witnesses:
            (head,) = self._reader().execute("SELECT coalesce(max(seq), 0) FROM txlog").fetchone()
            self._catch_up(int(head), "read")
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
        self._refuse_if_tampered()  # a cached answer is no better than a fresh one
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
        """Execute, sign and durably commit `fn`; re-propose on a read conflict.

        A retry re-executes on fresh state, so a lost race on an exclusive asset ends with
        the contract's own LEASE_CONFLICT; when retries run out the conflict is reported.
        """
        attempt = 0
        while True:
            proposal = self.propose(identity, fn, args, actor)
            try:
                return self.commit(self.endorse(identity, proposal, args))
            except ReadConflict as exc:
                if attempt >= retries:
                    raise LedgerError(
                        LEASE_CONFLICT,
                        f"{fn} conflicted with a concurrent change to '{exc}' and was not "
                        "committed; retry",
                        str(exc),
                    ) from None
                attempt += 1

    def endorse(self, identity: OrgIdentity, proposal: Proposal, args: Sequence[str]) -> Endorsed:
        """Execute `proposal` on a snapshot and sign it with its effects; nothing is written.

        The endorser is the proposal's own organization: in the embedded ledger each org's
        broker is its only peer.
        """
        self._refuse_if_tampered()
        if proposal.msp_id != identity.msp_id or proposal.args_digest != args_digest(
            proposal.fn, args
        ):
            raise LedgerError(
                LEDGER_ERROR,
                f"transaction {proposal.tx_id} is not {identity.msp_id}'s proposal for "
                "these arguments",
                proposal.tx_id,
            )
        ts = check_time(proposal, datetime.now(UTC))
        try:
            self.signatures.certificate(identity.msp_id, identity.cert_pem, ts)
        except IdentityError as exc:
            raise LedgerError(IDENTITY_REJECTED, str(exc), identity.msp_id) from None
        committed = "SELECT 1 FROM txlog WHERE tx_id = ?"
        if self._reader().execute(committed, (proposal.tx_id,)).fetchone():
            raise LedgerError(
                LEDGER_ERROR,
                f"transaction {proposal.tx_id} was already committed; a proposal is never replayed",
                proposal.tx_id,
            )
        stub, result = self._simulate(proposal, args)
        endorsement = stub.effects().endorsement(result_hash(result), args)
        signature = identity.sign(endorsed_bytes(proposal.as_dict(), endorsement))
        return Endorsed(proposal, signature, stub, result, identity, list(args))

    def commit(self, endorsed: Endorsed) -> bytes:
        """Validate and append durably (sharing an fsync with concurrent commits); raises
        ReadConflict when something it read changed since it was executed."""
        self._refuse_if_tampered()
        pending = Pending(endorsed.item(), endorsed.endorser)
        self._group.commit(pending)
        if pending.error is not None:
            raise pending.error
        self._catch_up(pending.seq, "commit")
        self._confirm(endorsed.proposal.tx_id, pending.seq)
        return endorsed.result

    def _confirm(self, tx_id: str, seq: int) -> None:
        """Believe an outcome another process left in the inbox only if the log says so."""
        row = (
            self._reader()
            .execute("SELECT body, hash FROM txlog WHERE seq = ? AND seq >= 1", (seq,))
            .fetchone()
        )
        body = blob(row[0]) if row else b""
        # With a witness, what its checks found there, not what the file says now.
        seen = all(w.saw(tx_id, seq) for w in self.witnesses)
        if row is None or sha256_hex(body) != row[1] or not carries(body, tx_id) or not seen:
            raise LedgerError(
                LEDGER_ERROR,
                f"transaction {tx_id} was reported committed at sequence {seq}, but the log "
                "holds no such entry there; it may not be recorded: look for it with "
                "`dshare ledger log` and run `dshare ledger verify`",
                tx_id,
            )

    def _process(
        self, waiting: list[tuple[int, bytes]], endorser: OrgIdentity
    ) -> dict[int, dict[str, Any]]:
        """Commit `waiting` (with the write lock held), signed by this process's broker's
        organization, or by `endorser`'s when no broker's witness is attached."""
        committer = self.witnesses[0].identity if self.witnesses else endorser
        commit = BatchCommit(self._writer, self.signatures, committer, self.witnesses, self.stats)
        try:
            return commit.run(waiting)
        except LedgerError as exc:
            if exc.code == LEDGER_TAMPERED:
                self._refuse(exc)
            raise


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

"""Walk the embedded ledger's log and say what is wrong with it, entry by entry.

One walker serves `dshare ledger verify` (every entry, every signature) and the brokers'
own checks at start, at each commit and at each reaper pass (the entries since their last
checkpoint). A problem always names the sequence number of the entry it is about.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dshare_chaincode.tx import parse_time

from .signatures import Signatures
from .store import TABLES
from .txlog import (
    FORMAT,
    GENESIS_HASH,
    MAX_CLOCK_SKEW,
    Proposal,
    canonical,
    new_tx_id,
    sha256_hex,
    unb64,
)

Row = tuple[int, str, bytes, str, bytes]  # seq, tx_id, body, hash, signature (commit record)
ROWS_SQL = "SELECT seq, tx_id, body, hash, signature FROM txlog"


@dataclass(frozen=True)
class Problem:
    seq: int
    message: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.message}"


@dataclass(frozen=True)
class Entry:
    """A log entry as the walker read it (whatever its problems)."""

    seq: int
    hash: str
    proposal: Proposal
    endorsement: dict[str, Any]
    timestamp: datetime


def check_shape(e: dict[str, Any]) -> None:
    """Raise TypeError unless the endorsement has the shapes replay relies on."""
    if not all(isinstance(e[x], list) for x in ("reads", "writes", "ranges", "args")):
        raise TypeError("endorsement lists")
    if not all(isinstance(a, str) for a in e["args"]):
        raise TypeError("args")
    for key, version in e["reads"]:
        if not isinstance(key, str) or type(version) is not int:
            raise TypeError("read")
    for key, value in e["writes"]:
        if not isinstance(key, str) or not (value is None or isinstance(value, str)):
            raise TypeError("write")
        key.encode()  # a lone surrogate is no key any stub could have written
    for start, end, exhausted, results in e["ranges"]:
        if not isinstance(start, str) or not (end is None or isinstance(end, str)):
            raise TypeError("range")
        if not isinstance(exhausted, bool) or not isinstance(results, list):
            raise TypeError("range")
        for key, version in results:
            if not isinstance(key, str) or type(version) is not int:
                raise TypeError("range result")


def file_problems(conn: Any) -> list[Problem]:
    """What is wrong with the file around the log: rows no walk reads, anything in its schema
    dshare did not make (a trigger would rewrite what is written), a lost format record.
    Sequence 0: the file, not an entry."""
    out = []
    (hidden,) = conn.execute("SELECT count(*) FROM txlog WHERE seq < 1").fetchone()
    if hidden:
        out.append(Problem(0, f"the log holds {hidden} row(s) at sequence 0 or below"))
    foreign = [
        str(name)
        for kind, name, table in conn.execute("SELECT type, name, tbl_name FROM sqlite_master")
        if not (
            (kind == "table" and name in TABLES)
            or (kind == "index" and str(name).startswith("sqlite_autoindex_") and table in TABLES)
        )
    ]
    if foreign:
        out.append(
            Problem(0, f"the ledger file holds what dshare never made: {', '.join(foreign)}")
        )
    meta = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    if meta is None or meta[0] != str(FORMAT):
        out.append(Problem(0, "the ledger file's format record is missing or altered"))
    return out


def blob(value: Any) -> bytes:
    """A BLOB column's bytes, whatever type a writer of the file stored there."""
    if isinstance(value, bytes | memoryview):
        return bytes(value)
    return str(value).encode("utf-8", "replace")


def rows(conn: Any, after_seq: int = 0) -> Iterator[Row]:
    cur = conn.execute(ROWS_SQL + " WHERE seq > ? ORDER BY seq", (after_seq,))
    for seq, tx_id, body, digest, signature in cur:
        yield int(seq), str(tx_id), blob(body), str(digest), blob(signature)


class ChainWalker:
    """Feed it rows in log order, starting after (`after_seq`, `after_hash`).

    `first_seq(tx_id, seq)` names the first entry that carried a transaction (from the
    entries walked so far), to find replayed ones.
    """

    def __init__(
        self,
        signatures: Signatures,
        *,
        after_seq: int = 0,
        after_hash: str = GENESIS_HASH,
        first_seq: Callable[[str, int], int] | None = None,
        latest: datetime | None = None,
    ) -> None:
        self.signatures = signatures
        self.head_seq = after_seq
        self.head_hash = after_hash
        self.entries = 0
        self.problems: list[Problem] = []
        self._first_seq = first_seq
        self._uncovered: int | None = None  # first entry no commit signature covers yet
        self._latest = latest  # the latest timestamp of the entries so far
        self._now = datetime.now(UTC)

    @property
    def latest(self) -> datetime | None:
        return self._latest

    def add(self, seq: int, message: str) -> None:
        self.problems.append(Problem(seq, message))

    def walk(self, rows: Iterable[Row]) -> Iterator[Entry]:
        for row in rows:
            entry = self.feed(*row)
            if entry is not None:
                yield entry
        self.finish()

    def feed(
        self, seq: int, tx_id: str, body: bytes, stored_hash: str, record: bytes
    ) -> Entry | None:
        expected = self.head_seq + 1
        if seq != expected:
            self.add(seq, f"the log skips from sequence {expected - 1} to {seq} (entries removed)")
        self.entries += 1
        if sha256_hex(body) != stored_hash:
            self.add(seq, "the entry's hash does not match its bytes (altered entry)")
        parsed = self._parse(seq, tx_id, body, stored_hash)
        entry = parsed[0] if parsed else None
        prev = self.head_hash
        self.head_seq, self.head_hash = seq, stored_hash
        if self._uncovered is None:
            self._uncovered = seq
        if record:
            self._check_commit(seq, stored_hash, record, entry)
        if parsed is None:
            return None
        entry, doc = parsed
        if doc.get("prev_hash") != prev:
            self.add(seq, "the entry does not link to the previous entry's hash")
        if doc.get("seq") != seq:
            self.add(seq, f"the entry's body claims sequence {doc.get('seq')!r}")
        self._check_endorsement(entry, doc)
        return entry

    def finish(self) -> None:
        if self._uncovered is not None:
            self.add(
                self.head_seq,
                f"entries {self._uncovered} to {self.head_seq} carry no commit signature "
                "(the log was cut in the middle of a batch, or entries were appended by "
                "someone who cannot sign)",
            )
            self._uncovered = None

    def _parse(
        self, seq: int, tx_id: str, body: bytes, digest: str
    ) -> tuple[Entry, dict[str, Any]] | None:
        try:
            doc = json.loads(body)
            if not isinstance(doc, dict):
                raise TypeError("body")
            if doc.get("format") != FORMAT:
                self.add(
                    seq,
                    f"the entry is in log format {doc.get('format', 1)!r}, not {FORMAT}: "
                    "written by an older dshare, without endorsement and commit signatures",
                )
                return None
            proposal = Proposal.from_dict(doc["proposal"])
            endorsement = doc["endorsement"]
            if not isinstance(endorsement, dict):
                raise TypeError("endorsement")
            timestamp = parse_time(proposal.timestamp)
            check_shape(endorsement)
            canonical(proposal.as_dict()).decode("ascii")  # every field is text
            derived = new_tx_id(proposal.nonce, proposal.cert_pem)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError, UnicodeError):
            self.add(seq, "the entry's body is not a readable log entry (altered bytes)")
            return None
        if proposal.tx_id != tx_id:
            self.add(seq, f"the tx_id column {tx_id!r} differs from the signed proposal's")
        if proposal.tx_id != derived:
            self.add(seq, "the transaction id does not match its nonce and certificate")
        if self._first_seq is not None:
            first = self._first_seq(proposal.tx_id, seq)
            if first != seq:
                self.add(
                    seq,
                    f"transaction {proposal.tx_id[:16]} was already committed at sequence "
                    f"{first} (a replayed entry)",
                )
        if timestamp > self._now + MAX_CLOCK_SKEW:
            self.add(seq, f"the entry is timestamped {proposal.timestamp}, in the future")
        if self._latest is not None and timestamp < self._latest - 2 * MAX_CLOCK_SKEW:
            # Committers refuse proposals more than the skew from their clock, so an entry
            # this far before one already in the log was dated back (a retired key?).
            self.add(
                seq,
                f"the entry is timestamped {proposal.timestamp}, before entries "
                "already committed by more than the clock allows (backdated)",
            )
        self._latest = max(timestamp, self._latest or timestamp)
        return Entry(seq, digest, proposal, endorsement, timestamp), doc

    def _check_endorsement(self, entry: Entry, doc: dict[str, Any]) -> None:
        try:
            signature = unb64(str(doc.get("signature", "")))
        except (binascii.Error, ValueError):
            self.add(entry.seq, "the endorsement signature is not base64 (altered bytes)")
            return
        problem = self.signatures.endorsement_problem(
            entry.proposal, entry.endorsement, signature, entry.timestamp
        )
        if problem:
            self.add(entry.seq, problem)

    def _check_commit(self, seq: int, digest: str, record: bytes, entry: Entry | None) -> None:
        self._uncovered = None
        at = entry.timestamp if entry is not None else None
        if at is None:
            self.add(seq, "the commit signature cannot be checked: its entry is unreadable")
            return
        problem = self.signatures.commit_problem(seq, digest, record, at)
        if problem:
            self.add(seq, problem)

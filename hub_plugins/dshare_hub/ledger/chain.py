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
from datetime import datetime
from typing import Any

from dshare_chaincode.tx import parse_time

from .signatures import Signatures
from .txlog import FORMAT, GENESIS_HASH, Proposal, new_tx_id, sha256_hex, unb64

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


def seen_in_walk() -> Callable[[str, int], int]:
    seen: dict[str, int] = {}
    return lambda tx_id, seq: seen.setdefault(tx_id, seq)


def first_in_file(conn: Any) -> Callable[[str, int], int]:
    def first(tx_id: str, seq: int) -> int:
        row = conn.execute("SELECT min(seq) FROM txlog WHERE tx_id = ?", (tx_id,)).fetchone()
        return int(row[0]) if row and row[0] is not None else seq

    return first


def rows(conn: Any, after_seq: int = 0) -> Iterator[Row]:
    cur = conn.execute(ROWS_SQL + " WHERE seq > ? ORDER BY seq", (after_seq,))
    for seq, tx_id, body, digest, signature in cur:
        yield int(seq), str(tx_id), bytes(body), str(digest), bytes(signature)


class ChainWalker:
    """Feed it rows in log order, starting after (`after_seq`, `after_hash`).

    `signatures` None checks hashes, links and positions only (the cheap check a broker
    makes at every commit). `first_seq(tx_id, seq)` names the first entry that carried a
    transaction, to find replayed ones: `seen_in_walk` remembers them all; a broker looks
    further back in the file (`first_in_file`).
    """

    def __init__(
        self,
        signatures: Signatures | None,
        *,
        after_seq: int = 0,
        after_hash: str = GENESIS_HASH,
        first_seq: Callable[[str, int], int] | None = None,
    ) -> None:
        self.signatures = signatures
        self.head_seq = after_seq
        self.head_hash = after_hash
        self.entries = 0
        self.problems: list[Problem] = []
        self._first_seq = first_seq
        self._uncovered: int | None = None  # first entry no commit signature covers yet

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
        except (ValueError, KeyError, TypeError):
            self.add(seq, "the entry's body is not a readable log entry (altered bytes)")
            return None
        if proposal.tx_id != tx_id:
            self.add(seq, f"the tx_id column {tx_id!r} differs from the signed proposal's")
        if proposal.tx_id != new_tx_id(proposal.nonce, proposal.cert_pem):
            self.add(seq, "the transaction id does not match its nonce and certificate")
        if self._first_seq is not None:
            first = self._first_seq(proposal.tx_id, seq)
            if first != seq:
                self.add(
                    seq,
                    f"transaction {proposal.tx_id[:16]} was already committed at sequence "
                    f"{first} (a replayed entry)",
                )
        return Entry(seq, digest, proposal, endorsement, timestamp), doc

    def _check_endorsement(self, entry: Entry, doc: dict[str, Any]) -> None:
        if self.signatures is None:
            return
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
        if self.signatures is None:
            return
        at = entry.timestamp if entry is not None else None
        if at is None:
            self.add(seq, "the commit signature cannot be checked: its entry is unreadable")
            return
        problem = self.signatures.commit_problem(seq, digest, record, at)
        if problem:
            self.add(seq, problem)

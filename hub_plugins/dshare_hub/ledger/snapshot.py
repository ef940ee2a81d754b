"""The embedded ledger's `Stub`: reads a consistent SQLite snapshot, buffers writes, and
records the read set (point reads with versions, scanned ranges) that commit re-checks."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dshare_chaincode.stub import (
    Creator,
    HistoryEntry,
    create_composite_key,
    partial_key_range,
)
from dshare_chaincode.tx import parse_time

from .txlog import Proposal, b64

# Simple keys never start with NUL (that is the composite-key namespace), so a simple-key
# range starts no lower than this.
SIMPLE_MIN = b"\x01"


@dataclass
class Effects:
    """What executing a transaction read and would write: what commit validates and applies."""

    reads: dict[bytes, int]
    ranges: list[RangeRead]
    writes: dict[bytes, bytes | None]
    event: tuple[str, bytes] | None

    def endorsement(self, result_hash: str, args: Sequence[str]) -> dict[str, Any]:
        """These effects of running a proposal with `args`, as the log records and the
        endorser signs them (`txlog`): with the arguments, anyone can run it again."""
        return {
            "args": list(args),
            "reads": [[k.decode(), v] for k, v in sorted(self.reads.items())],
            "ranges": [
                [
                    rr.start.decode(),
                    None if rr.end is None else rr.end.decode(),
                    rr.exhausted,
                    [[k.decode(), v] for k, v in rr.results],
                ]
                for rr in self.ranges
            ],
            "writes": [
                [k.decode(), None if v is None else b64(v)] for k, v in sorted(self.writes.items())
            ],
            "event": None if self.event is None else [self.event[0], b64(self.event[1])],
            "result_hash": result_hash,
        }


@dataclass
class RangeRead:
    start: bytes
    end: bytes | None
    results: list[tuple[bytes, int]] = field(default_factory=list)
    exhausted: bool = False


class SnapshotStub:
    """One transaction's view of the ledger; see `dshare_chaincode.stub` for the semantics."""

    @classmethod
    def for_proposal(cls, conn: sqlite3.Connection, p: Proposal) -> SnapshotStub:
        """The stub a proposal runs on: its tx id, time, creator and actor."""
        return cls(
            conn,
            tx_id=p.tx_id,
            timestamp=p.timestamp,
            creator=Creator(p.msp_id, p.cert_pem),
            actor=p.actor,
        )

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        tx_id: str,
        timestamp: str,
        creator: Creator,
        actor: str,
    ) -> None:
        self._conn = conn
        self._tx_id = tx_id
        self._ts = parse_time(timestamp)
        self._creator = creator
        self._transient = {"actor": actor.encode()}
        self.reads: dict[bytes, int] = {}
        self.ranges: list[RangeRead] = []
        self.writes: dict[bytes, bytes | None] = {}
        self.event: tuple[str, bytes] | None = None
        self._cursors: list[sqlite3.Cursor] = []

    def get_state(self, key: str) -> bytes | None:
        k = key.encode()
        row = self._conn.execute("SELECT value, version FROM state WHERE key = ?", (k,)).fetchone()
        self.reads.setdefault(k, row[1] if row else 0)
        return bytes(row[0]) if row else None

    def put_state(self, key: str, value: bytes) -> None:
        if not key:
            raise ValueError("an empty key cannot be written")
        self.writes[key.encode()] = bytes(value)

    def del_state(self, key: str) -> None:
        self.writes[key.encode()] = None

    def _scan(self, start: bytes, end: bytes | None) -> Iterator[tuple[str, bytes]]:
        read = RangeRead(start, end)
        self.ranges.append(read)
        cur = scan(self._conn, start, end)
        self._cursors.append(cur)
        for k, v, ver in cur:
            read.results.append((bytes(k), ver))
            yield bytes(k).decode(), bytes(v)
        read.exhausted = True

    def get_state_by_range(self, start: str, end: str) -> Iterator[tuple[str, bytes]]:
        lo = max(start.encode(), SIMPLE_MIN)
        return self._scan(lo, end.encode() if end else None)

    def create_composite_key(self, object_type: str, attrs: Sequence[str]) -> str:
        return create_composite_key(object_type, attrs)

    def get_state_by_partial_composite_key(
        self, object_type: str, attrs: Sequence[str]
    ) -> Iterator[tuple[str, bytes]]:
        start, end = partial_key_range(object_type, attrs)
        return self._scan(start.encode(), end.encode())

    def get_history_for_key(self, key: str) -> Iterator[HistoryEntry]:
        rows = self._conn.execute(
            "SELECT tx_id, timestamp, is_delete, value FROM history WHERE key = ? ORDER BY seq",
            (key.encode(),),
        ).fetchall()
        for tx_id, ts, is_delete, value in rows:
            yield HistoryEntry(
                tx_id, parse_time(ts), bool(is_delete), None if value is None else bytes(value)
            )

    def get_tx_id(self) -> str:
        return self._tx_id

    def get_tx_timestamp(self) -> datetime:
        return self._ts

    def get_creator(self) -> Creator:
        return self._creator

    def get_transient(self) -> dict[str, bytes]:
        return dict(self._transient)

    def set_event(self, name: str, payload: bytes) -> None:
        self.event = (name, bytes(payload))

    def effects(self) -> Effects:
        return Effects(self.reads, self.ranges, self.writes, self.event)

    def close(self) -> None:
        for cur in self._cursors:
            cur.close()
        self._cursors.clear()


def scan(
    conn: sqlite3.Connection, start: bytes, end: bytes | None, limit: int = -1
) -> sqlite3.Cursor:
    if end is None:
        sql = "SELECT key, value, version FROM state WHERE key >= ? ORDER BY key LIMIT ?"
        return conn.execute(sql, (start, limit))
    sql = "SELECT key, value, version FROM state WHERE key >= ? AND key < ? ORDER BY key LIMIT ?"
    return conn.execute(sql, (start, end, limit))

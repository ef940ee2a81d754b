"""Cross-process group commit: the inbox where writers leave endorsed transactions.

Several processes (brokers) write one ledger file. Each leaves its endorsed transactions
here, then takes the ledger's write lock; whoever holds the lock commits *every* waiting
transaction, from any process, in one durable SQLite transaction (one fsync) and leaves the
outcomes for the others. The inbox holds only transactions not yet committed, so it needs no
fsync: if it is lost, nothing committed is lost, and a transaction committed but without its
outcome is recognised by its tx id when it is processed again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .snapshot import Effects, RangeRead
from .txlog import Proposal, b64, unb64

SCHEMA = """
-- AUTOINCREMENT: an id is never reused, so a stale outcome can never match a new entry.
CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS outcome (
    id INTEGER PRIMARY KEY, body TEXT NOT NULL, created REAL NOT NULL
);
"""
# Outcomes whose submitter died before collecting them are dropped after this long.
ORPHAN_SECONDS = 600.0


@dataclass
class Item:
    """An endorsed transaction: `signature` is the endorser's over the proposal, the
    effects and `result_hash` (`txlog.endorsed_bytes`)."""

    proposal: Proposal
    signature: bytes
    effects: Effects
    result_hash: str
    args: list[str]  # the committer re-runs the contract with them (`commit.py`)

    def endorsement(self) -> dict[str, Any]:
        return self.effects.endorsement(self.result_hash, self.args)


def encode(item: Item) -> bytes:
    e = item.effects
    return json.dumps(
        {
            "p": item.proposal.as_dict(),
            "s": b64(item.signature),
            "r": [[b64(k), v] for k, v in e.reads.items()],
            "g": [
                [
                    b64(r.start),
                    None if r.end is None else b64(r.end),
                    r.exhausted,
                    [[b64(k), v] for k, v in r.results],
                ]
                for r in e.ranges
            ],
            "w": [[b64(k), None if v is None else b64(v)] for k, v in e.writes.items()],
            "e": None if e.event is None else [e.event[0], b64(e.event[1])],
            "h": item.result_hash,
            "a": item.args,
        },
        separators=(",", ":"),
    ).encode()


def decode(payload: bytes) -> Item:
    """The item in `payload`; raises ValueError, KeyError, TypeError or AttributeError (or
    RecursionError, UnicodeError) on anything else: the inbox is writable by others."""
    d = json.loads(payload)
    ranges = [
        RangeRead(
            unb64(s), None if end is None else unb64(end), [(unb64(k), v) for k, v in res], bool(ex)
        )
        for s, end, ex, res in d["g"]
    ]
    effects = Effects(
        reads={unb64(k): v for k, v in d["r"]},
        ranges=ranges,
        writes={unb64(k): None if v is None else unb64(v) for k, v in d["w"]},
        event=None if d["e"] is None else (d["e"][0], unb64(d["e"][1])),
    )
    args = d["a"]
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise TypeError("args")
    return Item(Proposal.from_dict(d["p"]), unb64(d["s"]), effects, str(d["h"]), args)


class Inbox:
    """The inbox file beside a ledger; used by one thread at a time per process."""

    def __init__(self, ledger_path: Path) -> None:
        self.path = Path(str(ledger_path) + ".inbox")
        self._lock_fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._thread_lock = threading.Lock()
        self._conn = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=60.0
        )
        self._conn.execute("PRAGMA journal_mode = WAL")
        # Not durable on purpose: see the module docstring.
        self._conn.execute("PRAGMA synchronous = OFF")
        with self._locked():
            self._conn.executescript(SCHEMA)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # A blocking flock wakes waiters at once, unlike SQLite's sleeping busy handler.
        with self._thread_lock:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def put(self, items: list[Item], forget: list[int]) -> list[int]:
        """Leave `items`; also drop the outcomes `forget` already collected (no extra commit)."""
        with self._locked():
            self._conn.execute("BEGIN IMMEDIATE")
            if forget:
                marks = ",".join("?" * len(forget))
                self._conn.execute(f"DELETE FROM outcome WHERE id IN ({marks})", forget)  # noqa: S608
            ids = []
            for item in items:
                cur = self._conn.execute("INSERT INTO inbox (payload) VALUES (?)", (encode(item),))
                ids.append(int(cur.lastrowid or 0))
            self._conn.execute("COMMIT")
        return ids

    def outcomes(self, ids: list[int]) -> dict[int, Any]:
        """Outcomes another process left for `ids`; a read, so many waiters read at once."""
        marks = ",".join("?" * len(ids))
        rows = self._conn.execute(
            f"SELECT id, body FROM outcome WHERE id IN ({marks})",  # noqa: S608 - placeholders
            ids,
        ).fetchall()
        return {i: json.loads(body) for i, body in rows}

    def waiting(self) -> list[tuple[int, bytes]]:
        with self._locked():
            rows = self._conn.execute("SELECT id, payload FROM inbox ORDER BY id").fetchall()
        return [(i, bytes(p)) for i, p in rows]

    def finish(self, outcomes: dict[int, Any], keep_for: set[int]) -> None:
        """Drop processed entries; leave outcomes for entries of other processes."""
        now = time.time()
        with self._locked():
            self._conn.execute("BEGIN IMMEDIATE")
            for i, outcome in outcomes.items():
                self._conn.execute("DELETE FROM inbox WHERE id = ?", (i,))
                if i not in keep_for:
                    self._conn.execute(
                        "INSERT OR REPLACE INTO outcome (id, body, created) VALUES (?, ?, ?)",
                        (i, json.dumps(outcome), now),
                    )
            self._conn.execute("DELETE FROM outcome WHERE created < ?", (now - ORPHAN_SECONDS,))
            self._conn.execute("COMMIT")

    def discard(self, ids: list[int]) -> None:
        marks = ",".join("?" * len(ids))
        with self._locked():
            self._conn.execute(f"DELETE FROM inbox WHERE id IN ({marks})", ids)  # noqa: S608

    def close(self) -> None:
        self._conn.close()
        os.close(self._lock_fd)

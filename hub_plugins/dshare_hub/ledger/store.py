"""SQLite layout and connections of the embedded ledger (one file, WAL mode)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from . import LedgerError
from .txlog import FORMAT

SCHEMA = """
CREATE TABLE IF NOT EXISTS state (
    key BLOB PRIMARY KEY,
    value BLOB NOT NULL,
    version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    key BLOB NOT NULL,
    seq INTEGER NOT NULL,
    tx_id TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    is_delete INTEGER NOT NULL,
    value BLOB,
    PRIMARY KEY (key, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS txlog (
    seq INTEGER PRIMARY KEY,
    tx_id TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,
    hash TEXT NOT NULL,
    signature BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Transactions a commit refused (read conflict, bad endorsement), kept while their
-- timestamp could still pass the clock check, so one left in the inbox again never commits.
CREATE TABLE IF NOT EXISTS refused (tx_id TEXT PRIMARY KEY, timestamp TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orgs (
    msp_id TEXT PRIMARY KEY,
    ca_cert_pem TEXT NOT NULL,
    added_at TEXT NOT NULL
);
"""


# Every table of the file (file_problems reports anything else found in its schema).
TABLES = ("state", "history", "txlog", "meta", "refused", "orgs")


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode; transactions are begun explicitly."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=60.0)
    # Text columns (hashes, tx ids, CAs) are written by whoever can write the file: a byte
    # that is not UTF-8 must read as a mismatch, not abort the check that would report it.
    conn.text_factory = lambda raw: raw.decode("utf-8", "replace")
    conn.execute("PRAGMA busy_timeout = 60000")
    conn.execute("PRAGMA journal_mode = WAL")
    # FULL: the WAL is fsynced at every commit, so a committed batch survives power loss.
    conn.execute("PRAGMA synchronous = FULL")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    return conn


def init_schema(path: str | Path) -> None:
    """Create the tables; refuse a file whose log another format of dshare wrote."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        conn.executescript("BEGIN IMMEDIATE;" + SCHEMA + "COMMIT;")
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            first = conn.execute("SELECT body FROM txlog ORDER BY seq LIMIT 1").fetchone()
            if row is None and first is None:
                conn.execute("INSERT INTO meta (key, value) VALUES ('format', ?)", (str(FORMAT),))
                row = (str(FORMAT),)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()
    if row is None and first is not None and logged_format(bytes(first[0])) == FORMAT:
        raise LedgerError(
            "LEDGER_TAMPERED",
            f"{path} has lost its format record but its log is in format {FORMAT}: the file "
            "was altered; run `dshare ledger verify` with every broker's state directory",
        )
    found = "1" if row is None else row[0]
    if found != str(FORMAT):
        raise LedgerError(
            "LEDGER_ERROR",
            f"{path} holds a log in format {found}; this dshare writes format {FORMAT} "
            "(entries signed by their endorser and batches by their committer). Keep the old "
            "file for audit and start a new ledger; an old log cannot be signed afterwards",
        )


def logged_format(body: bytes) -> object:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return doc.get("format", 1) if isinstance(doc, dict) else None

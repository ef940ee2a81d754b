"""What someone who can write the embedded ledger file can do to it.

The tamper suites play two attackers: anyone with write access to the file (every broker's
OS user can write it, in the demo), and an organization's admin who also holds that
organization's ledger key. Both know the file format and recompute every hash; the key
holder also re-signs what its key can sign. After each change the world state and history
are rebuilt from the forged log, so they agree with it, as a careful forger would leave
them.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dshare_chaincode import contract
from dshare_hub.ledger.identity import OrgIdentity
from dshare_hub.ledger.snapshot import SnapshotStub
from dshare_hub.ledger.store import SCHEMA
from dshare_hub.ledger.txlog import (
    GENESIS_HASH,
    Proposal,
    args_digest,
    commit_bytes,
    commit_record,
    endorsed_bytes,
    entry_body,
    result_hash,
    sha256_hex,
)


@dataclass
class Forged:
    """One log entry as the forger handles it."""

    proposal: dict[str, str]
    endorsement: dict[str, Any]
    signature: str  # base64 endorsement signature
    record: bytes  # commit record, b"" inside a batch
    changed: bool = False

    @property
    def org(self) -> str:
        return self.proposal["msp_id"]


class LedgerFile:
    def __init__(self, db: Path) -> None:
        self.db = db

    def _conn(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db, isolation_level=None)

    def entries(self) -> list[Forged]:
        conn = self._conn()
        try:
            rows = conn.execute("SELECT body, signature FROM txlog ORDER BY seq").fetchall()
        finally:
            conn.close()
        out = []
        for body, record in rows:
            doc = json.loads(body)
            out.append(Forged(doc["proposal"], doc["endorsement"], doc["signature"], record))
        return out

    def head(self) -> int:
        conn = self._conn()
        try:
            return int(conn.execute("SELECT max(seq) FROM txlog").fetchone()[0] or 0)
        finally:
            conn.close()

    def write(self, entries: list[Forged], keys: dict[str, OrgIdentity] | None = None) -> None:
        """Replace the log with `entries`, renumbered and re-chained, then rebuild state.

        With `keys`, the forger re-signs the changed entries of those organizations and
        countersigns every batch end with the first key (as the committer it pretends to be).
        """
        keys = keys or {}
        committer = next(iter(keys.values()), None)
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM txlog")
            prev = GENESIS_HASH
            for seq, e in enumerate(entries, 1):
                signature = base64.b64decode(e.signature)
                if e.changed and e.org in keys:
                    signature = keys[e.org].sign(endorsed_bytes(e.proposal, e.endorsement))
                body = entry_body(
                    seq, prev, Proposal.from_dict(e.proposal), e.endorsement, signature
                )
                prev = sha256_hex(body)
                record = e.record
                if (record or seq == len(entries)) and committer is not None:
                    sig = committer.sign(commit_bytes(seq, prev, committer.msp_id))
                    record = commit_record(committer.msp_id, committer.cert_pem, sig)
                conn.execute(
                    "INSERT INTO txlog (seq, tx_id, body, hash, signature) VALUES (?, ?, ?, ?, ?)",
                    (seq, e.proposal["tx_id"], body, prev, record),
                )
            conn.execute("COMMIT")
        finally:
            conn.close()
        self.rebuild_state()

    def rebuild_state(self) -> None:
        """World state and history recomputed from the log, as verify would replay it."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM state")
            conn.execute("DELETE FROM history")
            rows = conn.execute("SELECT seq, body FROM txlog ORDER BY seq").fetchall()
            for seq, body in rows:
                doc = json.loads(body)
                p = doc["proposal"]
                for key, value in doc["endorsement"]["writes"]:
                    k = key.encode()
                    v = None if value is None else base64.b64decode(value)
                    if v is None:
                        conn.execute("DELETE FROM state WHERE key = ?", (k,))
                    else:
                        conn.execute(
                            "INSERT OR REPLACE INTO state (key, value, version) VALUES (?, ?, ?)",
                            (k, v, seq),
                        )
                    conn.execute(
                        "INSERT INTO history (key, seq, tx_id, timestamp, is_delete, value) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (k, seq, p["tx_id"], p["timestamp"], int(v is None), v),
                    )
            conn.execute("COMMIT")
        finally:
            conn.close()

    def sql(self, statement: str, *params: Any) -> None:
        conn = self._conn()
        try:
            conn.execute(statement, params)
        finally:
            conn.close()


def rerun_with(
    entries: list[Forged],
    index: int,
    args: list[str],
    key: OrgIdentity,
    *,
    timestamp: str | None = None,
) -> None:
    """What a careful key holder does: run its own entry again with other arguments on the
    state before it (the contract is public), so its effects are what the contract does,
    and sign that. Entries after it still replay: they read the same keys at the same
    versions."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.executescript(SCHEMA)
    for e in entries[:index]:
        seq = entries.index(e) + 1
        for k, v in e.endorsement["writes"]:
            if v is None:
                db.execute("DELETE FROM state WHERE key = ?", (k.encode(),))
            else:
                db.execute(
                    "INSERT OR REPLACE INTO state (key, value, version) VALUES (?, ?, ?)",
                    (k.encode(), base64.b64decode(v), seq),
                )
    entry = entries[index]
    proposal = dict(entry.proposal, args_digest=args_digest(entry.proposal["fn"], args))
    if timestamp is not None:
        proposal["timestamp"] = timestamp
    p = Proposal.from_dict(proposal)
    stub = SnapshotStub.for_proposal(db, p)
    result = contract.invoke(stub, p.fn, args)
    stub.close()
    entry.proposal = proposal
    entry.endorsement = stub.effects().endorsement(result_hash(result), args)
    entry.signature = base64.b64encode(
        key.sign(endorsed_bytes(proposal, entry.endorsement))
    ).decode()


def rewrite_writes(
    entry: Forged, key_prefix: str, change: Callable[[dict[str, Any]], None]
) -> None:
    """Change the JSON value of every write of `entry` whose key starts with `key_prefix`."""
    hit = False
    for write in entry.endorsement["writes"]:
        if write[0].startswith(key_prefix) and write[1] is not None:
            value = json.loads(base64.b64decode(write[1]))
            change(value)
            write[1] = base64.b64encode(json.dumps(value).encode()).decode()
            hit = True
    assert hit, f"no write of {key_prefix!r} in this entry"
    entry.changed = True


def find(entries: list[Forged], fn: str, org: str | None = None) -> int:
    """The index of the first entry calling `fn` (as `org`)."""
    for i, e in enumerate(entries):
        if e.proposal["fn"] == fn and (org is None or e.org == org):
            return i
    raise AssertionError(f"no {fn} entry")

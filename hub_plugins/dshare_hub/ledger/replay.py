"""The world state rebuilt from a ledger's log, each entry run again on the state before it.

`verify` builds one from genesis to compare with the stored state; a broker keeps the one its
check at start built and runs every entry it has not seen on it, so an entry whose effects
the contract does not produce is refused at its next look, whoever signed it.
"""

from __future__ import annotations

import binascii
import sqlite3
from collections.abc import Callable

from dshare_chaincode import contract
from dshare_chaincode.errors import ContractError

from .chain import Entry
from .snapshot import SnapshotStub
from .store import SCHEMA
from .txlog import args_digest, canonical, result_hash, unb64

Add = Callable[[int, str], None]  # (sequence, what is wrong)


class Replay:
    """The world state rebuilt from the log in a private in-memory database, each entry run
    again there, on the state before it, with its own arguments, time and creator."""

    def __init__(self) -> None:
        # Used by whichever thread holds the witness lock (commits, reads, the reaper).
        self.db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self.db.executescript(SCHEMA)
        self.history: dict[tuple[bytes, int], tuple[str, str, int, bytes | None]] = {}
        self.deleted: dict[bytes, int] = {}  # key -> the entry that last deleted it

    def state(self) -> dict[bytes, tuple[bytes, int]]:
        rows = self.db.execute("SELECT key, value, version FROM state")
        return {bytes(k): (bytes(v), int(ver)) for k, v, ver in rows}

    def rerun(self, add: Add, entry: Entry) -> None:
        """Whether the entry's effects are what the contract does: an organization's key
        signs what its broker says happened, and only running it again shows it did."""
        p, e = entry.proposal, entry.endorsement
        if args_digest(p.fn, e["args"]) != p.args_digest:
            add(entry.seq, "the entry's arguments do not match its proposal's digest")
            return
        try:
            stub = SnapshotStub.for_proposal(self.db, p)
        except Exception as exc:
            add(entry.seq, f"{p.fn} cannot run again here ({type(exc).__name__})")
            return
        try:
            result = contract.invoke(stub, p.fn, list(e["args"]))
        except ContractError as exc:
            add(
                entry.seq,
                f"{p.fn} run again on the state before this entry is refused ({exc.code}): "
                "the entry records effects the contract does not produce",
            )
            return
        except Exception as exc:
            add(entry.seq, f"{p.fn} cannot run again here ({type(exc).__name__})")
            return
        finally:
            stub.close()
        if canonical(stub.effects().endorsement(result_hash(result), e["args"])) != canonical(e):
            add(
                entry.seq,
                f"the entry's effects are not what {p.fn} does on the state before it (its "
                "reads, writes or answer were made up)",
            )

    def apply(self, add: Add, entry: Entry) -> None:
        seq, e = entry.seq, entry.endorsement
        tx_id, ts = entry.proposal.tx_id, entry.proposal.timestamp
        for key_text, value_b64 in e["writes"]:
            key = key_text.encode()
            try:
                value = None if value_b64 is None else unb64(value_b64)
            except (binascii.Error, ValueError):
                add(seq, f"the write set value of key {key_text!r} is not base64")
                continue
            if value is None:
                self.db.execute("DELETE FROM state WHERE key = ?", (key,))
                self.deleted[key] = seq
            else:
                self.db.execute(
                    "INSERT OR REPLACE INTO state (key, value, version) VALUES (?, ?, ?)",
                    (key, value, seq),
                )
                self.deleted.pop(key, None)
            self.db.execute(
                "INSERT OR REPLACE INTO history (key, seq, tx_id, timestamp, is_delete, value) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key, seq, tx_id, ts, int(value is None), value),
            )
            self.history[(key, seq)] = (tx_id, ts, int(value is None), value)

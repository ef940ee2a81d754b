"""The embedded ledger: the DataAsset contract over SQLite, signed and hash-chained.

`EmbeddedLedger` is the async `Ledger` the broker uses; SQLite work runs in a thread.
`create_org` makes an organization's CA and identity and registers the CA on a ledger.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

from . import Ledger, LedgerError
from .core import LEDGER_ERROR, LedgerCore, acquire_core, release_core
from .identity import OrgIdentity, create_org, load_identity, register_org, resolve

__all__ = ["EmbeddedLedger", "create_org", "register_org", "resolve"]


class EmbeddedLedger(Ledger):
    """The `Ledger` interface over the embedded SQLite ledger, as one organization."""

    def __init__(self, db_path: str | Path, identity: OrgIdentity) -> None:
        self.db_path = Path(db_path)
        self.identity = identity
        self._core: LedgerCore | None = acquire_core(self.db_path)

    @classmethod
    def open(cls, path: str | Path, identity_dir: str | Path, org: str) -> EmbeddedLedger:
        """Open the ledger at `path` as `org`, creating and registering its identity if new."""
        db, _ = resolve(path)
        idir = Path(identity_dir)
        if (idir / org / "key.pem").exists():
            identity = load_identity(idir, org)
            register_org(db, identity)  # idempotent; refuses a different CA for the org
        else:
            identity = create_org(db, org, identity_dir=idir)
        return cls(db, identity)

    @property
    def core(self) -> LedgerCore:
        if self._core is None:
            raise LedgerError("LEDGER_ERROR", "this ledger connection is closed; open it again")
        return self._core

    @property
    def msp_id(self) -> str:
        return self.identity.msp_id

    async def submit(self, fn: str, *args: str, actor: str) -> Any:
        raw = await asyncio.to_thread(self.core.submit, self.identity, fn, list(args), actor)
        return json.loads(raw)

    async def evaluate(self, fn: str, *args: str, actor: str) -> Any:
        raw = await asyncio.get_running_loop().run_in_executor(
            self.core.query_executor, self.core.evaluate, self.identity, fn, list(args), actor
        )
        return json.loads(raw)

    async def state_token(self) -> tuple[int, str]:
        """A value that changes whenever any query's answer may change; see
        `LedgerCore.state_token`. Read on the caller's thread: it is one indexed SQLite read
        (plus a scan of the open leases once per commit), cheaper than a hop to a thread."""
        try:
            return self.core.state_token()
        except sqlite3.Error as exc:
            raise LedgerError(LEDGER_ERROR, f"cannot read the ledger's head: {exc}") from None

    async def close(self) -> None:
        if self._core is not None:
            core, self._core = self._core, None
            release_core(core)

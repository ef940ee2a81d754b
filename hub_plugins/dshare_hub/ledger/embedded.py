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
from .core import LEDGER_ERROR, LEDGER_TAMPERED, LedgerCore, acquire_core, release_core
from .identity import OrgIdentity, create_org, load_identity, register_org, resolve
from .witness import Witness

__all__ = ["EmbeddedLedger", "create_org", "register_org", "resolve"]


class EmbeddedLedger(Ledger):
    """The `Ledger` interface over the embedded SQLite ledger, as one organization."""

    def __init__(
        self, db_path: str | Path, identity: OrgIdentity, witness: Witness | None = None
    ) -> None:
        self.db_path = Path(db_path)
        self.identity = identity
        self.witness = witness
        self._core: LedgerCore | None = acquire_core(self.db_path)
        if witness is not None:
            try:
                self._core.attach(witness)
            except LedgerError as exc:
                if exc.code != LEDGER_TAMPERED:
                    raise
                # Logged by the core; it now answers every call with this error, so users
                # see why instead of a broker that will not start.

    @classmethod
    def open(
        cls,
        path: str | Path,
        identity_dir: str | Path,
        org: str,
        *,
        state_dir: str | Path | None = None,
        trusted_cas: dict[str, str] | None = None,
    ) -> EmbeddedLedger:
        """Open the ledger at `path` as `org`, creating and registering its identity if new.

        With `state_dir` (a broker's own directory) the ledger is checked against what this
        organization saw before, and checkpointed as it goes (`witness.py`), trusting
        `trusted_cas` ({org: CA PEM}) besides what it trusted before.
        """
        db, _ = resolve(path)
        idir = Path(identity_dir)
        if (idir / org / "key.pem").exists():
            identity = load_identity(idir, org)
            register_org(db, identity)  # idempotent; refuses a different CA for the org
        else:
            identity = create_org(db, org, identity_dir=idir)
        witness = None
        if state_dir is not None:
            witness = Witness(state_dir, identity)
            witness.trust({org: identity.ca_cert_pem, **(trusted_cas or {})})
        return cls(db, identity, witness)

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

    async def checkpoint(self, *, full: bool = False) -> None:
        if self.witness is not None:
            await asyncio.to_thread(self.core.audit, self.witness, full=full)

    async def close(self) -> None:
        if self._core is not None:
            core, self._core = self._core, None
            if self.witness is not None:
                core.detach(self.witness)
            release_core(core)

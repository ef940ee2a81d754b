"""Ledger clients: one interface, an embedded SQLite ledger and a Fabric Gateway client.

The broker holds one `Ledger` per organization identity; which implementation it gets is
configuration (`open_ledger`), never a code change.
"""

from __future__ import annotations

import abc
from typing import Any


class LedgerError(Exception):
    """A transaction refused by the contract or the ledger, with the contract's stable code."""

    def __init__(self, code: str, message: str, key: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.key = key


class Ledger(abc.ABC):
    """What the broker needs from a ledger, bound to one organization's identity."""

    @abc.abstractmethod
    async def submit(self, fn: str, *args: str, actor: str) -> Any:
        """Run `fn` as a transaction that is ordered and durable; return its decoded result."""

    @abc.abstractmethod
    async def evaluate(self, fn: str, *args: str, actor: str) -> Any:
        """Run `fn` read-only against the current state; nothing is recorded."""

    async def checkpoint(self, *, full: bool = False) -> None:  # noqa: B027 - optional override
        """Check that the ledger still extends what this organization saw and remember its
        head (the reaper's pass); `full` checks everything it holds. The embedded ledger
        does; on Fabric the peers validate every block, and the default does nothing."""

    async def close(self) -> None:  # noqa: B027 - optional override
        """Release connections; the default holds none."""

"""Fixtures for the ledger suites.

`network` yields one `Ledger` per organization (UiS, UiO, UiB) for a backend name. The
contract suite only uses the async `Ledger` interface and this fixture, so another backend
("fabric") runs the same suite unchanged: add a factory to BACKENDS.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from dshare_hub.ledger import Ledger

pytest.register_assert_rewrite("ledger_helpers")

ORGS = ("UiS", "UiO", "UiB")


@dataclass
class Network:
    ledgers: dict[str, Ledger]
    msp: dict[str, str]  # org name -> the MSP id the contract sees as owner/lessee org

    @property
    def uis(self) -> Ledger:
        return self.ledgers["UiS"]

    @property
    def uio(self) -> Ledger:
        return self.ledgers["UiO"]

    @property
    def uib(self) -> Ledger:
        return self.ledgers["UiB"]


@contextlib.asynccontextmanager
async def embedded_network(tmp_path: Path) -> AsyncIterator[Network]:
    from dshare_hub.ledger.embedded import EmbeddedLedger

    db = tmp_path / "ledger.db"
    ledgers: dict[str, Ledger] = {}
    msp: dict[str, str] = {}
    for org in ORGS:
        ledger = EmbeddedLedger.open(db, tmp_path / "identities", org)
        ledgers[org] = ledger
        msp[org] = ledger.msp_id
    try:
        yield Network(ledgers, msp)
    finally:
        for ledger in ledgers.values():
            await ledger.close()


BACKENDS: dict[str, Callable[[Path], contextlib.AbstractAsyncContextManager[Network]]] = {
    "embedded": embedded_network,
}


@pytest_asyncio.fixture(params=sorted(BACKENDS))
async def network(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Network]:
    async with BACKENDS[request.param](tmp_path) as net:
        yield net


@pytest.fixture
def uid() -> str:
    """A fresh id prefix, so tests never collide on a ledger shared between tests."""
    return "t" + uuid.uuid4().hex[:12]

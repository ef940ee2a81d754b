"""The clock rule end to end: FabricLedger stamps proposals with its clock (set by the test,
never by sleeping), the Gateway TEST DOUBLE's peers run the chaincode service's CLOCK_SKEW
check against their own clocks (also set), and the contract decides lease expiry from the
proposal's timestamp alone."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from dshare_hub.ledger import LedgerError
from dshare_hub.ledger.fabric import FabricLedger

from .fabric_gateway_double import GatewayDouble

pytestmark = pytest.mark.asyncio
MakeLedger = Callable[..., FabricLedger]
T = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ASSET = {
    "id": "a1",
    "name": "Counts",
    "storage_type": "local",
    "sealed_storage": "sealed",
    "policy": {"exclusive": True, "max_duration_s": 3600},
}


class Clock:
    """A clock a test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def refused(tx_id: str, stamp: str, offset: str, direction: str) -> str:
    return (
        f"transaction {tx_id} is timestamped {stamp}, {offset} s {direction} the endorsing "
        "peer's clock (2026-05-01T12:00:00.000000Z); the peers accept at most 120 s "
        "(CHAINCODE_MAX_CLOCK_SKEW): check the submitting machine's clock"
    )


@pytest.mark.parametrize(
    ("shift", "stamp", "offset", "direction"),
    [
        (timedelta(minutes=10), "2026-05-01T12:10:00.000000Z", "600", "ahead of"),
        (timedelta(seconds=-121), "2026-05-01T11:57:59.000000Z", "121", "behind"),
    ],
    ids=["forward-dated", "back-dated"],
)
async def test_a_submit_dated_beyond_the_skew_is_refused(
    make_ledger: MakeLedger,
    gateway: tuple[GatewayDouble, str],
    shift: timedelta,
    stamp: str,
    offset: str,
    direction: str,
) -> None:
    double, _ = gateway
    double.set_clocks(T)
    ledger = make_ledger(clock=Clock(T + shift))
    try:
        with pytest.raises(LedgerError) as err:
            await ledger.submit("RegisterAsset", json.dumps(ASSET), actor="alice")
    finally:
        await ledger.close()
    (tx_id,) = double.local_peer.executed
    assert (err.value.code, err.value.message) == (
        "CLOCK_SKEW",
        refused(tx_id, stamp, offset, direction),
    )
    assert double.requests == ["Endorse"] and double.world.state == {}


async def test_a_query_dated_beyond_the_skew_is_refused_too(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str]
) -> None:
    double, _ = gateway
    double.set_clocks(T)
    ledger = make_ledger(clock=Clock(T - timedelta(hours=1)))
    try:
        with pytest.raises(LedgerError) as err:
            await ledger.evaluate("GetAsset", "a1", actor="alice")
    finally:
        await ledger.close()
    (tx_id,) = double.local_peer.executed
    assert (err.value.code, err.value.message) == (
        "CLOCK_SKEW",
        refused(tx_id, "2026-05-01T11:00:00.000000Z", "3600", "behind"),
    )


@pytest.mark.parametrize("shift", [timedelta(seconds=119), timedelta(seconds=-119)])
async def test_within_the_skew_the_contract_takes_the_proposal_time(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str], shift: timedelta
) -> None:
    double, _ = gateway
    double.set_clocks(T)
    ledger = make_ledger(clock=Clock(T + shift))
    try:
        asset = await ledger.submit("RegisterAsset", json.dumps(ASSET), actor="alice")
    finally:
        await ledger.close()
    assert asset["created_at"] == (T + shift).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def test_peers_whose_clocks_differ_within_the_skew_still_agree(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str]
) -> None:
    """The contract never reads a clock, so endorsers with different clocks compute the same
    result (a contract reading its peer's clock would never gather a MAJORITY)."""
    double, _ = gateway
    for peer, offset in zip(double.peers.values(), (0, 90, -90), strict=True):
        peer.clock = Clock(T + timedelta(seconds=offset))
    ledger = make_ledger(clock=Clock(T))
    try:
        await ledger.submit("RegisterAsset", json.dumps(ASSET), actor="alice")
    finally:
        await ledger.close()
    (committed,) = double.committed.values()
    assert committed.endorsed_by == ["UiSMSP", "UiOMSP"]


async def test_lease_expiry_is_decided_by_the_proposal_timestamp(
    make_ledger: MakeLedger, gateway: tuple[GatewayDouble, str]
) -> None:
    double, _ = gateway
    owner_clock, lessee_clock = Clock(T), Clock(T)
    owner, lessee = make_ledger(clock=owner_clock), make_ledger("UiOMSP", clock=lessee_clock)
    try:
        double.set_clocks(T)
        await owner.submit("RegisterAsset", json.dumps(ASSET), actor="alice")
        lease = await lessee.submit("RequestLease", "a1", "600", "count words", actor="bob")
        assert (lease["state"], lease["expires_at"]) == ("active", "2026-05-01T12:10:00.000000Z")
        # The peers' clocks are past the expiry; proposals within 120 s of them decide.
        double.set_clocks(T + timedelta(seconds=650))
        lessee_clock.now = T + timedelta(seconds=590)
        early = await lessee.evaluate("GetLease", lease["id"], actor="bob")
        lessee_clock.now = T + timedelta(seconds=610)
        late = await lessee.evaluate("GetLease", lease["id"], actor="bob")
        # Forward-dating past the skew to see "the future" is refused, as is back-dating.
        lessee_clock.now = T + timedelta(seconds=650 + 121)
        with pytest.raises(LedgerError) as ahead:
            await lessee.evaluate("GetLease", lease["id"], actor="bob")
        lessee_clock.now = T
        with pytest.raises(LedgerError) as behind:
            await lessee.submit("ReleaseLease", lease["id"], actor="bob")
    finally:
        await owner.close()
        await lessee.close()
    assert (early["state"], late["state"]) == ("active", "expired")
    assert (ahead.value.code, behind.value.code) == ("CLOCK_SKEW", "CLOCK_SKEW")

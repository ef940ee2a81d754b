"""dshare's clock rule: the contract takes time only from the proposal, and the chaincode
service refuses proposals dated too far from its machine's clock (dshare_chaincode.clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dshare_chaincode.clock import ClockGuard, seconds_text
from dshare_chaincode.errors import ContractError
from dshare_chaincode.leases import effective
from dshare_chaincode.stub import Creator
from dshare_chaincode.tx import Tx

from .fabric_world import Simulation, World

CHAINCODE_SOURCES = Path(__file__).resolve().parents[2] / "chaincode" / "dshare_chaincode"
PEER_NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_no_contract_module_reads_the_wall_clock() -> None:
    """Only dshare_chaincode.clock reads the machine's clock (for the skew rule); every
    time-dependent rule of the contract uses the proposal's timestamp (Tx.now)."""
    wall_clock = ("datetime.now", "datetime.utcnow", "date.today", "time.time", "time.monotonic")
    offenders = [
        (path.name, call)
        for path in sorted(CHAINCODE_SOURCES.glob("*.py"))
        if path.name != "clock.py"
        for call in wall_clock
        if call in path.read_text()
    ]
    assert offenders == []
    assert "datetime.now(UTC)" in (CHAINCODE_SOURCES / "clock.py").read_text()


def test_lease_expiry_follows_the_proposal_timestamp() -> None:
    """An active lease reads as expired from the first transaction timestamped at or after its
    expiry, whatever any clock says."""
    lease = {"state": "active", "expires_at": "2026-05-01T12:10:00.000000Z"}

    def at(when: datetime) -> str:
        sim = Simulation(World(), "t", when, Creator("UiOMSP", ""), {})
        return str(effective(Tx(sim), lease)["state"])

    assert at(datetime(2026, 5, 1, 12, 9, 59, 999999, tzinfo=UTC)) == "active"
    assert at(datetime(2026, 5, 1, 12, 10, tzinfo=UTC)) == "expired"


def test_the_guard_names_the_timestamp_the_peer_clock_and_the_limit() -> None:
    guard = ClockGuard(max_skew_s=30, clock=lambda: PEER_NOW)
    guard.check(PEER_NOW + timedelta(seconds=30), "t1")  # at the limit: accepted
    guard.check(PEER_NOW - timedelta(seconds=30), "t1")
    with pytest.raises(ContractError) as err:
        guard.check(PEER_NOW + timedelta(seconds=30, microseconds=1), "t1")
    assert (err.value.code, err.value.key) == ("CLOCK_SKEW", "t1")
    assert err.value.message == (
        "transaction t1 is timestamped 2026-05-01T12:00:30.000001Z, 30 s ahead of the "
        "endorsing peer's clock (2026-05-01T12:00:00.000000Z); the peers accept at most 30 s "
        "(CHAINCODE_MAX_CLOCK_SKEW): check the submitting machine's clock"
    )


def test_the_guard_refuses_a_naive_timestamp() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ClockGuard(clock=lambda: PEER_NOW).check(datetime(2026, 5, 1, 12), "t1")


def test_seconds_are_written_without_noise() -> None:
    assert [seconds_text(v) for v in (120.0, 120.5, 0.25, 3600.0004)] == [
        "120",
        "120.5",
        "0.25",
        "3600",
    ]

"""dshare's clock rule for Fabric proposals.

The contract takes every time-dependent decision (lease expiry, "an expired lease counts as
released", run and output timestamps) from the transaction's timestamp, which the submitter
writes into the proposal header and signs. Every endorsing peer sees the same timestamp, so
their results agree, and no peer's wall clock enters the contract.

Fabric's own peer does not compare that timestamp with anything, so on its own the rule
would let a lessee forward-date a request (a lease whose expiry lies further out than the
policy allows, measured from now) or back-date one (acting on a lease that has already
expired). This is dshare's rule, applied by the chaincode service before the contract runs:
a proposal whose timestamp is more than `max_skew_s` seconds (CHAINCODE_MAX_CLOCK_SKEW,
default 120) from the endorsing peer's clock is refused with CLOCK_SKEW. A MAJORITY of the
organizations' peers must endorse a transaction, so a submitter cannot pick one peer with a
wrong clock to slip a dated request through.

The peer's clock is read here, and nowhere in the contract itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .errors import CLOCK_SKEW, ContractError
from .tx import fmt_time

DEFAULT_MAX_CLOCK_SKEW_S = 120.0
SETTING = "CHAINCODE_MAX_CLOCK_SKEW"


def peer_clock() -> datetime:
    """The endorsing peer's wall clock (UTC); the chaincode service runs next to its peer."""
    return datetime.now(UTC)


def seconds_text(value: float) -> str:
    """A number of seconds without noise: 120 for 120.0, 120.5 for 120.5."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class ClockGuard:
    """Refuses a proposal timestamped too far from the peer's clock (see module docstring)."""

    max_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S
    clock: Callable[[], datetime] = field(default=peer_clock)

    def check(self, timestamp: datetime, tx_id: str) -> None:
        if timestamp.tzinfo is None:
            raise ValueError("the proposal timestamp must be timezone-aware")
        now = self.clock()
        offset = (timestamp - now).total_seconds()
        if abs(offset) <= self.max_skew_s:
            return
        direction = "ahead of" if offset > 0 else "behind"
        raise ContractError(
            CLOCK_SKEW,
            f"transaction {tx_id} is timestamped {fmt_time(timestamp)}, "
            f"{seconds_text(abs(offset))} s {direction} the endorsing peer's clock "
            f"({fmt_time(now)}); the peers accept at most {seconds_text(self.max_skew_s)} s "
            f"({SETTING}): check the submitting machine's clock",
            key=tx_id,
        )

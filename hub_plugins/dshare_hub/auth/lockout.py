"""Counting failed logins per user name and locking the name out for a while.

State lives in the hub's memory: a hub restart forgets it, and several hub replicas
would each count on their own. That is acceptable for the embedded mode (one hub); a
distributed deployment logs in through its identity provider, which has its own lockout.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

# Failures are counted for any name typed, existing or not (so the lockout does not tell
# which names exist). Bound the table so a flood of invented names cannot grow it forever.
MAX_TRACKED_NAMES = 10_000


@dataclass
class _Record:
    failures: int = 0
    locked_until: float = 0.0


class FailureTracker:
    def __init__(
        self,
        max_failures: int,
        lockout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds
        self.clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def seconds_locked(self, name: str) -> float:
        """Seconds until `name` may try again; 0 when it is not locked."""
        record = self._records.get(name)
        if record is None or not record.locked_until:
            return 0.0
        remaining = record.locked_until - self.clock()
        if remaining <= 0:
            # the lockout is over: start counting afresh
            del self._records[name]
            return 0.0
        return remaining

    def record_failure(self, name: str) -> bool:
        """Count a failed login; True when this failure locked the name."""
        record = self._records.pop(name, None) or _Record()
        self._records[name] = record
        while len(self._records) > MAX_TRACKED_NAMES:
            self._records.popitem(last=False)
        record.failures += 1
        if self.max_failures > 0 and record.failures >= self.max_failures:
            record.locked_until = self.clock() + self.lockout_seconds
            return True
        return False

    def record_success(self, name: str) -> None:
        self._records.pop(name, None)

    def failures(self, name: str) -> int:
        record = self._records.get(name)
        return record.failures if record else 0

"""The reaper: ends expired leases on the ledger and removes what was mounted for them.

Every pass starts from the ledger and from `list_materialized()` (what exists now), never
from memory, so a restarted broker cleans up after its previous life; doing a pass twice
changes nothing the second time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..ledger import Ledger, LedgerError
from .materialize import Materializer

log = logging.getLogger("dshare.broker.reaper")
REAPER_ACTOR = "dshare-reaper"


@dataclass
class ReapReport:
    expired_leases: int = 0
    released_mounts: int = 0
    removed_views: int = 0


class Reaper:
    def __init__(
        self,
        *,
        org: str,
        ledger: Ledger,
        materializer: Materializer,
        reap_views: Callable[[], Awaitable[int]] | None = None,
        audit_interval: float = 3600.0,
    ) -> None:
        self.org = org
        self.ledger = ledger
        self.materializer = materializer
        # Interactive views (interactive.InteractiveViews.reap), swept from the disk too.
        self.reap_views = reap_views
        # A full check of the ledger (state replayed too) this often; opening the ledger
        # made the first.
        self.audit_interval = audit_interval
        self._last_audit = time.monotonic()

    async def _lookup(self, fn: str, key: str) -> dict[str, Any] | None:
        try:
            value: dict[str, Any] = await self.ledger.evaluate(fn, key, actor=REAPER_ACTOR)
            return value
        except LedgerError as error:
            if error.code.endswith("_NOT_FOUND"):
                return None
            raise

    async def reap_once(self) -> ReapReport:
        report = ReapReport()
        # First: is the ledger still the one this broker saw? (A refusal ends the pass.)
        now = time.monotonic()
        full = now - self._last_audit >= self.audit_interval
        await self.ledger.checkpoint(full=full)
        if full:
            self._last_audit = now
        expired = await self.ledger.evaluate("ListExpiredLeases", "", actor=REAPER_ACTOR)
        if any(lease["owner_org"] == self.org for lease in expired["items"]):
            result = await self.ledger.submit("ExpireLeases", "", actor=REAPER_ACTOR)
            report.expired_leases = len(result.get("items", [])) if isinstance(result, dict) else 0
        leases: dict[str, dict[str, Any] | None] = {}
        runs: dict[str, dict[str, Any] | None] = {}
        for record in await self.materializer.list_materialized():
            lease_id, run_id = str(record["lease_id"]), str(record["run_id"])
            if lease_id not in leases:
                leases[lease_id] = await self._lookup("GetLease", lease_id)
            if run_id not in runs:
                runs[run_id] = await self._lookup("GetRun", run_id)
            lease, run = leases[lease_id], runs[run_id]
            lease_over = lease is None or lease["state"] != "active"
            run_over = run is None or run["state"] != "running"
            if lease_over or run_over:
                report.released_mounts += await self.materializer.release(
                    lease_id=lease_id, run_id=run_id
                )
                log.info(
                    "released the mount of lease %s for run %s (%s)",
                    lease_id,
                    run_id,
                    "lease ended" if lease_over else "run ended",
                )
        if self.reap_views is not None:
            report.removed_views = await self.reap_views()
        return report

    async def tick(self) -> None:
        """One pass for the periodic callback: a failure is logged, the next pass retries."""
        try:
            await self.reap_once()
        except Exception:
            log.exception("reaper pass failed; retrying at the next interval")

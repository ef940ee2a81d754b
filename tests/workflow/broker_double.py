"""A test double of the organization broker: leases and runs kept in memory.

It follows the broker API's shapes (docs/interfaces.md section 3) closely enough for the
orchestrator: start_run refuses leases that are not the caller's active leases, and
finish_run records the outcome once.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


class BrokerRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class InMemoryBroker:
    def __init__(self, user: str = "alice", org: str = "UiS") -> None:
        self.user = user
        self.org = org
        self.leases: dict[str, dict[str, Any]] = {}
        self.handles: dict[str, Path] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.finished: list[tuple[str, str, str | None]] = []
        self.calls: list[str] = []
        self._ids = itertools.count(1)

    def add_lease(
        self,
        lease_id: str,
        handle: Path,
        *,
        state: str = "active",
        user: str | None = None,
        expires_in: timedelta = timedelta(hours=2),
        name: str = "dataset",
    ) -> dict[str, Any]:
        lease = {
            "id": lease_id,
            "asset_id": f"asset-{lease_id[:6]}",
            "asset_name": name,
            "owner_org": "UiO",
            "lessee_org": self.org,
            "lessee_user": user or self.user,
            "purpose": "test",
            "state": state,
            "expires_at": (datetime.now(UTC) + expires_in).isoformat(),
        }
        self.leases[lease_id] = lease
        self.handles[lease_id] = handle
        return lease

    async def list_leases(self) -> list[dict[str, Any]]:
        self.calls.append("list_leases")
        return [dict(lease) for lease in self.leases.values()]

    async def start_run(self, name: str, lease_ids: list[str], spec_sha256: str) -> dict[str, Any]:
        self.calls.append("start_run")
        mounts = {}
        for lease_id in lease_ids:
            lease = self.leases.get(lease_id)
            if lease is None or lease["lessee_user"] != self.user or lease["state"] != "active":
                raise BrokerRefused("POLICY_DENIED", f"lease {lease_id} cannot be mounted")
            mounts[lease_id] = {
                "lease_id": lease_id,
                "handle": str(self.handles[lease_id]),
                "expires_at": lease["expires_at"],
            }
        run_id = f"run-{next(self._ids)}"
        run = {
            "id": run_id,
            "name": name,
            "user": self.user,
            "org": self.org,
            "lease_ids": lease_ids,
            "spec_sha256": spec_sha256,
            "state": "running",
            "outcome": None,
        }
        self.runs[run_id] = run
        return {"run": dict(run), "mounts": mounts}

    async def finish_run(
        self, run_id: str, outcome: str, result_sha256: str | None = None
    ) -> dict[str, Any]:
        self.calls.append("finish_run")
        run = self.runs[run_id]
        if run["state"] != "running":
            raise BrokerRefused("INVALID_STATE", f"run {run_id} is already finished")
        run.update(state="finished", outcome=outcome, result_sha256=result_sha256)
        self.finished.append((run_id, outcome, result_sha256))
        return dict(run)

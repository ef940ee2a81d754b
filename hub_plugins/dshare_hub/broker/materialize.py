"""Turning a valid lease into something a run can mount, and taking it away again.

`Materializer` is the seam: `LocalMaterializer` (here) makes a per-run directory handle in
embedded mode; the Kubernetes implementation makes Secret + PV + PVC. Every implementation
must be able to list what it made from its own durable state (files, API objects), because
the reaper rebuilds its view from there after a restart, never from memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .redacted import RedactedCopyError, RedactionKeys, remove_copy, write_copy
from .redaction import Plan, RedactionError, decide

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def schema_columns(asset: dict[str, Any]) -> list[dict[str, Any]]:
    """The asset's columns as the output gate needs them (name and tags), for its record."""
    return [
        {"name": c.get("name"), "tags": list(c.get("tags") or [])}
        for c in asset.get("columns") or []
        if isinstance(c, dict)
    ]


class MaterializeError(Exception):
    """The data cannot be made available; `message` is safe to show (no storage details)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@runtime_checkable
class Materializer(Protocol):
    async def materialize(
        self,
        *,
        asset: dict[str, Any],
        details: dict[str, Any],
        lease: dict[str, Any],
        run_id: str,
        user: str,
    ) -> dict[str, Any]:
        """Make `asset` (with its opened storage `details`) mountable for `run_id`.

        Returns the Mount JSON (`lease_id`, `expires_at` and where to mount); it must not
        contain the details. Idempotent: asking again for the same run and lease returns
        the same mount.
        """
        ...

    async def release(self, *, lease_id: str | None = None, run_id: str | None = None) -> int:
        """Delete everything made for that lease and/or run; returns how many mounts went."""
        ...

    async def list_materialized(self) -> list[dict[str, Any]]:
        """Every mount that exists now, each with at least `lease_id` and `run_id`."""
        ...


class LocalMaterializer:
    """Embedded mode: `<data_dir>/mounts/<run_id>/<lease_id>` links to the asset's directory.

    The local runner binds the handle read-only into the job's sandbox. A `.json` file next
    to each handle records whose it is (never the target path), written atomically so a
    crash leaves either a complete record or none.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        redacted_dir: Path | None = None,
        redaction_keys: RedactionKeys | None = None,
    ) -> None:
        self.root = Path(data_dir) / "mounts"
        self.root.mkdir(parents=True, exist_ok=True, mode=0o750)
        # Where redacted copies go (under the org's storage root, see redacted.py); None:
        # datasets whose policy redacts anything for a lessee are not mounted at all.
        self.redacted_dir = redacted_dir
        self.redaction_keys = redaction_keys or RedactionKeys(Path(data_dir) / "redaction.key")

    def _copy_path(self, run_id: str, lease_id: str) -> Path | None:
        return None if self.redacted_dir is None else self.redacted_dir / run_id / lease_id

    def _plan(self, asset: dict[str, Any], lease: dict[str, Any]) -> Plan:
        """What this lessee gets of each column; refuses when that cannot be honoured."""
        try:
            plan = decide(asset, lease)
        except RedactionError as error:
            raise MaterializeError(
                "REDACTION_FAILED",
                f"asset '{asset.get('id')}' is not mounted: its {error.message}; its owner "
                "must fix the policy",
            ) from None
        if plan.redacts and self.redacted_dir is None:
            raise MaterializeError(
                "REDACTION_UNAVAILABLE",
                f"asset '{asset.get('id')}' hides columns from {lease.get('lessee_org')} and "
                "this broker has nowhere to write redacted copies (BrokerApp.storage_roots "
                "or BrokerApp.redacted_copies_dir); nothing is mounted raw",
            )
        return plan

    def check_source(self, asset: dict[str, Any], source: Path) -> None:
        """A dataset's directory must neither hold the redacted copies (a storage root
        registered whole) nor lie among them: a lessee would read other lessees' copies,
        and a copy of it would copy itself."""
        if self.redacted_dir is None:
            return
        copies = Path(os.path.realpath(self.redacted_dir))
        real = Path(os.path.realpath(source))
        if copies.is_relative_to(real) or real.is_relative_to(copies):
            raise MaterializeError(
                "STORAGE_UNAVAILABLE",
                f"the directory of asset '{asset.get('id')}' holds or lies among this "
                "broker's redacted copies, which no lessee may read, so it is not mounted; "
                "ask its owner to register a directory of its own below the storage root",
            )

    async def write_redacted(
        self,
        asset: dict[str, Any],
        lease: dict[str, Any],
        plan: Plan,
        source: Path,
        dest: Path,
    ) -> None:
        """The redacted copy at `dest` that a run's handle (or a view) leads to instead of
        `source`; one that exists is kept (made once per run)."""
        if dest.is_dir():
            return
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        try:
            key = self.redaction_keys.for_lessee(str(lease.get("lessee_org") or ""))
            await asyncio.to_thread(write_copy, source, dest, plan, key)
        except RedactedCopyError as error:
            raise MaterializeError(
                "REDACTION_FAILED", f"asset '{asset.get('id')}': {error.message}"
            ) from None

    def _paths(self, run_id: str, lease_id: str) -> tuple[Path, Path]:
        for value, name in ((run_id, "run_id"), (lease_id, "lease_id")):
            if not _SAFE.match(value):
                raise MaterializeError("INVALID_ARGUMENT", f"{name} is not a valid id")
        run_dir = self.root / run_id
        return run_dir / lease_id, run_dir / f"{lease_id}.json"

    async def materialize(
        self,
        *,
        asset: dict[str, Any],
        details: dict[str, Any],
        lease: dict[str, Any],
        run_id: str,
        user: str,
    ) -> dict[str, Any]:
        kind = asset.get("storage_type")
        if kind not in ("local", "hostpath"):
            raise MaterializeError(
                "UNSUPPORTED_STORAGE",
                f"asset '{asset.get('id')}' is stored as {kind!r}; the embedded broker mounts "
                "only local and hostpath storage (use the Kubernetes deployment for others)",
            )
        target = Path(str(details.get("path", "")))
        if not target.is_absolute() or not target.is_dir():
            raise MaterializeError(
                "STORAGE_UNAVAILABLE",
                f"the directory of asset '{asset.get('id')}' is not available on this host; "
                "ask its owner organization to check the dataset's storage",
            )
        self.check_source(asset, target)
        handle, meta = self._paths(run_id, str(lease["id"]))
        handle.parent.mkdir(exist_ok=True, mode=0o750)
        # Decided before anything is written: a policy that cannot be decided leaves nothing.
        plan = self._plan(asset, lease)
        record = {
            "lease_id": lease["id"],
            "run_id": run_id,
            "asset_id": asset.get("id"),
            "user": user,
            "expires_at": lease.get("expires_at"),
            "handle": str(handle),
            # What the executor takes from the owner and from nobody else (executor/mounts.py).
            "dataset_name": asset.get("name"),
            "release": (asset.get("policy") or {}).get("release") or {},
            # The schema's names and tags: the gate's disclosure checks know identifiers by them.
            "columns": schema_columns(asset),
            # Column names and actions only: what this lessee's copy hides, never a path.
            "redacted": dict(plan.actions),
        }
        tmp_meta = meta.with_name(meta.name + ".tmp")
        tmp_meta.write_text(json.dumps(record, sort_keys=True))
        # The record goes first: a handle on disk always has an owner the reaper can find.
        os.replace(tmp_meta, meta)
        copy = self._copy_path(run_id, str(lease["id"]))
        if plan.redacts and copy is not None:
            # After the record (the reaper finds it), before the handle: a handle of a
            # redacted lease never leads to the raw directory, not even for a moment.
            await self.write_redacted(asset, lease, plan, target, copy)
            target = copy
        if not handle.is_symlink():
            tmp_link = handle.with_name(handle.name + ".tmp")
            if tmp_link.is_symlink():
                tmp_link.unlink()
            tmp_link.symlink_to(target, target_is_directory=True)
            os.replace(tmp_link, handle)
        # The handle is a path under this broker's 0700 state: only the root executor
        # resolves it, and the broker hands it to nobody but the executor.
        return {
            "lease_id": lease["id"],
            "handle": str(handle),
            "expires_at": record["expires_at"],
        }

    async def release(self, *, lease_id: str | None = None, run_id: str | None = None) -> int:
        if lease_id is None and run_id is None:
            raise ValueError("release needs a lease_id, a run_id or both")
        count = 0
        for record in await self.list_materialized():
            if lease_id is not None and record["lease_id"] != lease_id:
                continue
            if run_id is not None and record["run_id"] != run_id:
                continue
            handle, meta = self._paths(record["run_id"], record["lease_id"])
            # The handle goes first, the record last: a crash in between leaves a record
            # without handle, which the next pass deletes.
            if handle.is_symlink() or handle.exists():
                handle.unlink()
            copy = self._copy_path(record["run_id"], record["lease_id"])
            if copy is not None:
                remove_copy(copy)
                with contextlib.suppress(OSError):
                    copy.parent.rmdir()  # the run's last copy gone
            meta.unlink(missing_ok=True)
            count += 1
            run_dir = handle.parent
            if run_dir.is_dir() and not any(run_dir.iterdir()):
                shutil.rmtree(run_dir, ignore_errors=True)
        return count

    async def list_materialized(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for meta in sorted(self.root.glob("*/*.json")):
            try:
                record = json.loads(meta.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(record, dict) and "lease_id" in record and "run_id" in record:
                records.append(record)
        return records

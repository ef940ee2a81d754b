"""Checking the lease mounts a broker asks for, and opening them for the sandbox.

A mount's `handle` is a symlink the OWNER org's broker made for this run and lease, with
a JSON record beside it. The executor does not take the caller's word for it: the handle
must sit exactly at `<that org's mount root>/<run_id>/<lease_id>`, its record must name
this run, lease and user, and it must lead to a directory. The directory is then opened
(following the owner's link) and that descriptor, not a path, is given to bwrap.

What the owner decided is read from the owner's record too, never from the submitting
broker: the lease's expiry and the dataset's release policy (the lessee's broker could
otherwise send a laxer one, or an expiry past the lease's).

What no broker decides at all comes from the executor's own configuration: where each
organization's data may lie and which group reads it. An org's broker writes its own
mount root, so a handle there could point anywhere its owner likes (another org's
storage, another user's home); the opened directory must lie under that org's storage
roots, and jobs get that org's data group, whatever any record says.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..webapi import ApiError, bad
from .gate import Policy, parse_policy

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# The owner's record carries the dataset's schema (up to 1000 columns of names and tags).
MAX_RECORD = 4 * 1024 * 1024


@dataclass(frozen=True)
class OrgPlaces:
    """Where the operator put one organization: its broker's mount root, the storage roots
    its datasets may lie under, the group that reads its data."""

    mount_root: str
    storage_roots: tuple[str, ...]
    data_gid: int

    def holds(self, path: str) -> bool:
        roots = [os.path.realpath(r) for r in self.storage_roots]
        return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


@dataclass
class OpenMount:
    claim: str
    org: str
    lease_id: str
    expires_at: datetime
    data_gid: int
    fd: int  # O_PATH|O_DIRECTORY on the dataset's directory
    policy: Policy  # the owner's release policy, from the owner's record

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def refuse(lease_id: str, why: str) -> ApiError:
    return ApiError("MOUNT_REFUSED", f"the mount of lease {lease_id} was refused: {why}")


def parse_time(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise bad(field, "must be an ISO 8601 time with a zone, e.g. 2026-01-01T12:00:00Z")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad(field, f"{value!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise bad(field, f"{value!r} has no time zone; add Z or +00:00")
    return when.astimezone(UTC)


def check_mount_fields(claim: str, mount: Any) -> dict[str, Any]:
    field = f"mounts.{claim}"
    if not isinstance(mount, dict):
        raise bad(field, "must be an object {org, lease_id, handle, expires_at}")
    for name in ("org", "lease_id", "handle"):
        if not isinstance(mount.get(name), str) or not mount[name]:
            raise bad(f"{field}.{name}", "must be a non-empty string")
    if not _SAFE_ID.match(mount["lease_id"]):
        raise bad(f"{field}.lease_id", "is not a valid lease id")
    parse_time(mount.get("expires_at"), f"{field}.expires_at")
    return mount


def open_mount(
    claim: str,
    mount: Mapping[str, Any],
    *,
    run_id: str,
    user: str,
    orgs: Mapping[str, OrgPlaces],
    now: datetime | None = None,
) -> OpenMount:
    """Validate one mount and open its directory; raises MOUNT_REFUSED saying why."""
    lease_id, org = str(mount["lease_id"]), str(mount["org"])
    expires_at = parse_time(mount["expires_at"], f"mounts.{claim}.expires_at")
    if expires_at <= (now or datetime.now(UTC)):
        raise ApiError("LEASE_EXPIRED", f"lease {lease_id} expired at {expires_at.isoformat()}")
    places = orgs.get(org)
    if places is None:
        raise refuse(lease_id, f"the executor is not configured for organization {org!r}")
    root = places.mount_root
    # As configured or with the root's own links resolved: both name the same place.
    expected = os.path.join(os.path.realpath(root), run_id, lease_id)
    as_configured = os.path.join(os.path.normpath(root), run_id, lease_id)
    handle = str(mount["handle"])
    if handle not in (expected, as_configured):
        raise refuse(
            lease_id,
            f"its handle is not the one organization {org}'s broker makes for this run and lease",
        )
    record = _read_record(expected + ".json", lease_id)
    for name, want in (("run_id", run_id), ("lease_id", lease_id), ("user", user)):
        if record.get(name) != want:
            raise refuse(lease_id, f"the owner's record of the mount names another {name}")
    expires_at = min(expires_at, _owner_expiry(record, lease_id))
    if expires_at <= (now or datetime.now(UTC)):
        raise ApiError("LEASE_EXPIRED", f"lease {lease_id} expired at {expires_at.isoformat()}")
    policy = _owner_policy(record, lease_id, org)
    if not os.path.islink(expected) and not os.path.isdir(expected):
        raise refuse(lease_id, "the owner's broker has not materialized it (or removed it)")
    try:
        fd = os.open(expected, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except NotADirectoryError:
        raise refuse(lease_id, "it does not lead to a directory") from None
    except OSError:
        raise refuse(lease_id, "its data is not reachable on this host") from None
    # Where the descriptor really is, every link resolved: the org cannot move another's
    # directories into its own storage (it cannot write there), nor hard-link directories.
    where = os.readlink(f"/proc/self/fd/{fd}")
    if not places.holds(where):
        os.close(fd)
        raise refuse(lease_id, f"its data is not under organization {org}'s storage roots")
    return OpenMount(claim, org, lease_id, expires_at, places.data_gid, fd, policy)


def _owner_expiry(record: dict[str, Any], lease_id: str) -> datetime:
    try:
        return parse_time(record.get("expires_at"), "expires_at")
    except ApiError:
        raise refuse(lease_id, "the owner's record of the mount has no valid expiry") from None


def _owner_policy(record: dict[str, Any], lease_id: str, org: str) -> Policy:
    """The release policy the owner's broker read from the ledger when it materialized the
    lease; a record without one gets the strictest default (checks), never the caller's."""
    raw = {
        "owner_org": org,
        "dataset_id": record.get("asset_id") or "",
        "dataset_name": record.get("dataset_name") or "",
        "release": record.get("release") or {},
        "columns": record.get("columns") or [],
    }
    try:
        return parse_policy(lease_id, raw)
    except ApiError as error:
        raise refuse(
            lease_id, f"the owner's release policy is not usable: {error.message}"
        ) from None


def _read_record(path: str, lease_id: str) -> dict[str, Any]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        raise refuse(lease_id, "the owner's broker has no record of this mount") from None
    with os.fdopen(fd, "rb") as f:
        raw = f.read(MAX_RECORD)
    try:
        record = json.loads(raw)
    except ValueError:
        raise refuse(lease_id, "the owner's record of the mount is not readable") from None
    if not isinstance(record, dict):
        raise refuse(lease_id, "the owner's record of the mount is not readable")
    return record

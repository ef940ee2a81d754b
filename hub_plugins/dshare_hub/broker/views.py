"""What the API shows of ledger records, and the checks on what callers send.

Views are whitelists: a field the contract adds later (or the sealed storage details)
never leaks into a response by accident.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, bad

DATASET_FIELDS = (
    "id",
    "name",
    "description",
    "owner_org",
    "tags",
    "storage_type",
    "columns",
    "skeleton",
    "policy",
    "redaction",
    "state",
    "created_at",
    "updated_at",
    "active_leases",
)
LEASE_FIELDS = (
    "id",
    "asset_id",
    "asset_name",
    "owner_org",
    "lessee_org",
    "lessee_user",
    "purpose",
    "state",
    "requested_at",
    "granted_at",
    "expires_at",
    "duration_s",
    "interactive",
)
RUN_FIELDS = (
    "id",
    "name",
    "user",
    "org",
    "lease_ids",
    "spec_sha256",
    "state",
    "outcome",
    "started_at",
    "finished_at",
    "result_sha256",
)
DATASET_IN_FIELDS = (
    "id",
    "name",
    "description",
    "tags",
    "columns",
    "skeleton",
    "policy",
    "redaction",
    "storage",
)
STORAGE_TYPES = ("local", "hostpath", "azurefile", "s3", "nfs", "gcs")
LOCAL_TYPES = ("local", "hostpath")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
OUTCOMES = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Caller:
    """Who calls, as the hub says: never taken from the request."""

    user: str
    org: str | None
    roles: tuple[str, ...]
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


def caller_from_hub(model: dict[str, Any]) -> Caller:
    groups = [str(g) for g in model.get("groups") or []]
    orgs = sorted(g[len("org:") :] for g in groups if g.startswith("org:"))
    roles = tuple(sorted(g[len("role:") :] for g in groups if g.startswith("role:")))
    return Caller(
        user=str(model["name"]),
        org=orgs[0] if len(orgs) == 1 else None,
        roles=roles,
        scopes=frozenset(str(s) for s in model.get("scopes") or []),
    )


def dataset_view(asset: dict[str, Any]) -> dict[str, Any]:
    return {name: asset.get(name) for name in DATASET_FIELDS}


def lease_view(lease: dict[str, Any]) -> dict[str, Any]:
    return {name: lease.get(name) for name in LEASE_FIELDS}


def run_view(run: dict[str, Any]) -> dict[str, Any]:
    return {name: run.get(name) for name in RUN_FIELDS}


OUTPUT_FIELDS = ("path", "sha256", "size", "decision", "held_by", "checks", "decisions")


def held_view(run: dict[str, Any]) -> dict[str, Any]:
    """A run in an owner admin's review queue: who ran what, and the files that wait."""
    view = run_view(run)
    view["outputs"] = [
        {name: entry.get(name) for name in OUTPUT_FIELDS} for entry in run.get("outputs") or []
    ]
    return view


def history_view(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "tx_id": entry.get("tx_id"),
        "timestamp": entry.get("timestamp"),
        "org": entry.get("org"),
        "actor": entry.get("actor"),
        "action": entry.get("action"),
        "asset": dataset_view(entry.get("asset") or {}),
    }


def require_object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError("INVALID_ARGUMENT", f"the request body must be a JSON object ({what})")
    return body


def check_unknown(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise bad(unknown[0], f"unknown field; allowed fields: {', '.join(allowed)}")


def check_id(value: Any, name: str) -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise bad(
            name,
            "must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return value


def check_storage(value: Any) -> tuple[str, dict[str, Any]]:
    """`{type, details}` -> (type, details); details stay secret from here on."""
    if not isinstance(value, dict):
        raise bad("storage", "must be an object {type, details}")
    check_unknown(
        {f"storage.{k}": v for k, v in value.items()}, ("storage.type", "storage.details")
    )
    kind = value.get("type")
    if kind not in STORAGE_TYPES:
        raise bad("storage.type", f"must be one of {', '.join(STORAGE_TYPES)}")
    details = value.get("details")
    if not isinstance(details, dict) or not details:
        raise bad("storage.details", "must be a non-empty object of connection settings")
    for key, item in details.items():
        if not isinstance(item, str | int | bool):
            # Never echo the value: it may be a credential.
            raise bad(f"storage.details.{key}", "must be a string, number or boolean")
    if kind in LOCAL_TYPES:
        path = details.get("path")
        if not isinstance(path, str) or not posixpath.isabs(path):
            raise bad("storage.details.path", f"{kind} storage needs an absolute directory path")
        if posixpath.normpath(path) != path.rstrip("/") or ".." in path.split("/"):
            raise bad("storage.details.path", "must be a normalized path without '..'")
    return str(kind), dict(details)


def split_dataset_in(
    body: Any, *, partial: bool
) -> tuple[dict[str, Any], tuple[str, dict[str, Any]] | None]:
    """Contract fields and the storage (type, details) of a DatasetIn body."""
    data = require_object(body, "a DatasetIn")
    allowed = DATASET_IN_FIELDS if not partial else DATASET_IN_FIELDS[1:]
    check_unknown(data, allowed)
    fields = {k: v for k, v in data.items() if k != "storage"}
    storage = None
    if "storage" in data:
        storage = check_storage(data["storage"])
        fields["storage_type"] = storage[0]
    elif not partial:
        raise bad("storage", "is required: {type, details} of where the data lives")
    if not partial:
        if "name" not in data:
            raise bad("name", "is required")
    elif not data:
        raise bad("body", f"is empty; give at least one of {', '.join(allowed)}")
    return fields, storage


def check_lease_request(body: Any) -> tuple[str, int, str]:
    data = require_object(body, "{dataset_id, duration_s, purpose}")
    check_unknown(data, ("dataset_id", "duration_s", "purpose"))
    dataset_id = check_id(data.get("dataset_id"), "dataset_id")
    duration = data.get("duration_s")
    if isinstance(duration, bool) or not isinstance(duration, int) or duration < 1:
        raise bad("duration_s", "must be a positive whole number of seconds")
    purpose = data.get("purpose")
    if not isinstance(purpose, str) or not purpose.strip():
        raise bad("purpose", "is required: say what the data is leased for")
    return dataset_id, duration, purpose


def check_run_request(body: Any) -> tuple[str, list[str], str]:
    data = require_object(body, "{name, lease_ids, spec_sha256}")
    check_unknown(data, ("name", "lease_ids", "spec_sha256"))
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise bad("name", "must be a non-empty string of at most 200 characters")
    lease_ids = data.get("lease_ids")
    if not isinstance(lease_ids, list) or not lease_ids:
        raise bad("lease_ids", "must be a non-empty list of lease ids")
    checked = [check_id(item, f"lease_ids[{i}]") for i, item in enumerate(lease_ids)]
    if len(set(checked)) != len(checked):
        raise bad("lease_ids", "lists a lease more than once")
    spec = data.get("spec_sha256")
    if not isinstance(spec, str) or not SHA256_RE.match(spec):
        raise bad("spec_sha256", "must be 64 lower-case hex digits (SHA-256 of the job specs)")
    return name, checked, spec


def check_finish_request(body: Any) -> tuple[str, str]:
    data = require_object(body, "{outcome, result_sha256?}")
    check_unknown(data, ("outcome", "result_sha256"))
    outcome = data.get("outcome")
    if outcome not in OUTCOMES:
        raise bad("outcome", f"must be one of {', '.join(OUTCOMES)}")
    result = data.get("result_sha256", "")
    if result and (not isinstance(result, str) or not SHA256_RE.match(result)):
        raise bad("result_sha256", "must be 64 lower-case hex digits")
    return str(outcome), str(result or "")

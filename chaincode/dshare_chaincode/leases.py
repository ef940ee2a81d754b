"""Lease transactions. A lease is active only while the transaction timestamp is before its
expiry; an expired lease counts as released for every rule, even before ExpireLeases writes
"expired" on the ledger."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from . import keys, validate
from .errors import (
    INVALID_ARGUMENT,
    INVALID_STATE,
    LEASE_CONFLICT,
    LEASE_EXPIRED,
    LEASE_NOT_FOUND,
    NOT_LESSEE,
    NOT_OWNER,
    POLICY_DENIED,
    ContractError,
)
from .tx import Tx, dumps, fmt_time

LIST_FIELDS = ("asset_id", "org", "owner_org", "state", "user")
STATES = ("active", "expired", "pending", "rejected", "released")


def _open_entry(lease: dict[str, Any]) -> bytes:
    return dumps({"expires_at": lease["expires_at"], "state": lease["state"]})


def effective(tx: Tx, lease: dict[str, Any]) -> dict[str, Any]:
    """The lease as of this transaction: an active lease past expiry reads as expired."""
    if lease["state"] == "active" and lease["expires_at"] <= tx.now_text:
        return {**lease, "state": "expired"}
    return lease


def active_lease_count(tx: Tx, asset_id: str) -> int:
    count = 0
    for _attrs, raw in tx.scan(keys.OPEN_LEASES, [asset_id]):
        entry = json.loads(raw)
        if entry["state"] == "active" and entry["expires_at"] > tx.now_text:
            count += 1
    return count


def load_lease(tx: Tx, lease_id: str) -> dict[str, Any]:
    validate.ident(lease_id, "lease_id")
    lease = tx.get_json(keys.lease(lease_id))
    if lease is None:
        raise ContractError(LEASE_NOT_FOUND, f"lease '{lease_id}' does not exist", key=lease_id)
    return lease


def _check_capacity(tx: Tx, asset: dict[str, Any]) -> None:
    policy = asset["policy"]
    cap = 1 if policy["exclusive"] else policy["max_concurrent"]
    if cap is None:
        return
    active = active_lease_count(tx, asset["id"])
    if active >= cap:
        kind = (
            "is exclusive and already leased"
            if policy["exclusive"]
            else (f"already has {active} active lease(s), its policy's max_concurrent")
        )
        raise ContractError(
            LEASE_CONFLICT,
            f"asset '{asset['id']}' {kind}; try again when a lease ends",
            key=asset["id"],
        )


def _put(tx: Tx, lease: dict[str, Any]) -> None:
    tx.put_json(keys.lease(lease["id"]), lease)
    if lease["state"] in ("active", "pending"):
        tx.index(keys.OPEN_LEASES, [lease["asset_id"], lease["id"]], _open_entry(lease))
    else:
        tx.unindex(keys.OPEN_LEASES, [lease["asset_id"], lease["id"]])


def request_lease(tx: Tx, asset_id: str, duration: str, purpose: str) -> dict[str, Any]:
    from .assets import load_asset, require_active

    validate.ident(asset_id, "asset_id")
    duration_s = validate.int_arg(duration, "duration_s", lo=1, hi=validate.MAX_DURATION_S)
    purpose = validate.text(purpose, "purpose", max_len=1000)
    who = tx.who
    asset = load_asset(tx, asset_id)
    require_active(asset, "lease")
    policy = asset["policy"]
    allowed = policy["allowed_orgs"]
    if allowed and who["org"] not in allowed and who["org"] != asset["owner_org"]:
        raise ContractError(
            POLICY_DENIED,
            f"organization '{who['org']}' is not among the organizations asset "
            f"'{asset_id}' allows ({', '.join(allowed)})",
            key=asset_id,
        )
    if duration_s > policy["max_duration_s"]:
        raise ContractError(
            POLICY_DENIED,
            f"duration_s {duration_s} exceeds the max_duration_s {policy['max_duration_s']} "
            f"of asset '{asset_id}'; ask for a shorter lease",
            key=asset_id,
        )
    _check_capacity(tx, asset)
    lease_id = "L-" + tx.stub.get_tx_id()[:24]
    pending = policy["approval_required"] and who["org"] != asset["owner_org"]
    lease: dict[str, Any] = {
        "id": lease_id,
        "asset_id": asset_id,
        "asset_name": asset["name"],
        "owner_org": asset["owner_org"],
        "lessee_org": who["org"],
        "lessee_user": who["actor"],
        "purpose": purpose,
        "duration_s": duration_s,
        "interactive": policy["interactive"],
        "requested_at": tx.now_text,
        "state": "pending" if pending else "active",
        "granted_at": None if pending else tx.now_text,
        "expires_at": None if pending else fmt_time(tx.now + timedelta(seconds=duration_s)),
        "decided_by": None,
        "ended_at": None,
        "ended_by": None,
        "reason": None,
    }
    _put(tx, lease)
    tx.index(keys.LEASES_BY_ASSET, [asset_id, lease_id])
    tx.index(keys.LEASES_BY_LESSEE, [who["org"], lease_id])
    tx.index(keys.LEASES_BY_USER, [who["org"], who["actor"], lease_id])
    tx.index(keys.LEASES_BY_OWNER, [asset["owner_org"], lease_id])
    tx.emit("LeaseRequested" if pending else "LeaseGranted", _event(lease))
    return lease


def _event(lease: dict[str, Any]) -> dict[str, Any]:
    return {
        k: lease[k]
        for k in ("id", "asset_id", "owner_org", "lessee_org", "lessee_user", "state", "expires_at")
    }


def _owned_pending(tx: Tx, lease_id: str, doing: str) -> dict[str, Any]:
    lease = load_lease(tx, lease_id)
    if lease["owner_org"] != tx.org:
        raise ContractError(
            NOT_OWNER,
            f"only the owner organization '{lease['owner_org']}' may {doing} lease "
            f"'{lease_id}'; you submitted as '{tx.org}'",
            key=lease_id,
        )
    if lease["state"] != "pending":
        raise ContractError(
            INVALID_STATE,
            f"lease '{lease_id}' is {effective(tx, lease)['state']}, not pending; "
            f"only a pending lease can be {doing}{'d' if doing == 'approve' else 'ed'}",
            key=lease_id,
        )
    return lease


def approve_lease(tx: Tx, lease_id: str) -> dict[str, Any]:
    from .assets import load_asset, require_active

    who = tx.who
    lease = _owned_pending(tx, lease_id, "approve")
    asset = load_asset(tx, lease["asset_id"])
    require_active(asset, "lease")
    _check_capacity(tx, asset)
    lease.update(
        {
            "state": "active",
            "granted_at": tx.now_text,
            "expires_at": fmt_time(tx.now + timedelta(seconds=lease["duration_s"])),
            "decided_by": who,
        }
    )
    _put(tx, lease)
    tx.emit("LeaseApproved", _event(lease))
    return lease


def reject_lease(tx: Tx, lease_id: str, reason: str = "") -> dict[str, Any]:
    reason = validate.text(reason, "reason", max_len=1000, required=False)
    who = tx.who
    lease = _owned_pending(tx, lease_id, "reject")
    lease.update(
        {
            "state": "rejected",
            "decided_by": who,
            "ended_at": tx.now_text,
            "ended_by": who,
            "reason": reason or None,
        }
    )
    _put(tx, lease)
    tx.emit("LeaseRejected", _event(lease))
    return lease


def release_lease(tx: Tx, lease_id: str) -> dict[str, Any]:
    who = tx.who
    lease = load_lease(tx, lease_id)
    is_lessee = lease["lessee_org"] == who["org"] and lease["lessee_user"] == who["actor"]
    if not is_lessee and lease["owner_org"] != who["org"]:
        raise ContractError(
            NOT_LESSEE,
            f"lease '{lease_id}' belongs to user '{lease['lessee_user']}' of "
            f"'{lease['lessee_org']}'; only they or the owner organization "
            f"'{lease['owner_org']}' may release it",
            key=lease_id,
        )
    state = effective(tx, lease)["state"]
    if state == "expired":
        raise ContractError(
            LEASE_EXPIRED, f"lease '{lease_id}' expired at {lease['expires_at']}", key=lease_id
        )
    if state not in ("active", "pending"):
        raise ContractError(INVALID_STATE, f"lease '{lease_id}' is already {state}", key=lease_id)
    lease.update({"state": "released", "ended_at": tx.now_text, "ended_by": who})
    _put(tx, lease)
    tx.emit("LeaseReleased", _event(lease))
    return lease


def get_lease(tx: Tx, lease_id: str) -> dict[str, Any]:
    return effective(tx, load_lease(tx, lease_id))


def list_leases(tx: Tx, filters_json: str = "{}") -> dict[str, Any]:
    f = validate.obj(validate.parse_json_arg(filters_json, "filters"), "filters")
    unknown = sorted(set(f) - set(LIST_FIELDS))
    if unknown:
        raise ContractError(
            INVALID_ARGUMENT,
            f"filters: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(LIST_FIELDS)}",
            key=unknown[0],
        )
    state = f.get("state")
    if state is not None and state not in STATES:
        raise ContractError(
            INVALID_ARGUMENT,
            f"state: must be one of {', '.join(STATES)}, got {state!r}",
            key="state",
        )
    if "asset_id" in f:
        asset_id = validate.ident(f["asset_id"], "asset_id")
        ids = [a[1] for a, _ in tx.scan(keys.LEASES_BY_ASSET, [asset_id])]
    elif "user" in f:
        org = validate.ident(f.get("org", tx.org), "org")
        user = validate.text(f["user"], "user", max_len=128)
        ids = [a[2] for a, _ in tx.scan(keys.LEASES_BY_USER, [org, user])]
    elif "org" in f:
        ids = [a[1] for a, _ in tx.scan(keys.LEASES_BY_LESSEE, [validate.ident(f["org"], "org")])]
    elif "owner_org" in f:
        owner = validate.ident(f["owner_org"], "owner_org")
        ids = [a[1] for a, _ in tx.scan(keys.LEASES_BY_OWNER, [owner])]
    else:
        raise ContractError(
            INVALID_ARGUMENT,
            "filters: name one of asset_id, user, org or owner_org to list leases by",
            key="filters",
        )
    items = []
    for lease_id in ids:
        lease = effective(tx, load_lease(tx, lease_id))
        if state is None or lease["state"] == state:
            items.append(lease)
    items.sort(key=lambda lease: (lease["requested_at"], lease["id"]))
    return {"items": items}


def _expired(tx: Tx, asset_id: str | None) -> list[dict[str, Any]]:
    attrs = [] if asset_id is None else [validate.ident(asset_id, "asset_id")]
    out = []
    for (_asset, lease_id), raw in tx.scan(keys.OPEN_LEASES, attrs):
        entry = json.loads(raw)
        if entry["state"] == "active" and entry["expires_at"] <= tx.now_text:
            out.append(load_lease(tx, lease_id))
    return out


def list_expired_leases(tx: Tx, asset_id: str = "") -> dict[str, Any]:
    leases = _expired(tx, asset_id or None)
    return {"items": [{**lease, "state": "expired"} for lease in leases]}


def expire_leases(tx: Tx, asset_id: str = "") -> dict[str, Any]:
    """Write "expired" on every lease past its expiry (the reaper's transaction)."""
    who = tx.who
    leases = _expired(tx, asset_id or None)
    for lease in leases:
        lease.update({"state": "expired", "ended_at": lease["expires_at"], "ended_by": who})
        _put(tx, lease)
    if leases:
        tx.emit("LeaseExpired", {"ids": [lease["id"] for lease in leases], "by": who})
    return {"items": leases}

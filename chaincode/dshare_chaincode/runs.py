"""Run transactions: provenance from leased data to results."""

from __future__ import annotations

from typing import Any

from . import approvals, gate, keys, validate
from .errors import (
    INVALID_ARGUMENT,
    INVALID_STATE,
    LEASE_EXPIRED,
    NOT_LESSEE,
    NOT_OWNER,
    RUN_NOT_FOUND,
    ContractError,
)
from .leases import effective, load_lease
from .tx import Tx

OUTCOMES = ("cancelled", "failed", "succeeded")
MAX_LEASES_PER_RUN = 64


def record_run(
    tx: Tx, lease_ids_json: str, spec_sha256: str, name: str, code_json: str = ""
) -> dict[str, Any]:
    """A run starts: its leases are the caller's and active, and every owner that requires
    approved code approved its code identity (`code_json`: {job_sha256, files})."""
    raw = validate.parse_json_arg(lease_ids_json, "lease_ids")
    if not isinstance(raw, list) or not raw:
        raise ContractError(
            INVALID_ARGUMENT,
            "lease_ids: must be a non-empty JSON list of lease ids",
            key="lease_ids",
        )
    if len(raw) > MAX_LEASES_PER_RUN:
        raise ContractError(
            INVALID_ARGUMENT,
            f"lease_ids: at most {MAX_LEASES_PER_RUN} leases per run, got {len(raw)}",
            key="lease_ids",
        )
    lease_ids = [validate.ident(x, f"lease_ids[{i}]") for i, x in enumerate(raw)]
    if len(set(lease_ids)) != len(lease_ids):
        raise ContractError(
            INVALID_ARGUMENT, "lease_ids: names the same lease twice", key="lease_ids"
        )
    spec = validate.sha256_hex(spec_sha256, "spec_sha256")
    name = validate.text(name, "name", max_len=200)
    code = approvals.parse_code(code_json) if code_json else None
    who = tx.who
    leases = []
    for lease_id in lease_ids:
        lease = effective(tx, load_lease(tx, lease_id))
        leases.append(lease)
        if lease["lessee_org"] != who["org"] or lease["lessee_user"] != who["actor"]:
            raise ContractError(
                NOT_LESSEE,
                f"lease '{lease_id}' belongs to user '{lease['lessee_user']}' of "
                f"'{lease['lessee_org']}', not to '{who['actor']}' of '{who['org']}'",
                key=lease_id,
            )
        if lease["state"] == "expired":
            raise ContractError(
                LEASE_EXPIRED, f"lease '{lease_id}' expired at {lease['expires_at']}", key=lease_id
            )
        if lease["state"] != "active":
            raise ContractError(
                INVALID_STATE,
                f"lease '{lease_id}' is {lease['state']}; a run needs active leases",
                key=lease_id,
            )
    approvals.require_approved(tx, leases, code)
    run_id = "R-" + tx.stub.get_tx_id()[:24]
    run: dict[str, Any] = {
        "id": run_id,
        "name": name,
        "org": who["org"],
        "user": who["actor"],
        "lease_ids": lease_ids,
        "spec_sha256": spec,
        "state": "running",
        "outcome": None,
        "result_sha256": None,
        "started_at": tx.now_text,
        "finished_at": None,
    }
    if code is not None:
        run["code_sha256"] = code["code_sha256"]
    tx.put_json(keys.run(run_id), run)
    tx.index(keys.RUNS_BY_USER, [who["org"], who["actor"], run_id])
    tx.emit("RunRecorded", {"id": run_id, "lease_ids": lease_ids, "org": who["org"]})
    return run


def load_run(tx: Tx, run_id: str) -> dict[str, Any]:
    validate.ident(run_id, "run_id")
    run = tx.get_json(keys.run(run_id))
    if run is None:
        raise ContractError(RUN_NOT_FOUND, f"run '{run_id}' does not exist", key=run_id)
    return run


def finish_run(
    tx: Tx, run_id: str, outcome: str, result_sha256: str = "", outputs_json: str = ""
) -> dict[str, Any]:
    if outcome not in OUTCOMES:
        raise ContractError(
            INVALID_ARGUMENT,
            f"outcome: must be one of {', '.join(OUTCOMES)}, got {outcome!r}",
            key="outcome",
        )
    digest = validate.sha256_hex(result_sha256, "result_sha256") if result_sha256 else None
    who = tx.who
    run = load_run(tx, run_id)
    if run["org"] != who["org"] or run["user"] != who["actor"]:
        raise ContractError(
            NOT_OWNER,
            f"run '{run_id}' belongs to user '{run['user']}' of '{run['org']}'; "
            "only they may finish it",
            key=run_id,
        )
    if run["state"] != "running":
        raise ContractError(
            INVALID_STATE, f"run '{run_id}' already finished ({run['outcome']})", key=run_id
        )
    outputs = gate.parse_outputs(outputs_json, owner_orgs(tx, run)) if outputs_json else []
    run.update(
        {"state": "finished", "outcome": outcome, "result_sha256": digest, "outputs": outputs}
    )
    run["finished_at"] = tx.now_text
    tx.put_json(keys.run(run_id), run)
    for org in sorted(gate.holders(run)):
        tx.index(keys.HELD_FOR_ORG, [org, run_id])
    tx.emit("RunFinished", {"id": run_id, "outcome": outcome, "result_sha256": digest})
    return run


def owner_orgs(tx: Tx, run: dict[str, Any]) -> list[str]:
    """The organizations whose data the run read: they decide what leaves it."""
    return sorted({load_lease(tx, lease_id)["owner_org"] for lease_id in run["lease_ids"]})


def decide_output(tx: Tx, run_id: str, path: str, approve: str, reason: str) -> dict[str, Any]:
    """An owner organization approves or denies a file its release policy held."""
    if approve not in ("true", "false"):
        raise ContractError(
            INVALID_ARGUMENT, f"approve: must be 'true' or 'false', got {approve!r}", key="approve"
        )
    reason = validate.text(reason, "reason", max_len=2000, required=approve == "false")
    run = load_run(tx, run_id)
    if run["state"] != "finished":
        raise ContractError(
            INVALID_STATE,
            f"run '{run_id}' is still running; its outputs are decided after it ends",
            key=run_id,
        )
    gate.decide(
        run,
        path,
        org=tx.org,
        actor=tx.actor,
        approve=approve == "true",
        reason=reason,
        when=tx.now_text,
    )
    tx.put_json(keys.run(run_id), run)
    # A denial settles the file for every holder, so each one's queue is looked at again.
    for org in sorted(gate.holders(run)):
        if not gate.awaiting(run, org):
            tx.unindex(keys.HELD_FOR_ORG, [org, run_id])
    tx.emit("OutputDecided", {"id": run_id, "path": path, "org": tx.org, "approve": approve})
    return run


def get_run(tx: Tx, run_id: str) -> dict[str, Any]:
    return load_run(tx, run_id)


def list_runs(tx: Tx, user: str = "") -> dict[str, Any]:
    user = validate.text(user, "user", max_len=128) if user else tx.actor
    ids = [attrs[2] for attrs, _ in tx.scan(keys.RUNS_BY_USER, [tx.org, user])]
    items = [load_run(tx, run_id) for run_id in ids]
    items.sort(key=lambda run: (run["started_at"], run["id"]))
    return {"items": items}


def list_held_outputs(tx: Tx) -> dict[str, Any]:
    """The runs with files that wait for the calling organization's decision, oldest first,
    each with only those files (what an org admin's review queue shows)."""
    items = []
    for attrs, _ in tx.scan(keys.HELD_FOR_ORG, [tx.org]):
        run = load_run(tx, attrs[1])
        files = gate.awaiting(run, tx.org)
        if files:
            items.append({**run, "outputs": files})
    items.sort(key=lambda run: (run["finished_at"] or "", run["id"]))
    return {"items": items}

"""Owner-approved code: a dataset whose policy sets `code_approval_required` is read only by
runs whose code an administrator of its owner organization approved.

A run's code identity is the SHA-256 of its job identity (the broker's canonical form of
the jobs it compiled) and of the manifest of the workspace files it ships (path ->
SHA-256). The contract computes it from those two parts itself (`code_identity`), so a
request or a run cannot carry an identity that does not match its manifest. A request is
per (owner organization, code identity) and names the owner's datasets it is for; a run
over several owners' data needs each requiring owner's approval.

The spec text and the text of the files (size-capped) are on the ledger with the request,
so the owner's admins read the code through their own broker: everything in a request is
visible to every organization of the consortium (docs say so).
"""

from __future__ import annotations

import hashlib
from typing import Any

from . import keys, validate
from .errors import APPROVAL_NOT_FOUND, INVALID_STATE, NOT_OWNER, POLICY_DENIED, ContractError
from .tx import Tx, dumps

STATES = ("approved", "denied", "pending")
DECISIONS = ("approve", "deny")
MAX_FILES = 1000
MAX_PATH = 1024
MAX_SPEC = 256 * 1024  # characters of the workflow text
MAX_CONTENT = 1024 * 1024  # characters of file text per request, all files together
MAX_REASON = 2000
LIST_FIELDS = ("owner_org", "state", "user")


def code_identity(job_sha256: str, files: dict[str, str]) -> str:
    """The code identity of a run: its jobs and every file it ships, by content."""
    doc = {"jobs": job_sha256, "files": dict(sorted(files.items()))}
    return hashlib.sha256(dumps(doc)).hexdigest()


def parse_files(value: Any, field: str) -> dict[str, str]:
    """A manifest {relative path: sha256}, checked entry by entry."""
    raw = validate.obj(value, field)
    if len(raw) > MAX_FILES:
        raise validate.bad(field, f"at most {MAX_FILES} files, got {len(raw)}")
    out: dict[str, str] = {}
    for path, digest in raw.items():
        where = f"{field}[{path!r}]" if len(path) <= 80 else f"{field}[...]"
        parts = path.split("/")
        if (
            not path
            or len(path) > MAX_PATH
            or path.startswith("/")
            or ".." in parts
            or "" in parts
            or "\x00" in path
        ):
            raise validate.bad(where, "must be a relative path without '..' or empty parts")
        out[path] = validate.sha256_hex(digest, where)
    return out


def parse_code(text: str, field: str = "code") -> dict[str, Any]:
    """{job_sha256, files} as RecordRun and RequestCodeApproval receive it."""
    raw = validate.obj(validate.parse_json_arg(text, field), field)
    unknown = sorted(set(raw) - {"job_sha256", "files"})
    if unknown:
        raise validate.bad(
            field, f"unknown field(s) {', '.join(unknown)}; allowed: files, job_sha256"
        )
    job = validate.sha256_hex(raw.get("job_sha256"), f"{field}.job_sha256")
    files = parse_files(raw.get("files", {}), f"{field}.files")
    return {"job_sha256": job, "files": files, "code_sha256": code_identity(job, files)}


def _contents(value: Any, files: dict[str, str]) -> dict[str, str | None]:
    """The text of each file (None where the broker left it out: binary or too large)."""
    raw = validate.obj(value, "contents")
    extra = sorted(set(raw) - set(files))
    if extra:
        raise validate.bad("contents", f"names a file not in the manifest: {extra[0]!r}")
    out: dict[str, str | None] = {}
    total = 0
    for path in sorted(files):
        text = raw.get(path)
        if text is None:
            out[path] = None
            continue
        if not isinstance(text, str):
            raise validate.bad(f"contents[{path!r}]", "must be the file's text or null")
        total += len(text)
        if total > MAX_CONTENT:
            raise validate.bad(
                "contents", f"at most {MAX_CONTENT} characters of file text per request"
            )
        if hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest() != files[path]:
            raise validate.bad(f"contents[{path!r}]", "does not match its sha256 in the manifest")
        out[path] = text
    return out


def _load(tx: Tx, approval_id: str) -> dict[str, Any]:
    validate.ident(approval_id, "approval_id")
    record = tx.get_json(keys.approval(approval_id))
    if record is None:
        raise ContractError(
            APPROVAL_NOT_FOUND,
            f"code approval request '{approval_id}' does not exist",
            key=approval_id,
        )
    return record


def _requests_for(tx: Tx, owner: str, code_sha256: str) -> list[dict[str, Any]]:
    return [_load(tx, a[2]) for a, _ in tx.scan(keys.APPROVALS_BY_CODE, [owner, code_sha256])]


def request_code_approval(
    tx: Tx, dataset_ids_json: str, code_json: str, spec: str, contents_json: str
) -> dict[str, Any]:
    """The lessee asks the owner of `dataset_ids` (one organization) to approve its code."""
    from .assets import load_asset

    raw = validate.parse_json_arg(dataset_ids_json, "dataset_ids")
    if not isinstance(raw, list) or not raw:
        raise validate.bad("dataset_ids", "must be a non-empty JSON list of dataset ids")
    if len(raw) > 64:
        raise validate.bad("dataset_ids", f"at most 64 datasets per request, got {len(raw)}")
    dataset_ids = sorted({validate.ident(x, f"dataset_ids[{i}]") for i, x in enumerate(raw)})
    code = parse_code(code_json)
    spec = validate.text(spec, "spec", max_len=MAX_SPEC)
    contents = _contents(validate.parse_json_arg(contents_json, "contents"), code["files"])
    owners = set()
    for dataset_id in dataset_ids:
        asset = load_asset(tx, dataset_id)
        owners.add(asset["owner_org"])
        if not asset["policy"].get("code_approval_required"):
            raise ContractError(
                POLICY_DENIED,
                f"dataset '{dataset_id}' does not require approved code; run it as it is",
                key=dataset_id,
            )
    if len(owners) != 1:
        raise validate.bad(
            "dataset_ids",
            f"name datasets of one owner organization per request, got {', '.join(sorted(owners))}",
        )
    owner = owners.pop()
    for earlier in _requests_for(tx, owner, code["code_sha256"]):
        if earlier["state"] != "denied" and set(dataset_ids) <= set(earlier["dataset_ids"]):
            status = (
                f"approved by {owner}"
                if earlier["state"] == "approved"
                else f"waiting for the decision of {owner}"
            )
            raise ContractError(
                INVALID_STATE,
                f"this code is already {status} for {', '.join(earlier['dataset_ids'])} "
                f"(request '{earlier['id']}')",
                key=earlier["id"],
            )
    who = tx.who
    approval_id = "CA-" + tx.stub.get_tx_id()[:24]
    record: dict[str, Any] = {
        "id": approval_id,
        "owner_org": owner,
        "dataset_ids": dataset_ids,
        "org": who["org"],
        "user": who["actor"],
        "code_sha256": code["code_sha256"],
        "job_sha256": code["job_sha256"],
        "files": code["files"],
        "contents": contents,
        "spec": spec,
        "state": "pending",
        "requested_at": tx.now_text,
        "decided_at": None,
        "decided_by": None,
        "reason": None,
    }
    tx.put_json(keys.approval(approval_id), record)
    tx.index(keys.APPROVALS_BY_OWNER, [owner, approval_id])
    tx.index(keys.APPROVALS_BY_USER, [who["org"], who["actor"], approval_id])
    tx.index(keys.APPROVALS_BY_CODE, [owner, code["code_sha256"], approval_id])
    tx.emit("CodeApprovalRequested", _event(record))
    return record


def _event(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("id", "owner_org", "org", "user", "code_sha256", "state")}


def decide_code_approval(tx: Tx, approval_id: str, decision: str, reason: str) -> dict[str, Any]:
    """The owner organization approves or denies a pending request; a denial says why."""
    if decision not in DECISIONS:
        raise validate.bad("decision", f"must be 'approve' or 'deny', got {decision!r}")
    reason = validate.text(reason, "reason", max_len=MAX_REASON, required=decision == "deny")
    who = tx.who
    record = _load(tx, approval_id)
    if record["owner_org"] != who["org"]:
        raise ContractError(
            NOT_OWNER,
            f"only the owner organization '{record['owner_org']}' may decide on code approval "
            f"request '{approval_id}'; you submitted as '{who['org']}'",
            key=approval_id,
        )
    if (record["org"], record["user"]) == (who["org"], who["actor"]):
        raise ContractError(
            POLICY_DENIED,
            f"'{who['actor']}' made code approval request '{approval_id}' and may not decide "
            "on it; another administrator of the organization must",
            key=approval_id,
        )
    if record["state"] != "pending":
        raise ContractError(
            INVALID_STATE,
            f"code approval request '{approval_id}' is already {record['state']}",
            key=approval_id,
        )
    record.update(
        {
            "state": "approved" if decision == "approve" else "denied",
            "decided_at": tx.now_text,
            "decided_by": who,
            "reason": reason or None,
        }
    )
    tx.put_json(keys.approval(approval_id), record)
    tx.emit("CodeApprovalDecided", _event(record))
    return record


def get_code_approval(tx: Tx, approval_id: str) -> dict[str, Any]:
    return _load(tx, approval_id)


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """A request without its texts, for lists."""
    return {k: v for k, v in record.items() if k not in ("contents", "spec")}


def list_code_approvals(tx: Tx, filters_json: str = "{}") -> dict[str, Any]:
    """Requests to one owner (`owner_org`) or by one user (`user`, of the caller's org),
    oldest first; `state` narrows them. Without texts: GetCodeApproval has those."""
    f = validate.obj(validate.parse_json_arg(filters_json, "filters"), "filters")
    unknown = sorted(set(f) - set(LIST_FIELDS))
    if unknown:
        allowed = ", ".join(LIST_FIELDS)
        raise validate.bad("filters", f"unknown field(s) {', '.join(unknown)}; allowed: {allowed}")
    state = f.get("state")
    if state is not None and state not in STATES:
        raise validate.bad("state", f"must be one of {', '.join(STATES)}, got {state!r}")
    if "owner_org" in f:
        owner = validate.ident(f["owner_org"], "owner_org")
        ids = [a[1] for a, _ in tx.scan(keys.APPROVALS_BY_OWNER, [owner])]
    elif "user" in f:
        user = validate.text(f["user"], "user", max_len=128)
        ids = [a[2] for a, _ in tx.scan(keys.APPROVALS_BY_USER, [tx.org, user])]
    else:
        raise validate.bad("filters", "name owner_org or user to list code approvals by")
    items = [_load(tx, i) for i in ids]
    items = [summary(r) for r in items if state is None or r["state"] == state]
    items.sort(key=lambda r: (r["requested_at"], r["id"]))
    return {"items": items}


def latest_approved(
    tx: Tx, owner: str, dataset_ids: list[str], user: tuple[str, str]
) -> dict[str, Any] | None:
    """The newest approval by `owner` covering `dataset_ids`, of `user`'s requests first
    (what a changed run is compared against), else of anyone's."""
    approved = [
        r
        for r in (_load(tx, a[1]) for a, _ in tx.scan(keys.APPROVALS_BY_OWNER, [owner]))
        if r["state"] == "approved" and set(dataset_ids) <= set(r["dataset_ids"])
    ]
    mine = [r for r in approved if (r["org"], r["user"]) == user]
    pick = mine or approved
    return max(pick, key=lambda r: (r["decided_at"], r["id"])) if pick else None


def changed_files(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Paths added, removed or changed from `old` to `new`, each marked, sorted."""
    out = []
    for path in sorted(set(old) | set(new)):
        if path not in old:
            out.append(f"{path} (new)")
        elif path not in new:
            out.append(f"{path} (removed)")
        elif old[path] != new[path]:
            out.append(path)
    return out


def require_approved(tx: Tx, run_leases: list[dict[str, Any]], code: dict[str, Any] | None) -> None:
    """Refuse a run whose code an owner that requires approval has not approved."""
    from .assets import load_asset

    needing: dict[str, list[str]] = {}
    for lease in run_leases:
        asset = load_asset(tx, lease["asset_id"])
        if asset["policy"].get("code_approval_required"):
            needing.setdefault(asset["owner_org"], []).append(asset["id"])
    if not needing:
        return
    for owner, dataset_ids in sorted(needing.items()):
        dataset_ids = sorted(set(dataset_ids))
        names = ", ".join(dataset_ids)
        if code is None:
            raise ContractError(
                POLICY_DENIED,
                f"dataset(s) {names} of {owner} require code approved by {owner}; this run "
                "carries no code identity (submit it through the broker's run path)",
                key=dataset_ids[0],
            )
        ok = any(
            r["state"] == "approved" and set(dataset_ids) <= set(r["dataset_ids"])
            for r in _requests_for(tx, owner, code["code_sha256"])
        )
        if ok:
            continue
        latest = latest_approved(tx, owner, dataset_ids, (tx.org, tx.actor))
        if latest is None:
            raise ContractError(
                POLICY_DENIED,
                f"dataset(s) {names} of {owner} require code approved by {owner}, and no code "
                "was approved for them yet; request approval (My runs, or %dshare_run "
                "--request-approval)",
                key=dataset_ids[0],
            )
        changed = changed_files(latest["files"], code["files"])
        what = (
            f"files changed since approval '{latest['id']}': {', '.join(changed)}"
            if changed
            else f"the jobs changed since approval '{latest['id']}' (the files did not)"
        )
        raise ContractError(
            POLICY_DENIED,
            f"dataset(s) {names} of {owner} require code approved by {owner}; this run's code "
            f"is not approved ({what}); request approval again",
            key=dataset_ids[0],
        )

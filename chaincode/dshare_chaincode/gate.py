"""What left a run: the output gate's decisions, as the ledger keeps them.

The executor's gate decides per file (released or held, with the checks that held it);
the run's organization records those decisions with the run's outcome, and each owner
organization that held a file approves or denies it. A file is released once every
organization that held it approved, and denied as soon as one denies. The SHA-256 of
every file is on the ledger either way, so a run's provenance says what left it.
"""

from __future__ import annotations

from typing import Any

from . import validate
from .errors import INVALID_ARGUMENT, INVALID_STATE, NOT_OWNER, ContractError

DECISIONS = ("denied", "held", "released")
MAX_OUTPUTS = 10_000
MAX_PATH = 1024  # characters of an output's path


def _bad(field: str, message: str) -> ContractError:
    return ContractError(INVALID_ARGUMENT, f"{field}: {message}", key=field)


def parse_outputs(text: str, owners: list[str]) -> list[dict[str, Any]]:
    """The gate's decisions as `FinishRun` receives them, checked field by field."""
    raw = validate.parse_json_arg(text, "outputs")
    if not isinstance(raw, list):
        raise _bad("outputs", "must be a JSON list of {path, sha256, size, decision, held_by}")
    if len(raw) > MAX_OUTPUTS:
        raise _bad("outputs", f"at most {MAX_OUTPUTS} files per run, got {len(raw)}")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        where = f"outputs[{i}]"
        entry = validate.obj(entry, where)
        path = validate.text(entry.get("path"), f"{where}.path", max_len=MAX_PATH)
        parts = path.split("/")
        if path.startswith("/") or ".." in parts or "\x00" in path:
            raise _bad(f"{where}.path", "must be a relative path without '..'")
        if path in seen:
            raise _bad(f"{where}.path", f"names '{path}' twice")
        seen.add(path)
        decision = entry.get("decision")
        if decision not in ("held", "released"):
            raise _bad(f"{where}.decision", "must be 'held' or 'released' when a run ends")
        held_by = entry.get("held_by") or []
        if not isinstance(held_by, list) or any(org not in owners for org in held_by):
            raise _bad(
                f"{where}.held_by",
                f"must list organizations whose data the run read ({', '.join(owners)})",
            )
        if (decision == "held") != bool(held_by):
            raise _bad(f"{where}.held_by", "a held file names who held it; a released one none")
        checks = entry.get("checks") or []
        if not isinstance(checks, list):
            raise _bad(f"{where}.checks", "must be a list of {name, passed, message}")
        out.append(
            {
                "path": path,
                "sha256": validate.sha256_hex(entry.get("sha256"), f"{where}.sha256"),
                "size": validate.integer(entry.get("size"), f"{where}.size", lo=0, hi=2**63 - 1),
                "decision": decision,
                "held_by": sorted(set(held_by)),
                "checks": [_check(c, f"{where}.checks[{j}]") for j, c in enumerate(checks)],
                "decisions": {},
            }
        )
    return out


def _check(value: Any, where: str) -> dict[str, Any]:
    value = validate.obj(value, where)
    return {
        "name": validate.text(value.get("name"), f"{where}.name", max_len=64),
        "passed": validate.boolean(value.get("passed"), f"{where}.passed"),
        "message": validate.text(
            value.get("message", ""), f"{where}.message", max_len=2000, required=False
        ),
    }


def decide(
    run: dict[str, Any], path: str, *, org: str, actor: str, approve: bool, reason: str, when: str
) -> dict[str, Any]:
    """Record `org`'s decision on a held file of `run`; returns the file's entry."""
    entry = next((o for o in run.get("outputs") or [] if o["path"] == path), None)
    if entry is None:
        raise ContractError(
            INVALID_ARGUMENT, f"path: run '{run['id']}' has no output '{path}'", key="path"
        )
    if org not in entry["held_by"]:
        raise ContractError(
            NOT_OWNER,
            f"output '{path}' of run '{run['id']}' was not held by {org}; only "
            f"{', '.join(entry['held_by']) or 'nobody'} decide on it",
            key=path,
        )
    if entry["decision"] != "held":
        raise ContractError(
            INVALID_STATE,
            f"output '{path}' of run '{run['id']}' is already {entry['decision']}",
            key=path,
        )
    entry["decisions"][org] = {"approve": approve, "reason": reason, "actor": actor, "at": when}
    if not approve:
        entry["decision"] = "denied"
    elif all(entry["decisions"].get(o, {}).get("approve") for o in entry["held_by"]):
        entry["decision"] = "released"
    return entry


def awaiting(run: dict[str, Any], org: str) -> list[dict[str, Any]]:
    """The files of `run` still held that `org` has not decided on."""
    return [
        entry
        for entry in run.get("outputs") or []
        if entry["decision"] == "held" and org in entry["held_by"] and org not in entry["decisions"]
    ]


def holders(run: dict[str, Any]) -> set[str]:
    """Every organization that held a file of `run`, decided or not."""
    return {org for entry in run.get("outputs") or [] for org in entry["held_by"]}

"""Argument validation: every refusal is INVALID_ARGUMENT naming the field and what to do."""

from __future__ import annotations

import json
import re
from typing import Any

from .disclosure import DISCLOSURE_CHECKS, disclosure_params
from .errors import INVALID_ARGUMENT, ContractError
from .mockspec import mock_ranges

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TAG_RE = re.compile(r"^[a-z0-9][a-z0-9._:-]{0,47}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
ORG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

STORAGE_TYPES = ("azurefile", "gcs", "hostpath", "local", "nfs", "s3")
MAX_TAGS = 32
MAX_COLUMNS = 1000
MAX_SKELETON = 10_000
MAX_SEALED = 65_536
MAX_REDACTION = 16_384
MAX_DURATION_S = 366 * 24 * 3600


def bad(field: str, message: str) -> ContractError:
    return ContractError(INVALID_ARGUMENT, f"{field}: {message}", key=field)


def parse_json_arg(text: str, field: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad(field, f"is not valid JSON ({exc.msg} at position {exc.pos})") from None


def obj(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(field, f"must be a JSON object, got {type(value).__name__}")
    return value


def ident(value: Any, field: str) -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise bad(
            field,
            "must be 1-64 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
        )
    return value


def text(value: Any, field: str, *, max_len: int, required: bool = True) -> str:
    if not isinstance(value, str):
        raise bad(field, "must be a string")
    if required and not value.strip():
        raise bad(field, "must not be empty")
    if len(value) > max_len:
        raise bad(field, f"must be at most {max_len} characters, got {len(value)}")
    return value


def boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise bad(field, "must be true or false")
    return value


def integer(value: Any, field: str, *, lo: int, hi: int) -> int:
    # bool is an int subclass in Python; JSON true is not a number.
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad(field, f"must be a whole number between {lo} and {hi}")
    if not lo <= value <= hi:
        raise bad(field, f"must be between {lo} and {hi}, got {value}")
    return value


def int_arg(raw: str, field: str, *, lo: int, hi: int) -> int:
    try:
        value = int(raw, 10)
    except ValueError:
        raise bad(field, f"must be a whole number, got {raw!r}") from None
    return integer(value, field, lo=lo, hi=hi)


def tags(value: Any, field: str) -> list[str]:
    if not isinstance(value, list):
        raise bad(field, "must be a list of tags")
    if len(value) > MAX_TAGS:
        raise bad(field, f"must hold at most {MAX_TAGS} tags, got {len(value)}")
    for i, tag in enumerate(value):
        if not isinstance(tag, str) or not TAG_RE.match(tag):
            raise bad(
                f"{field}[{i}]",
                "must be 1-48 lower-case letters, digits, '.', '_', ':' or '-'",
            )
    return sorted(set(value))


def storage_type(value: Any, field: str) -> str:
    if value not in STORAGE_TYPES:
        raise bad(field, f"must be one of {', '.join(STORAGE_TYPES)}, got {value!r}")
    return str(value)


def sealed(value: Any, field: str) -> str:
    # Opaque ciphertext from the owner's broker; the contract checks shape only.
    if not isinstance(value, str) or not value:
        raise bad(field, "must be the non-empty sealed string made by the owner's broker")
    if len(value) > MAX_SEALED:
        raise bad(field, f"must be at most {MAX_SEALED} characters, got {len(value)}")
    return value


def redaction(value: Any, field: str) -> str:
    """The owner's Rego redaction policy: shape only here (a string, capped); the owner's
    broker compiles it before it submits, the contract runs no Rego."""
    if not isinstance(value, str):
        raise bad(field, "must be Rego source text (a string; empty for no redaction)")
    if len(value) > MAX_REDACTION:
        raise bad(field, f"must be at most {MAX_REDACTION} characters, got {len(value)}")
    if "\x00" in value:
        raise bad(field, "must not contain NUL characters")
    return value


def sha256_hex(value: Any, field: str) -> str:
    if not isinstance(value, str) or not SHA256_RE.match(value):
        raise bad(field, "must be a SHA-256 digest: 64 lower-case hex characters")
    return value


def columns(value: Any, field: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise bad(field, "must be a list of {name, type, tags}")
    if len(value) > MAX_COLUMNS:
        raise bad(field, f"must hold at most {MAX_COLUMNS} columns, got {len(value)}")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, col in enumerate(value):
        where = f"{field}[{i}]"
        col = obj(col, where)
        unknown = sorted(set(col) - {"name", "type", "tags", "mock"})
        if unknown:
            raise bad(
                where, f"unknown field(s) {', '.join(unknown)}; allowed: name, type, tags, mock"
            )
        name = text(col.get("name"), f"{where}.name", max_len=128)
        if name in seen:
            raise bad(f"{where}.name", f"duplicates column {name!r}")
        seen.add(name)
        ctype = text(col.get("type", "string"), f"{where}.type", max_len=64)
        col_tags = tags(col.get("tags", []), f"{where}.tags")
        entry: dict[str, Any] = {"name": name, "type": ctype, "tags": col_tags}
        # Only when given: columns stored before mocks existed keep their exact form.
        if "mock" in col:
            entry["mock"] = mock_ranges(col["mock"], f"{where}.mock", ctype)
        out.append(entry)
    return out


def skeleton(value: Any, field: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise bad(field, "must be a list of {path, size}")
    if len(value) > MAX_SKELETON:
        raise bad(field, f"must hold at most {MAX_SKELETON} entries, got {len(value)}")
    out: list[dict[str, Any]] = []
    for i, entry in enumerate(value):
        where = f"{field}[{i}]"
        entry = obj(entry, where)
        unknown = sorted(set(entry) - {"path", "size"})
        if unknown:
            raise bad(where, f"unknown field(s) {', '.join(unknown)}; allowed: path, size")
        path = text(entry.get("path"), f"{where}.path", max_len=1024)
        parts = path.split("/")
        if path.startswith("/") or ".." in parts or "\x00" in path:
            raise bad(f"{where}.path", "must be a relative path without '..'")
        size = integer(entry.get("size"), f"{where}.size", lo=0, hi=2**63 - 1)
        out.append({"path": path, "size": size})
    return out


POLICY_FIELDS = (
    "allowed_orgs",
    "approval_required",
    "code_approval_required",
    "exclusive",
    "interactive",
    "max_concurrent",
    "max_duration_s",
    "release",
)

# How a run's outputs leave the output gate (DESIGN.md, boundary 3). "checks" runs the
# listed checks and holds what fails them; "review" holds everything for the owner's
# admins; "auto" releases everything (for data the owner considers public).
RELEASE_MODES = ("auto", "checks", "review")
RELEASE_CHECKS = tuple(sorted(("max_size", "verbatim_input", *DISCLOSURE_CHECKS)))
RELEASE_FIELDS = ("checks", "disclosure", "max_output_bytes", "mode", "unknown")
DEFAULT_RELEASE: dict[str, Any] = {
    "mode": "checks",
    "checks": ["max_size", "verbatim_input"],
    "max_output_bytes": 1024 * 1024,
    "unknown": "hold",
}
MAX_OUTPUT_BYTES = 1024**4


def release_policy(value: Any, field: str, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A complete output-release policy: `value`'s fields over `base` (or the defaults)."""
    value = obj(value, field)
    unknown = sorted(set(value) - set(RELEASE_FIELDS))
    if unknown:
        allowed = ", ".join(RELEASE_FIELDS)
        raise bad(field, f"unknown field(s) {', '.join(unknown)}; allowed: {allowed}")
    merged = {**(base or DEFAULT_RELEASE), **value}
    mode = merged["mode"]
    if mode not in RELEASE_MODES:
        raise bad(f"{field}.mode", f"must be one of {', '.join(RELEASE_MODES)}, got {mode!r}")
    checks = merged["checks"]
    if not isinstance(checks, list):
        raise bad(f"{field}.checks", f"must be a list of checks from {', '.join(RELEASE_CHECKS)}")
    for i, check in enumerate(checks):
        if check not in RELEASE_CHECKS:
            raise bad(
                f"{field}.checks[{i}]",
                f"unknown check {check!r}; known: {', '.join(RELEASE_CHECKS)}",
            )
    if merged["unknown"] not in ("hold", "release"):
        raise bad(f"{field}.unknown", "must be 'hold' or 'release'")
    out: dict[str, Any] = {
        "mode": mode,
        "checks": sorted(set(checks)),
        "max_output_bytes": integer(
            merged["max_output_bytes"], f"{field}.max_output_bytes", lo=1, hi=MAX_OUTPUT_BYTES
        ),
        "unknown": merged["unknown"],
    }
    # Only when set or needed: policies stored before the disclosure checks keep their form.
    kept = (base or {}).get("disclosure")
    if "disclosure" in value or kept is not None or set(checks) & set(DISCLOSURE_CHECKS):
        out["disclosure"] = disclosure_params(
            value.get("disclosure", {}), f"{field}.disclosure", kept
        )
    return out


def policy(value: Any, field: str, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A complete lease policy: `value`'s fields over `base` (or the defaults)."""
    value = obj(value, field)
    unknown = sorted(set(value) - set(POLICY_FIELDS))
    if unknown:
        allowed = ", ".join(POLICY_FIELDS)
        raise bad(field, f"unknown field(s) {', '.join(unknown)}; allowed: {allowed}")
    merged: dict[str, Any] = dict(
        base
        or {
            "allowed_orgs": [],
            "approval_required": False,
            "code_approval_required": False,
            "exclusive": False,
            "interactive": False,
            "max_concurrent": None,
            "max_duration_s": 86_400,
        }
    )
    merged.update(value)
    out: dict[str, Any] = {
        # Assets registered before release policies existed get the default one.
        "release": release_policy(
            merged.get("release") or {}, f"{field}.release", (base or {}).get("release")
        ),
        "max_duration_s": integer(
            merged["max_duration_s"], f"{field}.max_duration_s", lo=1, hi=MAX_DURATION_S
        ),
        "exclusive": boolean(merged["exclusive"], f"{field}.exclusive"),
        "approval_required": boolean(merged["approval_required"], f"{field}.approval_required"),
        # Assets registered before code approval existed run any code, as they did.
        "code_approval_required": boolean(
            merged.get("code_approval_required", False), f"{field}.code_approval_required"
        ),
        "interactive": boolean(merged["interactive"], f"{field}.interactive"),
    }
    if out["code_approval_required"] and out["interactive"]:
        # Interactive use mounts the data into the notebook, where any code reads it.
        raise bad(
            f"{field}.interactive",
            "must be false when code_approval_required is true: interactive use lets any "
            "notebook code read the data, unapproved; turn one of them off",
        )
    mc = merged["max_concurrent"]
    out["max_concurrent"] = (
        None if mc is None else integer(mc, f"{field}.max_concurrent", lo=1, hi=100_000)
    )
    if out["exclusive"] and out["max_concurrent"] not in (None, 1):
        raise bad(
            f"{field}.max_concurrent",
            "must be null or 1 when exclusive is true; an exclusive asset has one lease at a time",
        )
    orgs = merged["allowed_orgs"]
    if not isinstance(orgs, list):
        raise bad(f"{field}.allowed_orgs", "must be a list of organization ids ([] = any)")
    for i, org in enumerate(orgs):
        if not isinstance(org, str) or not ORG_RE.match(org):
            raise bad(f"{field}.allowed_orgs[{i}]", "must be an organization id")
    out["allowed_orgs"] = sorted(set(orgs))
    return out

"""Column redaction policies: the owner's Rego, checked when saved and decided per lease.

An owner attaches Rego source to a dataset (the asset's `redaction` field). It is evaluated
here, in the owner's broker, with regopy (rego-cpp; no OPA server, no network: rego-cpp has
no `http.send`). The contract, documented in docs/ (redaction):

    package dshare.redaction
    # input: {owner_org, lessee_org, purpose,
    #         dataset: {id, name, tags}, column: {name, type, tags}}
    action := "hash" if { input.lessee_org != input.owner_org; "pii" in input.column.tags }

`data.dshare.redaction.action` is evaluated once per column of the dataset and must be one
of ACTIONS; undefined means "allow". Anything else (an evaluation error, two rules giving
different actions, a value not in ACTIONS) refuses the mount: a dataset is never served raw
because its policy could not be decided.

Everything here is pure (no files, no keys): `check_policy` is what the owner's broker runs
before it submits a dataset; `decide` is what it runs before it materializes one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import regopy
from regopy import Interpreter, LogLevel, RegoError
from regopy.rego_shared import rego_free_output, rego_output_ok, rego_output_string, rego_query

from dshare_chaincode.validate import MAX_REDACTION

PACKAGE = "dshare.redaction"
QUERY = "data.dshare.redaction.action"
MODULE = "redaction.rego"
ACTIONS = ("allow", "hash", "mask", "remove")
# Tags a policy may name although no column of the dataset carries them yet: the usual
# words of the field, so one policy can be reused across datasets.
TAG_VOCABULARY = (
    "confidential",
    "contact",
    "financial",
    "health",
    "identifier",
    "location",
    "pii",
    "quasi-identifier",
    "sensitive",
)
# What the unknown-tag check evaluates at most (each evaluation is well under 1 ms).
MAX_PROBES = 5000
# Names no real organization carries (org names are identifiers without spaces): what the
# save-time check evaluates the policy for, besides the owner itself.
OTHER_ORG = "another organization"

_TAG_RE = re.compile(r"^[a-z0-9][a-z0-9._:-]{0,47}$")
# rego-cpp reports errors as `(error <n>:<file>|<byte offset>|<length> (errormsg <n>:<text>)`.
_ERROR_RE = re.compile(r"\(error \d+:[^|]*\|(\d+)\|\d+\s*\(errormsg (\d+):")
_ERRMSG_RE = re.compile(r"\(errormsg (\d+):")
_PACKAGE_RE = re.compile(r"^\s*package\s+([A-Za-z0-9_.\[\]\"]+)", re.MULTILINE)

regopy.set_default_log_level("None")  # rego-cpp prints errors on stdout otherwise


class RedactionError(Exception):
    """A policy is refused; `message` names the line where one is known, never a path."""

    def __init__(self, message: str, *, code: str = "INVALID_ARGUMENT") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.field = "redaction"


@dataclass(frozen=True)
class Plan:
    """What one lessee gets of each column: {column name: action}, only non-"allow" ones;
    `columns` are every column of the schema (how a file's header is recognized)."""

    actions: Mapping[str, str]
    # Not part of what the plan hides, so not of its equality.
    columns: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def redacts(self) -> bool:
        return bool(self.actions)


def _line_of(source: str, byte_offset: int) -> int:
    return source.encode()[:byte_offset].count(b"\n") + 1


def _rego_error(source: str, raw: str) -> tuple[int | None, str]:
    """The first error rego-cpp reported: (line, message)."""
    found = _ERROR_RE.search(raw)
    if found is None:
        return None, "the Rego compiler refused it"
    start = found.end()
    text = raw[start : start + int(found.group(2))].strip()
    return _line_of(source, int(found.group(1))), text or "the Rego compiler refused it"


def _refusal(line: int | None, message: str) -> RedactionError:
    where = f"line {line}: " if line is not None else ""
    return RedactionError(f"redaction: {where}{message}")


class _Policy:
    """One compiled policy; evaluated for many inputs (rego-cpp keeps the module)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.rego = Interpreter()
        self.rego.log_level = LogLevel.NONE
        try:
            self.rego.add_module(MODULE, source)
            # rego-cpp compiles at the first query: run one so syntax errors surface here.
            self._query({})
        except RegoError as error:
            line, text = _rego_error(source, str(error.args[0] if error.args else ""))
            raise _refusal(line, f"{text}; fix the Rego and save again") from None

    def _query(self, document: dict[str, Any]) -> tuple[bool, str]:
        """(ok, output text). regopy's Output cannot read an evaluation error (its text is
        not JSON), so the output is read here; rego-cpp is pinned (requirements/)."""
        self.rego.set_input(document)
        impl = rego_query(self.rego._impl, QUERY)
        try:
            return bool(rego_output_ok(impl)), str(rego_output_string(impl))
        finally:
            rego_free_output(impl)

    def action(self, document: dict[str, Any]) -> str:
        """The action for one input; raises RedactionError (no line) when undecidable."""
        column = document["column"]["name"]
        try:
            ok, text = self._query(document)
        except RegoError as error:
            ok, text = False, str(error.args[0] if error.args else "")
        value: Any = None
        if ok and text == "undefined":
            return "allow"
        if ok and not text.startswith("(error"):
            try:
                expressions = json.loads(text).get("expressions") or []
                value = expressions[0] if expressions else None
            except (ValueError, AttributeError):
                ok = False
        else:
            ok = False
        if not ok:
            reason = _ERRMSG_RE.search(text)
            why = (
                text[reason.end() : reason.end() + int(reason.group(1))]
                if reason
                else "two rules give it different actions?"
            )
            raise _refusal(
                None,
                f"evaluating it for column {column!r} failed ({why}); make the rules give "
                "each column one action and use only built-in functions",
            )
        if value is None:
            return "allow"
        if value not in ACTIONS:
            raise _refusal(
                None,
                f"data.{PACKAGE}.action is {value!r} for column {column!r}; it must be one "
                f"of {', '.join(ACTIONS)}",
            )
        return str(value)


def _input(
    asset: Mapping[str, Any], column: Mapping[str, Any], lessee_org: str, purpose: str
) -> dict[str, Any]:
    return {
        "owner_org": str(asset.get("owner_org") or ""),
        "lessee_org": lessee_org,
        "purpose": purpose,
        "dataset": {
            "id": str(asset.get("id") or ""),
            "name": str(asset.get("name") or ""),
            "tags": list(asset.get("tags") or []),
        },
        "column": {
            "name": str(column.get("name") or ""),
            "type": str(column.get("type") or "string"),
            "tags": list(column.get("tags") or []),
        },
    }


def _string_literals(source: str) -> list[tuple[str, int]]:
    """Every string literal of the source with its line, comments skipped."""
    found: list[tuple[str, int]] = []
    i, line, n = 0, 1, len(source)
    while i < n:
        ch = source[i]
        if ch == "\n":
            line += 1
        elif ch == "#":
            end = source.find("\n", i)
            i = n if end < 0 else end
            continue
        elif ch in '"`':
            start_line, j, text = line, i + 1, []
            while j < n and source[j] != ch:
                if ch == '"' and source[j] == "\\" and j + 1 < n:
                    text.append(source[j + 1])
                    j += 2
                    continue
                if source[j] == "\n":
                    line += 1
                text.append(source[j])
                j += 1
            found.append(("".join(text), start_line))
            i = j + 1
            continue
        i += 1
    return found


def _check_package(source: str) -> None:
    found = _PACKAGE_RE.search(source)
    if found is None:
        raise _refusal(None, f"has no package; start it with `package {PACKAGE}`")
    if found.group(1) != PACKAGE:
        line = source[: found.start(1)].count("\n") + 1
        raise _refusal(
            line,
            f"the package is {found.group(1)!r}; it must be `package {PACKAGE}` "
            "(the broker evaluates data.dshare.redaction.action)",
        )


def _check_tags(
    policy: _Policy,
    asset: Mapping[str, Any],
    columns: Sequence[Mapping[str, Any]],
    known: set[str],
) -> None:
    """Refuse a tag literal that changes a decision when a column carries it, but that no
    column carries and the vocabulary lacks (a typo such as "pi" for "pii")."""
    candidates: dict[str, int] = {}
    for text, line in _string_literals(policy.source):
        if _TAG_RE.match(text) and text not in known and text not in ACTIONS:
            candidates.setdefault(text, line)
    if not candidates:
        return
    probes = [{"name": "(any column)", "type": "string", "tags": []}, *columns]
    owner = str(asset.get("owner_org") or "")
    budget = MAX_PROBES
    for tag, line in sorted(candidates.items(), key=lambda item: item[1]):
        for column in probes:
            for lessee in (OTHER_ORG, owner):
                if budget <= 0:
                    return
                budget -= 2
                plain = _input(asset, column, lessee, "")
                tagged = _input(asset, column, lessee, "")
                tagged["column"]["tags"] = sorted({*tagged["column"]["tags"], tag})
                if policy.action(plain) != policy.action(tagged):
                    raise _refusal(
                        line,
                        f"the tag {tag!r} is carried by no column of this dataset and is not "
                        f"in the vocabulary ({', '.join(TAG_VOCABULARY)}); fix the tag or add "
                        "it to a column's tags",
                    )


def check_policy(source: str, asset: Mapping[str, Any]) -> None:
    """What the owner's broker runs before it submits `asset` (its new fields merged over
    the stored ones): the Rego compiles, is in the right package, names known tags only,
    and decides every column of the dataset without error, for the owner and for others."""
    if not source.strip():
        return
    _check_package(source)
    policy = _Policy(source)
    columns = [c for c in asset.get("columns") or [] if isinstance(c, Mapping)]
    owner = str(asset.get("owner_org") or "")
    for column in columns:
        for lessee in (owner, OTHER_ORG):
            policy.action(_input(asset, column, lessee, ""))
    known = {*TAG_VOCABULARY, *(t for c in columns for t in c.get("tags") or [])}
    _check_tags(policy, asset, columns, known)


def decide(asset: Mapping[str, Any], lease: Mapping[str, Any]) -> Plan:
    """The plan for one lease of `asset`; raises RedactionError when it cannot be decided
    (the caller then refuses the mount: never raw)."""
    source = str(asset.get("redaction") or "")
    if not source.strip():
        return Plan({})
    policy = _Policy(source)
    lessee = str(lease.get("lessee_org") or "")
    purpose = str(lease.get("purpose") or "")
    actions: dict[str, str] = {}
    columns = _columns(asset.get("columns"))
    for column in columns:
        action = policy.action(_input(asset, column, lessee, purpose))
        if action != "allow":
            actions[str(column["name"])] = action
    return Plan(actions, frozenset(str(c["name"]) for c in columns))


def _columns(value: Any) -> list[Mapping[str, Any]]:
    return [c for c in value or [] if isinstance(c, Mapping) and c.get("name")]


# Fields of a dataset the save-time check reads: a change to any of them checks again.
CHECKED_FIELDS = frozenset({"columns", "name", "redaction", "tags"})


def check_dataset(
    fields: Mapping[str, Any], base: Mapping[str, Any] | None, owner_org: str
) -> None:
    """The save-time check of a DatasetIn's fields (over the stored asset on an update).
    Shapes the contract refuses anyway (not a string, too long) are left to its message."""
    asset = {**(base or {}), **fields, "owner_org": owner_org}
    source = asset.get("redaction")
    if not isinstance(source, str) or len(source) > MAX_REDACTION:
        return
    check_policy(source, asset)

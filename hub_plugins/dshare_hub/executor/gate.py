"""The output gate: what a run wrote reaches the scientist only if every owner allows it.

Each dataset mounted in a run brings its owner's release policy. A file is released only
when the policy of EVERY mounted dataset releases it; otherwise it is held with the
failing checks, saying what was found and what to change, until the holding owners
decide. Checks are a list: each is a `Check` registered by name. The disclosure checks of
tables (`sdc`: minimum cell counts, dominance, identifiers, rows behind aggregates, a cap
on rows) are `TableCheck`s: they read the output as a table once, and a file they cannot
read is held or released as the dataset's policy says for what it cannot check
(`release.unknown`).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dshare_chaincode.disclosure import disclosure_params
from dshare_chaincode.errors import ContractError
from dshare_chaincode.gate import MAX_OUTPUTS, MAX_PATH
from dshare_chaincode.validate import MAX_COLUMNS

from ..webapi import ApiError, bad
from . import sdc, verify
from .tables import NotATable, Table, read_table
from .winnow import GUARANTEE, Corpus

MODES = ("checks", "review", "auto")
DEFAULT_CHECKS = ("verbatim_input", "max_size")
DEFAULT_MAX_OUTPUT = 1024 * 1024
MAX_MESSAGE = 2000  # characters of a check's message the ledger records (dshare_chaincode.gate)


@dataclass(frozen=True)
class Column:
    """A column of the dataset's schema, as its owner tagged it (e.g. pii)."""

    name: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    lease_id: str
    owner_org: str
    dataset_id: str = ""
    dataset_name: str = ""
    mode: str = "checks"
    checks: tuple[str, ...] = DEFAULT_CHECKS
    max_output_bytes: int = DEFAULT_MAX_OUTPUT
    # A check this executor does not know, or a file the table checks cannot read: "hold"
    # the file, or "release" it as if passed (the ledger's words, policy.release.unknown).
    unknown: str = "hold"
    disclosure: sdc.Rules = field(default_factory=sdc.Rules)  # policy.release.disclosure
    columns: tuple[Column, ...] = ()  # the dataset's schema, from the owner's record

    @property
    def dataset(self) -> str:
        return self.dataset_name or self.dataset_id or f"of lease {self.lease_id}"


def parse_policy(lease_id: str, raw: Any) -> Policy:
    field_ = "policy"  # as the ledger names it: the owner set it there
    if not isinstance(raw, dict):
        raise bad(field_, "must be an object {dataset_id, dataset_name, owner_org, release}")
    owner = raw.get("owner_org")
    if not isinstance(owner, str) or not owner:
        raise bad(f"{field_}.owner_org", "must name the dataset's owner organization")
    release = raw.get("release") or {}
    if not isinstance(release, dict):
        raise bad(f"{field_}.release", "must be an object {mode, checks, max_output_bytes}")
    mode = release.get("mode", "checks")
    if mode not in MODES:
        raise bad(f"{field_}.release.mode", f"must be one of {', '.join(MODES)}")
    checks = release.get("checks", list(DEFAULT_CHECKS))
    if not isinstance(checks, list) or not all(isinstance(c, str) for c in checks):
        raise bad(f"{field_}.release.checks", "must be a list of check names")
    limit = release.get("max_output_bytes", DEFAULT_MAX_OUTPUT)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise bad(f"{field_}.release.max_output_bytes", "must be a number of bytes")
    unknown = release.get("unknown", "hold")
    if unknown not in ("hold", "release"):
        raise bad(f"{field_}.release.unknown", "must be 'hold' or 'release'")
    rules = sdc.Rules()
    if release.get("disclosure") is not None:
        try:
            params = disclosure_params(release["disclosure"], f"{field_}.release.disclosure")
        except ContractError as error:  # the contract's words, in the executor's error shape
            raise ApiError("INVALID_ARGUMENT", error.message, error.key) from None
        rules = sdc.Rules(**params | {"identifier_tags": tuple(params["identifier_tags"])})
    return Policy(
        lease_id=lease_id,
        owner_org=owner,
        dataset_id=str(raw.get("dataset_id") or ""),
        dataset_name=str(raw.get("dataset_name") or ""),
        mode=mode,
        checks=tuple(checks),
        max_output_bytes=limit,
        unknown=unknown,
        disclosure=rules,
        columns=parse_columns(raw.get("columns"), f"{field_}.columns"),
    )


def parse_columns(raw: Any, field_: str) -> tuple[Column, ...]:
    """The schema's column names and tags (a record without them: no schema)."""
    if raw is None:
        return ()
    shape = "must be the dataset's columns, a list of {name, tags}"
    if not isinstance(raw, list) or len(raw) > MAX_COLUMNS:
        raise bad(field_, shape)
    out = []
    for i, col in enumerate(raw):
        name, tags = (col.get("name"), col.get("tags", [])) if isinstance(col, dict) else (0, 0)
        if not isinstance(name, str) or not isinstance(tags, list | tuple):
            raise bad(f"{field_}[{i}]", shape)
        if not all(isinstance(t, str) for t in tags):
            raise bad(f"{field_}[{i}].tags", "must be a list of tags")
        out.append(Column(name, tuple(tags)))
    return tuple(out)


def fit_ledger(found: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The outputs the run's ledger record can hold (the contract's limits), and a warning
    for each kind left out. What is left out is never delivered: every file that leaves a
    run is on the ledger."""
    kept = sorted(rel for rel in found if len(rel) <= MAX_PATH)
    warnings = []
    if len(kept) < len(found):
        warnings.append(
            f"{len(found) - len(kept)} files have paths longer than {MAX_PATH} characters, "
            "the most the ledger records; they were not kept. Use shorter paths."
        )
    if len(kept) > MAX_OUTPUTS:
        warnings.append(
            f"the run wrote {len(kept)} files; only the first {MAX_OUTPUTS} (by path) were "
            "kept, the most a run's record holds. Write fewer, larger files."
        )
        kept = kept[:MAX_OUTPUTS]
    return kept, warnings


def saved_policy(lease_id: str, saved: dict[str, Any]) -> Policy:
    """A Policy back from run.json, where it was kept as its fields."""
    release = {k: saved[k] for k in ("mode", "max_output_bytes", "unknown")}
    release["checks"] = list(saved["checks"])
    rules = saved.get("disclosure")  # runs recorded before the disclosure checks: defaults
    if isinstance(rules, dict):
        release["disclosure"] = rules | {"identifier_tags": list(rules["identifier_tags"])}
    columns = [{"name": c["name"], "tags": list(c["tags"])} for c in saved.get("columns") or []]
    return parse_policy(lease_id, saved | {"release": release, "columns": columns})


@dataclass(frozen=True)
class Output:
    path: str  # relative to the home, as the job wrote it
    data: bytes  # empty when the file is larger than the gate reads (see `unread`)
    size: int = -1

    @property
    def length(self) -> int:
        return len(self.data) if self.size < 0 else self.size

    @property
    def unread(self) -> bool:
        return self.length > len(self.data)


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    message: str = ""
    lease_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "message": self.message,
            "lease_id": self.lease_id,
        }


class Check(ABC):
    """One test an output must pass for one dataset's owner."""

    name: str

    @abstractmethod
    def run(self, output: Output, policy: Policy, corpus: Corpus | None) -> CheckResult: ...

    def result(self, policy: Policy, passed: bool, message: str = "") -> CheckResult:
        return CheckResult(self.name, passed, message, policy.lease_id)


CHECKS: dict[str, Check] = {}


def register(cls: type[Check]) -> type[Check]:
    CHECKS[cls.name] = cls()
    return cls


@register
class MaxSize(Check):
    name = "max_size"

    def run(self, output: Output, policy: Policy, corpus: Corpus | None) -> CheckResult:
        size = output.length
        if size <= policy.max_output_bytes:
            return self.result(policy, True)
        return self.result(
            policy,
            False,
            f"{output.path} is {size} bytes; dataset {policy.dataset} releases files of at "
            f"most {policy.max_output_bytes} bytes. Write a smaller result (aggregates, "
            "not records) or ask the owner to review it.",
        )


@register
class VerbatimInput(Check):
    name = "verbatim_input"

    def run(self, output: Output, policy: Policy, corpus: Corpus | None) -> CheckResult:
        lease = policy.lease_id
        if corpus is None:
            return self.result(policy, False, f"the input of lease {lease} could not be read")
        if corpus.truncated:
            return self.result(
                policy,
                False,
                f"the input of lease {lease} is larger than the {corpus.cap} bytes the "
                "gate scans for copies, so this file cannot be checked automatically; it is "
                "held for the owner's review",
            )
        if output.unread:
            return self.result(
                policy,
                False,
                f"{output.path} is {output.length} bytes, more than the gate scans for copies "
                f"of lease {lease}'s input; write a smaller result",
            )
        # The scientist reads these messages: they say what was found and in which input
        # file (a name the skeleton shows anyway), never the data, its offsets or lengths,
        # which a job could choose to spell out the data.
        if name_copies(output.path, corpus):
            return self.result(
                policy,
                False,
                f"the name of this file copies lease {lease}'s input verbatim; it is shown "
                "redacted and held for the owner's review. Name files yourself, not from "
                "the data.",
            )
        copy = corpus.find_copy(output.data)
        if copy is not None:
            return self.result(
                policy,
                False,
                f"{output.path} contains a verbatim copy of lease {lease}'s input "
                f"({copy.name}). Write results computed from the data, not parts of it; no "
                f"{GUARANTEE} consecutive bytes of an input may appear in an output.",
            )
        if corpus.find_row(output.data) is not None:
            return self.result(
                policy,
                False,
                f"{output.path} contains a whole data row of lease {lease}'s input. Write "
                "aggregates, not rows of the data.",
            )
        return self.result(policy, True)


class TableCheck(Check):
    """A disclosure check of a table (`sdc.CHECKS`) against one lease's recomputed input."""

    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, output: Output, policy: Policy, corpus: Corpus | None) -> CheckResult:
        table = read_output(output)
        problem = table_problem(output, table, policy, corpus)
        if problem is not None:
            return problem
        assert isinstance(table, Table) and corpus is not None  # what table_problem ensures
        analysis = analyse(table, policy, corpus)
        return unverified(output, analysis, policy, corpus) or self.judge_table(
            output, analysis, policy, corpus
        )

    def judge_table(
        self, output: Output, analysis: sdc.Analysis, policy: Policy, corpus: Corpus | None
    ) -> CheckResult:
        why = sdc.CHECKS[self.name](analysis, policy.disclosure)
        if not why:
            return self.result(policy, True)
        return self.result(policy, False, fit(f"{file_label(output, corpus)}: {why}"))


for _name in sdc.CHECKS:
    CHECKS[_name] = TableCheck(_name)
# The checks that read the lease's input (the executor reads it only for them).
INPUT_CHECKS = frozenset({VerbatimInput.name, *sdc.CHECKS})


def read_output(output: Output) -> Table | str:
    """The output as a table, or why the table checks cannot read it."""
    if output.unread:
        return f"it is {output.length} bytes, more than the gate reads"
    try:
        return read_table(output.path, output.data)
    except NotATable as error:
        return error.reason


def analyse(table: Table, policy: Policy, corpus: Corpus) -> sdc.Analysis:
    schema = tuple((c.name, c.tags) for c in policy.columns)
    return sdc.analyse(table, sdc.inputs_of(corpus), schema)


def file_label(output: Output, corpus: Corpus | None) -> str:
    # A name that copies the input is shown to nobody (it is redacted everywhere else).
    return "this file" if corpus is not None and name_copies(output.path, corpus) else output.path


def table_problem(
    output: Output, table: Table | str, policy: Policy, corpus: Corpus | None
) -> CheckResult | None:
    """Why no table check can judge this output for this dataset (one result for all of
    them), or None when they can."""
    lease, label = policy.lease_id, file_label(output, corpus)
    if corpus is None:
        return CheckResult(
            "table",
            False,
            f"the input of lease {lease} could not be read, so the disclosure checks cannot "
            f"judge {label}; it is held for the owner's review",
            lease,
        )
    if corpus.truncated:
        return CheckResult(
            "table",
            False,
            f"the input of lease {lease} is larger than the {corpus.cap} bytes the gate "
            f"reads, so the disclosure checks cannot judge {label}; it is held for the "
            "owner's review",
            lease,
        )
    if isinstance(table, str):
        why = f"the disclosure checks cannot read {label} as a table: {table}"
        fix = "Write results as tables: CSV, TSV, Parquet, or JSON records."
    elif not sdc.inputs_of(corpus).tables:
        why = f"lease {lease}'s input has no table the disclosure checks can read"
        fix = "The owner decides on files over such data."
    else:
        return None
    return unjudged(why, fix, policy)


# The checks whose promise (what stands behind each cell) holds only if every cell is what
# they take it for; the others (identifiers, a row cap) judge the table as written.
VERIFIED_BY = frozenset({"dominance", "min_cell_count", "min_rows"})


def unverified(
    output: Output, analysis: sdc.Analysis, policy: Policy, corpus: Corpus | None
) -> CheckResult | None:
    """A table whose cells are not all what the checks take them for cannot be judged by
    them: a made-up column, or a count or mean the job wrote, could hold anything."""
    if not set(policy.checks) & VERIFIED_BY:
        return None
    why = verify.problem(analysis)
    if not why:
        return None
    return unjudged(
        f"the disclosure checks cannot verify {file_label(output, corpus)}: {why}",
        "Write only group keys, counts and aggregates of input columns, under names that say "
        "what they are (count, mean_income).",
        policy,
    )


def unjudged(why: str, fix: str, policy: Policy) -> CheckResult:
    """The one result for a file the table checks cannot judge: `release.unknown` decides."""
    lease = policy.lease_id
    if policy.unknown == "release":
        return CheckResult(
            "table", True, fit(f"{why}; dataset {policy.dataset} releases such files"), lease
        )
    return CheckResult(
        "table",
        False,
        fit(f"{why}; dataset {policy.dataset} holds such files for its owner's review. {fix}"),
        lease,
    )


def fit(message: str) -> str:
    """A message cut to what the ledger records (a long path, many columns)."""
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


def redacted_name(path: str) -> str:
    """What the ledger and everyone but the home learn of a file whose name copies data."""
    return "redacted-" + hashlib.sha256(path.encode()).hexdigest()[:16]


def name_copies(path: str, corpus: Corpus) -> bool:
    """Whether an output's path (its directories included) holds a verbatim copy or a
    whole row of the input: a name is as much a way out as the content."""
    name = path.encode()
    return corpus.find_copy(name) is not None or corpus.find_row(name) is not None


@dataclass
class Verdict:
    path: str
    decision: str  # released | held | denied
    checks: list[CheckResult] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)  # orgs whose policy held it


def judge(
    output: Output,
    policies: Mapping[str, Policy],
    corpora: Mapping[str, Corpus | None],
    checks: Callable[[str], Check | None] = CHECKS.get,
) -> Verdict:
    """Released only if every dataset's policy releases it; else held by those that did not."""
    results: list[CheckResult] = []
    holders: set[str] = set()
    table: Table | str | None = None  # the output as a table: read once, when first asked
    for lease_id, policy in sorted(policies.items()):
        held = False
        if policy.mode == "auto":
            results.append(CheckResult("auto", True, "", lease_id))
        elif policy.mode == "review":
            held = True
            results.append(
                CheckResult(
                    "review",
                    False,
                    f"the owner of dataset {policy.dataset} ({policy.owner_org}) reviews every "
                    "output before release; wait for their decision",
                    lease_id,
                )
            )
        else:
            analysis: sdc.Analysis | None = None
            table_done = False  # a problem no table check can get past was reported
            for name in policy.checks:
                check = checks(name)
                if check is None:
                    if policy.unknown == "hold":
                        held = True
                        results.append(
                            CheckResult(
                                name,
                                False,
                                f"dataset {policy.dataset} asks for the check {name!r}, which "
                                "this executor does not know; held for the owner's review",
                                lease_id,
                            )
                        )
                    continue
                corpus = corpora.get(lease_id)
                if isinstance(check, TableCheck):
                    if table_done:
                        continue
                    table = read_output(output) if table is None else table
                    problem = table_problem(output, table, policy, corpus)
                    if problem is not None:
                        table_done = True
                        results.append(problem)
                        held = held or not problem.passed
                        continue
                    assert isinstance(table, Table) and corpus is not None
                    if analysis is None:
                        analysis = analyse(table, policy, corpus)
                        # Reported beside the checks' own results: the owner sees both.
                        problem = unverified(output, analysis, policy, corpus)
                        if problem is not None:
                            results.append(problem)
                            held = held or not problem.passed
                    result = check.judge_table(output, analysis, policy, corpus)
                else:
                    result = check.run(output, policy, corpus)
                results.append(result)
                held = held or not result.passed
        if held:
            holders.add(policy.owner_org)
    decision = "held" if holders else "released"
    return Verdict(output.path, decision, results, sorted(holders))

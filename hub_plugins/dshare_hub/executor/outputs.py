"""What a finished run wrote, through the gate: one way for both deployments.

The executor calls this on its per-run workspace; on Kubernetes the broker's gate step
(`dshare_hub.k8s.gate_step`) calls it inside the run's last pod on the staging volume.
Either way: the new or changed regular files and (for runs that read leased data) the
job logs are staged, cut to what the ledger can record, judged against every owner's
policy, and names that copy the data are redacted. Delivery is the caller's: it knows
as whom to write.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import workspace as ws
from .gate import INPUT_CHECKS, Output, Policy, fit_ledger, judge, name_copies, redacted_name
from .winnow import Corpus, read_corpus


def wants_corpus(policy: Policy) -> bool:
    """Whether the gate reads this dataset: for the verbatim check, and under review to
    redact names that copy the input; an owner who releases automatically asked for
    neither."""
    if policy.mode == "auto":
        return False
    return policy.mode == "review" or bool(INPUT_CHECKS & set(policy.checks))


def corpora_of(
    dir_fds: Mapping[str, int], policies: Mapping[str, Policy], cap: int, on_error: Callable
) -> dict[str, Corpus | None]:
    """Each wanted dataset's contents (lease id -> open directory), None if unreadable."""
    corpora: dict[str, Corpus | None] = {}
    for lease_id, fd in dir_fds.items():
        policy = policies.get(lease_id)
        if policy is None or not wants_corpus(policy):
            continue
        try:
            corpora[lease_id] = read_corpus(fd, cap)
        except OSError:
            on_error(lease_id)
            corpora[lease_id] = None
    return corpora


@dataclass
class Gated:
    outputs: list[dict[str, Any]] = field(default_factory=list)  # as the run record keeps them
    released: dict[str, Path] = field(default_factory=dict)  # relative path -> staged file
    warnings: list[str] = field(default_factory=list)


def gate_run(
    *,
    run_id: str,
    workspace: Path,
    seeded: ws.Manifest,
    staging: Path,
    logs: Path | None,
    policies: Mapping[str, Policy],
    corpora: Mapping[str, Corpus | None],
    scan_cap: int,
) -> Gated:
    """Stage and judge what the run wrote. Call once nothing of the run can still write.

    ``logs`` is the directory of the jobs' logs when the run read leased data (its logs
    then leave only through the gate), else None.
    """
    found = ws.collect(workspace, seeded, staging)
    # The run's own log paths belong to its logs, whatever a job wrote there.
    prefix = ws.log_path(run_id, "x").rsplit("/", 1)[0] + "/"
    found = {rel: info for rel, info in found.items() if not rel.startswith(prefix)}
    if logs is not None:
        found |= ws.collect_logs(logs, run_id, staging)
    kept, warnings = fit_ledger(found)
    for rel in set(found) - set(kept):
        with contextlib.suppress(OSError):
            (staging / rel).unlink()
    gated = Gated(warnings=warnings)
    for rel in kept:
        info = found[rel]
        # An output is read only as far as the scan cap: a huge one is held unread.
        data = b"" if info.size > scan_cap else (staging / rel).read_bytes()
        verdict = judge(Output(rel, data, info.size), policies, corpora)
        # A name that copies the data is itself a way out: the ledger, the scientist and
        # the admins see it redacted; only a release delivers it under its name.
        redact = any(c is not None and name_copies(rel, c) for c in corpora.values())
        gated.outputs.append(
            {
                "path": redacted_name(rel) if redact else rel,
                "stage": rel,
                **info.as_dict(),
                "decision": verdict.decision,
                "checks": [c.as_dict() for c in verdict.checks],
                "owners": verdict.owners,
                "decisions": {},
            }
        )
        if verdict.decision == "released":
            gated.released[rel] = staging / rel
    return gated


def open_dirs(paths: Mapping[str, str]) -> dict[str, int]:
    """O_PATH descriptors of directories (lease id -> path); close them when done."""
    return {k: os.open(p, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for k, p in paths.items()}

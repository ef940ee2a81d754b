"""What a job's log shows its scientist.

A log can carry leased data as well as a file can (a job need only print it), so a run
that reads leased data shows a log only once the output gate released it, as an output
at `workspace.log_path`; until then, or when held, a line says why. The text shown is
always the executor's own copy, never the one delivered into the scientist's home.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import workspace as ws


def _read(run_dir: Path, job: str) -> str:
    try:
        return (run_dir / "logs" / f"{job}.log").read_text(errors="replace")
    except OSError:
        return ""


def shown(run_dir: Path, record: dict[str, Any], job: str) -> str:
    if not record.get("leases"):
        return _read(run_dir, job)  # no leased data: nothing to hold
    rel = ws.log_path(record["id"], job)
    out = next((o for o in record.get("outputs", []) if o["path"] == rel), None)
    if out is None:
        if record.get("gate_done"):
            return ""  # the job printed nothing
        return (
            f"(the log of {job} is shown once the run has ended and the output gate has "
            "checked it: this run reads leased data)\n"
        )
    if out["decision"] != "released":
        why = "; ".join(c["message"] for c in out.get("checks", []) if not c["passed"])
        return (
            f"(the output gate {out['decision']} the log of {job}: {why or 'by policy'}. "
            "The data owner decides on it, as on any held file)\n"
        )
    return _read(run_dir, job)

"""The state of a run and its jobs, shared by the runners, the orchestrator and the magic."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

JOB_STATES = ("pending", "running", "succeeded", "failed", "skipped", "cancelled")
FINAL_JOB_STATES = {"succeeded", "failed", "skipped", "cancelled"}
RUN_STATES = ("pending", "running", "succeeded", "failed", "cancelled")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class JobResult:
    name: str
    state: str = "pending"
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    message: str = ""
    log_path: Path | None = None
    log_text: str | None = None  # for runners (Argo) whose logs are not in a local file

    def logs(self) -> str:
        if self.log_text is not None:
            return self.log_text
        if self.log_path is not None and self.log_path.exists():
            return self.log_path.read_text(errors="replace")
        return ""

    def tail(self, n: int = 10) -> list[str]:
        return list(deque(self.logs().splitlines(), maxlen=n))

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "exit_code": self.exit_code,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "message": self.message,
        }


@dataclass
class Run:
    """What `%dshare_run` returns: status, per-job results and their logs."""

    id: str
    name: str
    jobs: dict[str, JobResult]
    edges: list[tuple[str, str]] = field(default_factory=list)
    state: str = "pending"
    message: str = ""
    mode: str = "local"  # local | argo | dry-run
    run_dir: Path | None = None
    workflow_name: str | None = None  # the Argo Workflow's name once submitted
    manifest: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    # What the output gate decided for each file the jobs wrote (executor runs).
    outputs: list[dict[str, Any]] = field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def status(self) -> str:
        return self.state

    @property
    def done(self) -> bool:
        return self.state in ("succeeded", "failed", "cancelled")

    def logs(self, job: str) -> str:
        if job not in self.jobs:
            raise KeyError(f"run {self.id} has no job `{job}`; its jobs: {', '.join(self.jobs)}")
        return self.jobs[job].logs()

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(JOB_STATES, 0)
        for job in self.jobs.values():
            out[job.state] = out.get(job.state, 0) + 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "message": self.message,
            "mode": self.mode,
            "workflow_name": self.workflow_name,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "jobs": [j.as_dict() for j in self.jobs.values()],
            "outputs": self.outputs,
        }

    def __repr__(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts().items() if v)
        return f"<Run {self.id} {self.name}: {self.state} ({counts})>"

"""Where the broker's runs go once it has bound their data: one protocol, two runners.

The embedded deployment hands a run to the job executor (`executor_client`), which
seeds a sandbox from the home snapshot the scientist's server sent; on Kubernetes the
broker submits the run's Workflow to Argo itself (`argo_runner`), and a trusted seed
step copies the home claim. Either way the runner's status carries the gate's verdict
once it is in (`gate_done`), and the broker records it on the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Submission:
    run_id: str
    org: str  # the broker's (and the user's) organization
    user: str
    manifest: dict[str, Any]  # the compiled Workflow, with placeholder claims
    home_claim: str
    # placeholder claim -> the owner's mount record (org, lease_id, and the handle or
    # claim_name, dataset_name and release policy the owner's broker returned)
    mounts: dict[str, Any] = field(default_factory=dict)
    workspace: bytes = b""  # the home's snapshot as the server sent it (embedded only)
    # A run over data that requires approved code: the only home files it may have, by
    # path and SHA-256 (embedded, `workspace` is already cut down to them); None: all.
    code_files: dict[str, str] | None = None
    mock: bool = False  # every mount is a mock of kind "mock" (broker/mockruns.py)


class Runner(Protocol):
    """The override points of a runner; every call raises `ApiError` on refusal."""

    image: str  # what jobs without an image of their own run in

    def check_user(self, user: str) -> None:
        """Refuse, before anything starts, a user this runner cannot run as."""

    async def submit(self, run: Submission) -> None: ...

    async def status(self, run_id: str, user: str) -> dict[str, Any] | None:
        """{state, gate_done, outputs, jobs, message, warnings}; None if never heard of."""

    async def logs(self, run_id: str, user: str, job: str) -> str: ...

    async def cancel(self, run_id: str, user: str) -> None: ...

    async def decide(
        self,
        run_id: str,
        user: str,
        *,
        output: dict[str, Any],
        approve: bool,
        org: str,
        reason: str,
    ) -> None:
        """Act on one decision about a held output; ``output`` is its entry on the ledger
        after the decision (its "decisions" say who approved)."""

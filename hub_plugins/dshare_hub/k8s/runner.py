"""The broker's runner on Kubernetes: it submits each run's Workflow to Argo itself.

Implements `dshare_hub.broker.runner.Runner` with the broker's own token (the scientist's
may only read their workflows). The Workflow is the compiled DAG made trusted
(`trusted.make_trusted_workflow`): jobs write to the run's staging claim, never the
home; the seed step copies the home in, and the gate, its exit handler, judges what
the jobs wrote and releases it into the home. Each run's Workflow and staging claim are
named after the run, so a broker that crashed part-way finds them again; the staging
claim is owned by the Workflow, and Kubernetes' garbage collector removes it with the
Workflow (its ttlStrategy).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from dshare_server.workflow.argo import job_states

from ..broker.errors import ApiError
from ..broker.runner import Submission
from .api import WORKFLOWS, KubeApi, KubeApiError
from .trusted import (
    DECIDE,
    GATE,
    HOME_VOLUME,
    OUTPUTS_PARAMETER,
    RESERVED,
    TrustedRun,
    TrustedRunError,
    make_decide_workflow,
    make_staging_claim,
    make_trusted_workflow,
    workflow_name,
)

log = logging.getLogger("dshare.broker")

_FINAL_PHASES = {"Succeeded": "succeeded", "Failed": "failed", "Error": "failed"}
_FINAL_NODE = ("Succeeded", "Failed", "Error", "Skipped", "Omitted")


def _unavailable(exc: KubeApiError, what: str) -> ApiError:
    # The server's reason may quote the body; the status and the action are enough.
    log.error("%s: HTTP %s on %s", what, exc.status, exc.action)
    return ApiError(
        "WORKFLOWS_UNAVAILABLE",
        f"{what}: the Kubernetes API answered HTTP {exc.status} to {exc.action}; try again, "
        "and if it persists ask your administrator",
    )


def gate_node(workflow: dict[str, Any]) -> dict[str, Any] | None:
    for node in ((workflow.get("status") or {}).get("nodes") or {}).values():
        if node.get("templateName") == GATE and node.get("type") == "Pod":
            return dict(node)
    return None


def gate_verdict(node: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The gate's outputs and warnings from its output parameter (empty if it failed)."""
    for param in (node.get("outputs") or {}).get("parameters") or []:
        if param.get("name") == OUTPUTS_PARAMETER:
            try:
                report = json.loads(param.get("value") or "")
                return list(report["outputs"]), [str(w) for w in report.get("warnings") or []]
            except (ValueError, KeyError, TypeError):
                break
    return [], ["the output gate did not finish; nothing of this run was released"]


def run_status(workflow: dict[str, Any]) -> dict[str, Any]:
    """dshare's view of a run from its Workflow: jobs, state, and the gate's verdict."""
    status = workflow.get("status") or {}
    phase = status.get("phase") or "Pending"
    state = _FINAL_PHASES.get(phase, "running")
    if state == "failed" and (workflow.get("spec") or {}).get("shutdown"):
        state = "cancelled"
    jobs = [
        {"name": name, **job}
        for name, job in job_states(workflow).items()
        if name not in RESERVED and not name.endswith(".onExit")
    ]
    node = gate_node(workflow)
    gate_done = node is not None and node.get("phase") in _FINAL_NODE and state != "running"
    outputs, warnings = gate_verdict(node) if gate_done and node else ([], [])
    return {
        "state": state,
        "gate_done": gate_done,
        "outputs": outputs,
        "warnings": warnings,
        "jobs": jobs,
        "message": status.get("message") or "",
    }


class ArgoRunner:
    """Runs on Argo Workflows, submitted and followed with the broker's own token."""

    def __init__(
        self,
        api: KubeApi,
        *,
        org: str,
        namespace_for: Callable[[str], str],
        gate_image: str,
        job_image: str,
        service_account: str = "dshare-workflow",
        staging_size: str = "10Gi",
        staging_storage_class: str | None = None,
        scan_cap: int = 8 * 1024 * 1024,
        seed_cap: int = 64 * 1024 * 1024,
    ) -> None:
        self.api = api
        self.org = org
        self.namespace_for = namespace_for
        self.gate_image = gate_image
        self.image = job_image
        self.service_account = service_account
        self.staging_size = staging_size
        self.staging_storage_class = staging_storage_class
        self.scan_cap = scan_cap
        self.seed_cap = seed_cap

    def check_user(self, user: str) -> None:
        """Anyone the hub spawned has a namespace; the API server says the rest."""

    def _trusted(
        self,
        run_id: str,
        user: str,
        home_claim: str,
        mounts: dict[str, Any],
        code_files: dict[str, str] | None = None,
    ) -> TrustedRun:
        return TrustedRun(
            code_files=code_files,
            run_id=run_id,
            user=user,
            org=self.org,
            namespace=self.namespace_for(user),
            gate_image=self.gate_image,
            service_account=self.service_account,
            home_claim=home_claim,
            claims={k: str(m["claim_name"]) for k, m in mounts.items()},
            leases={k: str(m["lease_id"]) for k, m in mounts.items()},
            policies={
                str(m["lease_id"]): {
                    "owner_org": m["org"],
                    "dataset_id": m.get("dataset_id") or "",
                    "dataset_name": m.get("dataset_name") or "",
                    "release": m.get("release") or {},
                    "columns": m.get("columns") or [],
                }
                for m in mounts.values()
            },
            scan_cap=self.scan_cap,
            seed_cap=self.seed_cap,
            staging_size=self.staging_size,
            staging_storage_class=self.staging_storage_class,
        )

    async def submit(self, run: Submission) -> None:
        trusted = self._trusted(
            run.run_id, run.user, run.home_claim, run.mounts, code_files=run.code_files
        )
        try:
            workflow = make_trusted_workflow(run.manifest, trusted)
        except TrustedRunError as error:
            raise ApiError("INVALID_ARGUMENT", str(error), "spec") from None
        try:
            # 409: the run was submitted before a crash; its claim may still be missing.
            await self.api.create_workflow(workflow)
            created = await self.api.read_workflow(workflow_name(run.run_id), trusted.namespace)
            if created is None:
                raise ApiError(
                    "WORKFLOWS_UNAVAILABLE",
                    f"run {run.run_id}'s Workflow was deleted as soon as it was made; submit "
                    "the run again, and if it persists ask your administrator",
                )
            claim = make_staging_claim(trusted)
            claim["metadata"]["ownerReferences"] = [
                {
                    "apiVersion": "/".join(WORKFLOWS[:2]),
                    "kind": "Workflow",
                    "name": created["metadata"]["name"],
                    "uid": created["metadata"]["uid"],
                }
            ]
            await self.api.create(claim)
        except KubeApiError as exc:
            raise _unavailable(exc, f"run {run.run_id} could not be submitted") from None
        log.info("run %s submitted to Argo in %s", run.run_id, trusted.namespace)

    async def _workflow(self, run_id: str, user: str) -> dict[str, Any] | None:
        try:
            return await self.api.read_workflow(workflow_name(run_id), self.namespace_for(user))
        except KubeApiError as exc:
            raise _unavailable(exc, f"run {run_id} could not be read") from None

    async def status(self, run_id: str, user: str) -> dict[str, Any] | None:
        workflow = await self._workflow(run_id, user)
        return None if workflow is None else run_status(workflow)

    async def logs(self, run_id: str, user: str, job: str) -> str:
        # A job's log may carry what it read from the data: it leaves the run only through
        # the gate, which writes a released log into the home.
        raise ApiError(
            "NOT_FOUND",
            f"on Kubernetes the log of job '{job}' reaches you through the output gate once "
            f"the run ended: ~/.dshare/runs/{run_id}/logs/{job}.log (a held log arrives when "
            "the data's owners release it)",
            "job",
        )

    async def cancel(self, run_id: str, user: str) -> None:
        # Stop, not Terminate: Argo still runs the exit handler, so the gate judges what
        # the jobs wrote until then and the staging claim holds nothing unjudged.
        try:
            found = await self.api.patch_workflow(
                workflow_name(run_id), self.namespace_for(user), {"spec": {"shutdown": "Stop"}}
            )
        except KubeApiError as exc:
            raise _unavailable(exc, f"run {run_id} could not be stopped") from None
        if not found:
            raise ApiError("RUN_NOT_FOUND", f"run {run_id} has no Workflow to stop", "run_id")

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
        decisions = output.get("decisions") or {}
        owners = output.get("held_by") or []
        released = (
            approve and bool(owners) and all(decisions.get(o, {}).get("approve") for o in owners)
        )
        if approve and not released:
            return  # other owners still hold it: nothing leaves yet
        workflow = await self._workflow(run_id, user)
        if workflow is None:
            raise ApiError(
                "INVALID_STATE",
                f"run {run_id}'s Workflow and staging volume are gone; its held outputs went "
                "with them",
            )
        node = gate_node(workflow) or {}
        staged, _ = gate_verdict(node)
        entry = next((o for o in staged if o.get("path") == output.get("path")), None)
        if entry is None:
            raise ApiError("NOT_FOUND", f"run {run_id} has no held output {output.get('path')!r}")
        trusted = self._trusted(run_id, user, _home_claim(workflow), {})
        body = make_decide_workflow(trusted, str(entry.get("stage") or entry["path"]), released)
        try:
            await self.api.create_workflow(body)
        except KubeApiError as exc:
            raise _unavailable(
                exc, f"the decision on run {run_id} could not be carried out"
            ) from None
        log.info("run %s: %s output delivery submitted (%s)", run_id, DECIDE, org)


def _home_claim(workflow: dict[str, Any]) -> str:
    for volume in (workflow.get("spec") or {}).get("volumes") or []:
        if volume.get("name") == HOME_VOLUME:
            return str(volume["persistentVolumeClaim"]["claimName"])
    raise ApiError("INVALID_STATE", "the run's Workflow has no home volume")

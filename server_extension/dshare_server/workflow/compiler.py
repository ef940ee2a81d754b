"""Compile a parsed Spec into one Argo Workflow manifest (a plain dict).

Built with hera's generated models so field names and types follow Argo's API, then
dumped to the camelCase dict that Kubernetes stores. Jobs run as jupyterflow runs them:
the user's notebook image, their home volume mounted at the notebook's home path and the
notebook's working directory. Leased data is mounted read-only from the claims the
owner's broker materialized; the pods are locked down and labelled so NetworkPolicies
can cut egress from any pod that sees leased data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml
from hera.workflows import models as m

from .spec import Job, Spec

API_VERSION = "argoproj.io/v1alpha1"
DAG_TEMPLATE = "dshare-dag"
HOME_VOLUME = "home"
# Argo stores a workflow in one Kubernetes object; the API server refuses objects over
# about 1 MB (etcd's request limit), so refuse before submitting rather than after.
MAX_MANIFEST_BYTES = 1_000_000
LABEL_USER = "dshare.io/user"
LABEL_RUN = "dshare.io/run"
LABEL_DATA = "dshare.io/data-access"
_LABEL_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


class CompileError(ValueError):
    """The spec is valid but cannot become a workflow in this context."""


@dataclass(frozen=True)
class CompileContext:
    user: str
    run_id: str
    image: str
    home_claim: str  # the user's home PVC, as jupyterflow mounts it (claim-<user>)
    service_account: str  # the per-user ServiceAccount the spawner created
    claims: Mapping[str, str] = field(default_factory=dict)  # lease id -> claim name
    lease_expiry: Mapping[str, datetime] = field(default_factory=dict)  # lease id -> expiry
    home_path: str = "/home/jovyan"
    working_dir: str = "/home/jovyan"
    namespace: str | None = None
    default_deadline_s: int = 24 * 3600
    pod_gc_delay: str = "10m"
    ttl_seconds: int = 24 * 3600
    run_as_user: int = 1000
    fs_group: int = 100
    now: datetime | None = None


def label_value(text: str) -> str:
    """A Kubernetes label value (<= 63 chars, alphanumeric at both ends) for any text."""
    value = _LABEL_BAD.sub("-", text)[:63].strip("-_.")
    return value or "unknown"


def volume_name(index: int) -> str:
    return f"lease-{index}"


def _security_context() -> m.SecurityContext:
    return m.SecurityContext(
        run_as_non_root=True,
        allow_privilege_escalation=False,
        capabilities=m.Capabilities(drop=["ALL"]),
        seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
    )


def _deadline_seconds(spec: Spec, ctx: CompileContext, now: datetime) -> int:
    limits: list[tuple[datetime, str]] = []
    if spec.deadline is not None:
        limits.append((spec.deadline, "the workflow's deadline"))
    for lease_id in spec.lease_ids:
        expiry = ctx.lease_expiry.get(lease_id)
        if expiry is not None:
            limits.append((expiry, f"lease {lease_id[:12]}"))
    if not limits:
        return ctx.default_deadline_s
    when, what = min(limits)
    seconds = int((when - now).total_seconds())
    if seconds <= 0:
        raise CompileError(
            f"{what} ended at {when.isoformat()}; nothing can run after it. "
            "Lease the dataset again or choose a later deadline."
        )
    return min(seconds, ctx.default_deadline_s) if spec.deadline is None else seconds


def _job_template(
    job: Job, spec: Spec, ctx: CompileContext, volumes: Mapping[str, str]
) -> m.Template:
    env = {**spec.env, **job.env}
    mounts = [m.VolumeMount(name=HOME_VOLUME, mount_path=ctx.home_path)]
    for vol in job.volumes:
        mounts.append(
            m.VolumeMount(name=volumes[vol.lease_id], mount_path=vol.path, read_only=True)
        )
    resources = None
    if job.cpu or job.memory:
        quantities = {k: m.Quantity(v) for k, v in (("cpu", job.cpu), ("memory", job.memory)) if v}
        resources = m.ResourceRequirements(requests=quantities, limits=dict(quantities))
    data_access = "true" if job.volumes else "false"
    return m.Template(
        name=job.name,
        metadata=m.Metadata(labels={LABEL_DATA: data_access}),
        active_deadline_seconds=(
            m.IntOrString(str(job.timeout_s)) if job.timeout_s is not None else None
        ),
        container=m.Container(
            name="main",
            image=job.image or ctx.image,
            command=["/bin/sh", "-c"],
            args=[job.command],
            working_dir=ctx.working_dir,
            env=[m.EnvVar(name=k, value=v) for k, v in env.items()] or None,
            resources=resources,
            volume_mounts=mounts,
            security_context=_security_context(),
        ),
    )


def compile_workflow(spec: Spec, ctx: CompileContext) -> dict[str, Any]:
    """The Argo Workflow for ``spec``; raises CompileError if it cannot be built or is too big."""
    now = ctx.now or datetime.now(UTC)
    missing = [i for i in spec.lease_ids if i not in ctx.claims]
    if missing:
        raise CompileError(
            f"no volume was materialized for lease {missing[0][:12]}; "
            "ask the broker to start the run before compiling"
        )
    volumes = {lease_id: volume_name(i) for i, lease_id in enumerate(spec.lease_ids, start=1)}
    deadline = _deadline_seconds(spec, ctx, now)
    labels = {LABEL_USER: label_value(ctx.user), LABEL_RUN: label_value(ctx.run_id)}
    tasks = [
        m.DAGTask(
            name=job.name,
            template=job.name,
            dependencies=spec.dependencies(job.name) or None,
        )
        for job in spec.jobs
    ]
    templates = [m.Template(name=DAG_TEMPLATE, dag=m.DAGTemplate(tasks=tasks))]
    templates += [_job_template(job, spec, ctx, volumes) for job in spec.jobs]
    wf_volumes = [
        m.Volume(
            name=HOME_VOLUME,
            persistent_volume_claim=m.PersistentVolumeClaimVolumeSource(claim_name=ctx.home_claim),
        )
    ]
    wf_volumes += [
        m.Volume(
            name=name,
            persistent_volume_claim=m.PersistentVolumeClaimVolumeSource(
                claim_name=ctx.claims[lease_id], read_only=True
            ),
        )
        for lease_id, name in volumes.items()
    ]
    workflow = m.Workflow(
        api_version=API_VERSION,
        kind="Workflow",
        metadata=m.ObjectMeta(
            generate_name=f"{spec.name or 'workflow'}-",
            namespace=ctx.namespace,
            labels=labels,
            annotations={LABEL_USER: ctx.user, LABEL_RUN: ctx.run_id},
        ),
        spec=m.WorkflowSpec(
            entrypoint=DAG_TEMPLATE,
            templates=templates,
            volumes=wf_volumes,
            service_account_name=ctx.service_account,
            automount_service_account_token=False,
            # Without the automounted token Argo's wait container needs its own account;
            # the job's main container never sees that token.
            executor=m.ExecutorConfig(service_account_name=ctx.service_account),
            security_context=m.PodSecurityContext(
                run_as_non_root=True,
                run_as_user=ctx.run_as_user,
                fs_group=ctx.fs_group,
                seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
            ),
            pod_metadata=m.Metadata(labels=dict(labels)),
            active_deadline_seconds=deadline,
            pod_gc=m.PodGC(strategy="OnWorkflowCompletion", delete_delay_duration=ctx.pod_gc_delay),
            ttl_strategy=m.TTLStrategy(seconds_after_completion=ctx.ttl_seconds),
        ),
    )
    manifest: dict[str, Any] = workflow.model_dump(exclude_none=True, by_alias=True, mode="json")
    size = len(json.dumps(manifest, separators=(",", ":")).encode())
    if size > MAX_MANIFEST_BYTES:
        raise CompileError(
            f"the compiled workflow is {size} bytes; Argo stores a workflow in one Kubernetes "
            f"object, which is limited to {MAX_MANIFEST_BYTES} bytes. Split it into smaller "
            "workflows or move long commands into scripts in your home directory."
        )
    return manifest


def to_yaml(manifest: Mapping[str, Any]) -> str:
    """The manifest as YAML, as hera writes it (block style, keys in model order)."""
    return yaml.safe_dump(dict(manifest), default_flow_style=False, sort_keys=False)

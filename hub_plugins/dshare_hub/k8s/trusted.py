"""What the broker submits to Argo for a run: the compiled DAG made safe to hand to data.

The compiler (`dshare_server.workflow.compiler`) turns workflow.yaml into a DAG of the
scientist's jobs. Before the broker submits it with its own token, these pure builders
change where the jobs can write and add the two steps no job code runs in:

- the jobs no longer mount the scientist's home: their home is the run's staging claim
  (subPath `work`), seeded with a copy of the home, and their stdout and stderr go to
  the staging claim too (subPath `logs`), so nothing a job writes reaches the scientist
  except through the gate;
- a seed step (the trusted gate image, the home read-only) copies the home into the
  staging claim before the first job;
- the exit handler is the gate (the same image), which mounts the staging claim, the
  home and the leased data, judges every new file and log against each owner's policy
  (`dshare_hub.executor.outputs`, as the embedded executor does) and writes the released
  ones into the home. Its verdict is the step's output parameter, which the broker reads
  from the Workflow's status and records on the ledger.

The placeholder claims the compiler was given become the claims the owners' brokers
materialized for this run. Nothing here calls the API server.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dshare_server.workflow.compiler import HOME_VOLUME

from .names import (
    LABEL_COMPONENT,
    LABEL_DATA_ACCESS,
    LABEL_MANAGED_BY,
    LABEL_OWNER_ORG,
    LABEL_RUN,
    LABEL_USER,
    MANAGED_BY,
    dns_name,
    label_value,
)

SEED = "dshare-seed"
GATE = "dshare-gate"
DECIDE = "dshare-decide"
STAGING_VOLUME = "dshare-staging"
RUN_DIR = "/dshare/run"
HOME_DIR = "/dshare/home"
DATA_DIR = "/dshare/data"
LOGS_DIR = "/dshare/logs"
REPORT = "/tmp/dshare-gate.json"  # noqa: S108 - inside the gate's own container
OUTPUTS_PARAMETER = "outputs"
RESERVED = (SEED, GATE, DECIDE)


class TrustedRunError(ValueError):
    """The compiled workflow cannot be made into a trusted run; the message says why."""


@dataclass(frozen=True)
class TrustedRun:
    """What the broker knows of a run when it submits it."""

    run_id: str
    user: str
    org: str  # the user's org: its broker owns the staging claim
    namespace: str
    gate_image: str  # dshare's own image: the seed, gate and decide steps run it
    service_account: str  # the namespace's workflow account (Argo's executor only)
    home_claim: str  # the scientist's home claim, as KubeSpawner names it
    claims: Mapping[str, str] = field(default_factory=dict)  # placeholder -> real claim
    leases: Mapping[str, str] = field(default_factory=dict)  # placeholder -> lease id
    policies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # lease id -> policy
    home_path: str = "/home/jovyan"
    scan_cap: int = 8 * 1024 * 1024
    seed_cap: int = 64 * 1024 * 1024
    staging_size: str = "10Gi"
    staging_storage_class: str | None = None
    run_as_user: int = 1000  # the notebook image's user: the home's files are theirs
    fs_group: int = 100
    # Approved code only (broker/approvals.py): the seed copies these files, checked by
    # SHA-256, and nothing else of the home; None: the whole home.
    code_files: Mapping[str, str] | None = None


def workflow_name(run_id: str) -> str:
    """One name per run, so a broker that crashed after submitting finds it again."""
    return dns_name("dshare-run", run_id.lower())


def staging_claim_name(run_id: str) -> str:
    # The Workflow's own name: one look at the namespace pairs a claim with its run.
    return workflow_name(run_id)


def _labels(run: TrustedRun) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_USER: label_value(run.user),
        LABEL_RUN: label_value(run.run_id),
    }


def make_staging_claim(run: TrustedRun) -> dict[str, Any]:
    """The run's own scratch: the jobs' home, their logs, and held outputs until decided.

    Labelled with the user's org: the admission policy lets a broker write only claims of
    its own org, and this broker owns the run.
    """
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteMany"],
        "volumeMode": "Filesystem",
        "resources": {"requests": {"storage": run.staging_size}},
    }
    if run.staging_storage_class is not None:
        spec["storageClassName"] = run.staging_storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": staging_claim_name(run.run_id),
            "namespace": run.namespace,
            "labels": {
                **_labels(run),
                LABEL_OWNER_ORG: label_value(run.org),
                LABEL_COMPONENT: "run-staging",
            },
        },
        "spec": spec,
    }


def _gate_env(run: TrustedRun, data: Mapping[str, str], **extra: Any) -> list[dict[str, str]]:
    config = {
        "run_id": run.run_id,
        "run_dir": RUN_DIR,
        "home": HOME_DIR,
        "data": dict(data),
        "policies": {k: dict(v) for k, v in run.policies.items()},
        "scan_cap": run.scan_cap,
        "seed_cap": run.seed_cap,
        "report": REPORT,
        **extra,
    }
    return [{"name": "DSHARE_GATE", "value": json.dumps(config, sort_keys=True)}]


def _security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _step(
    run: TrustedRun,
    name: str,
    command: str,
    mounts: list[dict[str, Any]],
    env: list[dict[str, str]],
    data_access: bool,
) -> dict[str, Any]:
    template: dict[str, Any] = {
        "name": name,
        "metadata": {
            "labels": {
                LABEL_COMPONENT: name.removeprefix("dshare-"),
                LABEL_DATA_ACCESS: "true" if data_access else "false",
            }
        },
        "container": {
            "name": "main",
            "image": run.gate_image,
            "command": ["python", "-m", "dshare_hub.k8s.gate_step", command],
            "env": env,
            "volumeMounts": mounts,
            "securityContext": _security_context(),
        },
    }
    if name != SEED:
        # The gate's verdict (a decision's result) is the step's output parameter: argoexec
        # reads it from the file and the broker from the Workflow's status.
        template["outputs"] = {
            "parameters": [{"name": OUTPUTS_PARAMETER, "valueFrom": {"path": REPORT}}]
        }
    return template


def _staging_mount(path: str, sub_path: str | None = None) -> dict[str, Any]:
    mount: dict[str, Any] = {"name": STAGING_VOLUME, "mountPath": path}
    if sub_path:
        mount["subPath"] = sub_path
    return mount


def _confine_job(template: dict[str, Any], run: TrustedRun) -> None:
    container = template["container"]
    mounts = [m for m in container.get("volumeMounts") or [] if m["name"] != HOME_VOLUME]
    container["volumeMounts"] = [
        _staging_mount(run.home_path, "work"),
        _staging_mount(LOGS_DIR, "logs"),
        *mounts,
    ]
    # The job's own output streams go to the staging claim, where the gate reads them as
    # it reads files; the pod log holds nothing of the run.
    log = f"{LOGS_DIR}/{template['name']}.log"
    container["args"] = [f"exec >>{log} 2>&1\n" + "".join(container.get("args") or [])]


def make_trusted_workflow(manifest: Mapping[str, Any], run: TrustedRun) -> dict[str, Any]:
    """The compiled ``manifest`` with real claims, confined jobs, and the seed and gate."""
    wf: dict[str, Any] = copy.deepcopy(dict(manifest))
    spec = wf["spec"]
    templates: list[dict[str, Any]] = spec["templates"]
    dag_name = spec["entrypoint"]
    dag = next(t for t in templates if t["name"] == dag_name)
    jobs = [t for t in templates if t["name"] != dag_name]
    clash = sorted({t["name"] for t in templates} & set(RESERVED))
    if clash:
        raise TrustedRunError(
            f"job '{clash[0]}' has a name dshare keeps for its own steps; rename the job"
        )
    unknown = sorted(
        v["persistentVolumeClaim"]["claimName"]
        for v in spec.get("volumes") or []
        if v["name"] != HOME_VOLUME and v["persistentVolumeClaim"]["claimName"] not in run.claims
    )
    if unknown:
        raise TrustedRunError(f"no claim was materialized for volume claim '{unknown[0]}'")

    data: dict[str, str] = {}
    data_mounts: list[dict[str, Any]] = []
    for volume in spec.get("volumes") or []:
        claim = volume["persistentVolumeClaim"]
        if volume["name"] == HOME_VOLUME:
            continue
        placeholder = claim["claimName"]
        claim["claimName"] = run.claims[placeholder]
        lease_id = run.leases.get(placeholder, placeholder)
        data[lease_id] = f"{DATA_DIR}/{volume['name']}"
        data_mounts.append({"name": volume["name"], "mountPath": data[lease_id], "readOnly": True})
    spec["volumes"].append(
        {
            "name": STAGING_VOLUME,
            "persistentVolumeClaim": {"claimName": staging_claim_name(run.run_id)},
        }
    )
    for job in jobs:
        _confine_job(job, run)

    tasks = dag["dag"]["tasks"]
    for task in tasks:
        if not task.get("dependencies"):
            task["dependencies"] = [SEED]
    tasks.insert(0, {"name": SEED, "template": SEED})
    home_ro = {"name": HOME_VOLUME, "mountPath": HOME_DIR, "readOnly": True}
    home_rw = {"name": HOME_VOLUME, "mountPath": HOME_DIR}
    templates.append(
        _step(
            run,
            SEED,
            "seed",
            [home_ro, _staging_mount(RUN_DIR)],
            _gate_env(
                run,
                {},
                **({} if run.code_files is None else {"code_files": dict(run.code_files)}),
            ),
            False,
        )
    )
    templates.append(
        _step(
            run,
            GATE,
            "gate",
            [home_rw, _staging_mount(RUN_DIR), *data_mounts],
            _gate_env(run, data),
            bool(data),
        )
    )
    spec["onExit"] = GATE
    spec["serviceAccountName"] = run.service_account
    spec["executor"] = {"serviceAccountName": run.service_account}
    meta = wf["metadata"]
    meta.pop("generateName", None)
    meta["name"] = workflow_name(run.run_id)
    meta["namespace"] = run.namespace
    meta["labels"] = {**(meta.get("labels") or {}), **_labels(run)}
    return wf


def make_decide_workflow(run: TrustedRun, stage: str, approve: bool) -> dict[str, Any]:
    """A one-step Workflow that delivers a held output into the home, or deletes it."""
    labels = _labels(run)
    name = dns_name("dshare-decide", f"{run.run_id}-{stage}".lower())
    home_rw = {"name": HOME_VOLUME, "mountPath": HOME_DIR}
    step = _step(
        run,
        DECIDE,
        "decide",
        [home_rw, _staging_mount(RUN_DIR)],
        _gate_env(run, {}, stage=stage, approve=approve),
        False,
    )
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": run.namespace, "labels": labels},
        "spec": {
            "entrypoint": DECIDE,
            "templates": [step],
            "volumes": [
                {"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": run.home_claim}},
                {
                    "name": STAGING_VOLUME,
                    "persistentVolumeClaim": {"claimName": staging_claim_name(run.run_id)},
                },
            ],
            "serviceAccountName": run.service_account,
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": run.run_as_user,
                "fsGroup": run.fs_group,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "executor": {"serviceAccountName": run.service_account},
            "podMetadata": {"labels": dict(labels)},
            "podGC": {"strategy": "OnWorkflowCompletion"},
            "ttlStrategy": {"secondsAfterCompletion": 3600},
        },
    }

"""Pure builders of the per-user Kubernetes objects (as kubespawner's objects.py does for pods).

Every function returns a plain dict in the API server's JSON form; nothing here talks to a
cluster, so each manifest can be checked whole and validated against the Kubernetes schema.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .names import (
    ANNOTATION_USER,
    LABEL_COMPONENT,
    LABEL_DATA_ACCESS,
    LABEL_MANAGED_BY,
    LABEL_ORG,
    LABEL_POD_SECURITY,
    LABEL_USER,
    LABEL_USER_NAMESPACE,
    MANAGED_BY,
    label_value,
)

# Paths and names, not secrets.
TOKEN_DIR = "/var/run/secrets/dshare"  # noqa: S105
TOKEN_FILE = "token"  # noqa: S105
NAMESPACE_FILE = "namespace"
TOKEN_VOLUME = "dshare-token"  # noqa: S105
SKELETON_VOLUME = "dshare-skeletons"
SKELETON_ROOT = "/dshare-skeletons"

# DESIGN.md boundary 5: the user's token reads its own workflows and their pods, in its
# own namespace, and nothing more. The broker submits and stops workflows (it compiles
# them itself from the spec); a user who could create a Workflow or a pod could mount any
# data claim in the namespace. No pods/log: a job that reads leased data can write it to
# its stdout (/proc/1/fd/1) and the pod's log would carry it past the output gate; job
# logs reach the scientist only as gated outputs (.dshare/runs/<run_id>/logs/<job>.log in
# the home). No Secrets, no PersistentVolumes, no wildcards.
USER_ROLE_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
]


# The ClusterRole (shipped with the chart) whose rights the user's own org broker gets in
# the user's namespace, and nowhere else: it submits the runs it compiled and follows them.
BROKER_RUNS_ROLE = "dshare-broker-runs"


def user_labels(user: str, org: str, component: str) -> dict[str, str]:
    """Labels every per-user object carries: the reaper and NetworkPolicies select on them."""
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_COMPONENT: component,
        LABEL_USER: label_value(user),
        LABEL_ORG: label_value(org),
    }


def user_namespace_labels(org: str) -> dict[str, str]:
    """Labels the hub gives a user's namespace when it makes it.

    Users hold no right on namespaces, so these are what NetworkPolicies and admission may
    trust where pod labels cannot be (a user's workflows choose their pods' labels): the
    brokers' policies admit servers by the org of their namespace. `baseline` Pod Security
    refuses host networking (and privileged containers, host paths), which would take a
    job pod out of the pod network where no NetworkPolicy applies.
    """
    return {
        LABEL_USER_NAMESPACE: "true",
        LABEL_ORG: label_value(org),
        LABEL_POD_SECURITY: "baseline",
    }


def _meta(name: str, namespace: str, labels: Mapping[str, str], user: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": dict(labels),
        "annotations": {ANNOTATION_USER: user},
    }


def make_service_account(*, name: str, namespace: str, user: str, org: str) -> dict[str, Any]:
    """The user's ServiceAccount; its token is never mounted automatically anywhere."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(name, namespace, user_labels(user, org, "user-rbac"), user),
        "automountServiceAccountToken": False,
    }


def make_role(*, name: str, namespace: str, user: str, org: str) -> dict[str, Any]:
    """The Role limiting the user's token to reading workflows and pods in one namespace."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(name, namespace, user_labels(user, org, "user-rbac"), user),
        "rules": [
            {k: list(v) if isinstance(v, list) else v for k, v in rule.items()}
            for rule in USER_ROLE_RULES
        ],
    }


def make_role_binding(
    *, name: str, namespace: str, user: str, org: str, service_account: str, role: str
) -> dict[str, Any]:
    """Binds the user's Role to the user's ServiceAccount only."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(name, namespace, user_labels(user, org, "user-rbac"), user),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    }


def make_broker_runs_binding(
    *, namespace: str, user: str, org: str, broker_account: str, broker_namespace: str
) -> dict[str, Any]:
    """Binds BROKER_RUNS_ROLE in the user's namespace to the user's own org's broker.

    A broker holds no cluster-wide right on workflows, pods or logs: a job's log may carry
    what a run computed from another org's data, so another org's broker must not read it.
    """
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(BROKER_RUNS_ROLE, namespace, user_labels(user, org, "broker-runs"), user),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": BROKER_RUNS_ROLE,
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": broker_account, "namespace": broker_namespace}
        ],
    }


def make_token_request(
    *,
    audiences: Sequence[str],
    expiration_seconds: int,
) -> dict[str, Any]:
    """A TokenRequest for a ServiceAccount token with a bounded lifetime."""
    if expiration_seconds < 600:
        # The API server refuses anything shorter than ten minutes.
        raise ValueError(f"token expiration_seconds must be at least 600, got {expiration_seconds}")
    spec: dict[str, Any] = {
        "audiences": list(audiences),
        "expirationSeconds": expiration_seconds,
    }
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}


def make_projected_token_volume(*, audience: str, expiration_seconds: int) -> dict[str, Any]:
    """A projected volume with a kubelet-managed token for the pod's ServiceAccount.

    The kubelet asks the TokenRequest API itself, binds the token to the pod (deleted pod,
    dead token) and renews it before expiry, so a long session keeps working and nothing
    is stored in the cluster.
    """
    if expiration_seconds < 600:
        raise ValueError(f"token expiration_seconds must be at least 600, got {expiration_seconds}")
    token: dict[str, Any] = {"expirationSeconds": expiration_seconds, "path": TOKEN_FILE}
    if audience:
        # Empty: the API server's own audience, which is what the Kubernetes API accepts.
        token = {"audience": audience, **token}
    return {
        "name": TOKEN_VOLUME,
        "projected": {
            "sources": [
                {"serviceAccountToken": token},
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": NAMESPACE_FILE,
                                "fieldRef": {"fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ]
        },
    }


@dataclass(frozen=True)
class InteractiveMount:
    """A leased dataset whose policy allows interactive use, materialized as a claim."""

    dir_name: str
    claim_name: str


@dataclass
class PodParts:
    """What dshare adds to a user's notebook pod."""

    volumes: list[dict[str, Any]] = field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = field(default_factory=list)
    init_containers: list[dict[str, Any]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    service_account_name: str | None = None


# Runs in the notebook image (it has python3). It re-checks each path because the skeleton is
# another organization's metadata: nothing may land outside the volume.
SKELETON_SCRIPT = """\
import json, os, sys
root = sys.argv[1]
for name, paths in json.loads(sys.argv[2]).items():
    base = os.path.normpath(os.path.join(root, name))
    if os.path.dirname(base) != root:
        continue
    os.makedirs(base, exist_ok=True)
    for p in paths:
        full = os.path.normpath(os.path.join(base, p))
        if not full.startswith(base + os.sep):
            continue
        if p.endswith("/"):
            os.makedirs(full, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(full), exist_ok=True)
            open(full, "a").close()
"""


def _restricted_security_context(uid: int | None) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if uid is not None:
        ctx["runAsUser"] = uid
    return ctx


def make_skeleton_init_container(
    *, image: str, skeletons: Mapping[str, Sequence[str]], uid: int | None
) -> dict[str, Any]:
    """An init container writing directory skeletons (structure, empty files) to an emptyDir.

    `skeletons` maps a dataset directory name to relative paths (directories end in `/`).
    """
    return {
        "name": "dshare-skeleton",
        "image": image,
        "command": ["python3", "-c", SKELETON_SCRIPT],
        "args": [
            SKELETON_ROOT,
            json.dumps({k: list(v) for k, v in sorted(skeletons.items())}, sort_keys=True),
        ],
        "volumeMounts": [{"name": SKELETON_VOLUME, "mountPath": SKELETON_ROOT}],
        "securityContext": _restricted_security_context(uid),
        "resources": {
            "requests": {"cpu": "10m", "memory": "32Mi"},
            "limits": {"cpu": "500m", "memory": "128Mi"},
        },
    }


def data_access_level(interactive: Sequence[InteractiveMount], skeleton_count: int) -> str:
    """`interactive` when real data is mounted, `skeleton` for structure only, else `none`.

    NetworkPolicies deny egress to pods labelled `interactive`.
    """
    if interactive:
        return "interactive"
    if skeleton_count:
        return "skeleton"
    return "none"


def make_pod_parts(
    *,
    user: str,
    org: str,
    datasets_path: str,
    token_volume: dict[str, Any],
    service_account_name: str | None,
    interactive: Sequence[InteractiveMount] = (),
    skeletons: Mapping[str, Sequence[str]] | None = None,
    skeleton_image: str = "",
    uid: int | None = None,
) -> PodParts:
    """Everything dshare adds to the notebook pod, as volumes, mounts, init containers, labels.

    Leased data is mounted read-only; skeletons are mounted read-only from an emptyDir
    filled by the init container, one subPath per dataset.
    """
    skeletons = dict(skeletons or {})
    parts = PodParts(service_account_name=service_account_name)
    parts.volumes.append(token_volume)
    parts.volume_mounts.append({"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True})
    root = datasets_path.rstrip("/")
    for i, mount in enumerate(sorted(interactive, key=lambda m: m.dir_name)):
        vol = f"dshare-data-{i}"
        parts.volumes.append(
            {
                "name": vol,
                "persistentVolumeClaim": {"claimName": mount.claim_name, "readOnly": True},
            }
        )
        parts.volume_mounts.append(
            {"name": vol, "mountPath": f"{root}/{mount.dir_name}", "readOnly": True}
        )
    if skeletons:
        parts.volumes.append({"name": SKELETON_VOLUME, "emptyDir": {"sizeLimit": "16Mi"}})
        parts.init_containers.append(
            make_skeleton_init_container(image=skeleton_image, skeletons=skeletons, uid=uid)
        )
        for dir_name in sorted(skeletons):
            parts.volume_mounts.append(
                {
                    "name": SKELETON_VOLUME,
                    "mountPath": f"{root}/{dir_name}",
                    "subPath": dir_name,
                    "readOnly": True,
                }
            )
    parts.labels = {
        LABEL_USER: label_value(user),
        LABEL_ORG: label_value(org),
        LABEL_DATA_ACCESS: data_access_level(interactive, len(skeletons)),
    }
    parts.annotations = {ANNOTATION_USER: user}
    return parts


def apply_pod_parts(
    pod: Mapping[str, Any], parts: PodParts, *, enforce_non_root: bool = True
) -> dict[str, Any]:
    """A copy of `pod` (API JSON form) with dshare's parts added and the token rules enforced.

    Whatever the operator configured, the pod ends up with no automounted token: the only
    credential in it is the per-user token file at TOKEN_DIR.
    """
    out: dict[str, Any] = json.loads(json.dumps(pod))
    meta = out.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), **parts.labels}
    meta["annotations"] = {**(meta.get("annotations") or {}), **parts.annotations}
    spec = out.setdefault("spec", {})
    spec["automountServiceAccountToken"] = False
    if parts.service_account_name is not None:
        spec["serviceAccountName"] = parts.service_account_name
    names = {v["name"] for v in parts.volumes}
    spec["volumes"] = [v for v in spec.get("volumes") or [] if v.get("name") not in names]
    spec["volumes"] += parts.volumes
    if parts.init_containers:
        spec["initContainers"] = list(spec.get("initContainers") or []) + parts.init_containers
    container = spec["containers"][0]
    paths = {m["mountPath"] for m in parts.volume_mounts}
    container["volumeMounts"] = [
        m
        for m in container.get("volumeMounts") or []
        if m.get("name") not in names and m.get("mountPath") not in paths
    ] + parts.volume_mounts
    if enforce_non_root:
        ctx = container.get("securityContext") or {}
        pod_ctx = spec.get("securityContext") or {}
        if ctx.get("runAsUser") == 0 or ("runAsUser" not in ctx and pod_ctx.get("runAsUser") == 0):
            raise ValueError(
                "the notebook container is set to run as uid 0 (root) but "
                "DShareKubeSpawner.enforce_non_root is True: set KubeSpawner.uid to the "
                "image's non-root user (e.g. 1000)"
            )
        ctx["runAsNonRoot"] = True
        ctx["allowPrivilegeEscalation"] = False
        container["securityContext"] = ctx
    return out

"""Pure builders for the Kubernetes objects dshare adds next to the zero-to-jupyterhub chart.

The YAML files under manifests/ are the rendered output of this module and are checked in so
an operator can read and `kubectl apply` them without Python; tests/deployment checks that
they have not drifted from these builders. Regenerate after editing:

    python z2jh-values/dshare_manifests.py --write

Nothing here holds a secret: Secrets are created at install time by
scripts/create-broker-secrets.sh from keys generated on the operator's machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

HUB_NAMESPACE = "dshare"
ORGS = ("UiS", "UiO", "UiB")
VERSION = "0.1.0"
HUB_IMAGE = f"dshare/hub:{VERSION}"
# KubeSpawner.user_namespace_template in values.yaml must produce names with this prefix:
# the broker admission policy only lets brokers write into namespaces that start with it.
USER_NAMESPACE_PREFIX = "dshare-u-"
USER_NAMESPACE_LABEL = "dshare.io/user-namespace"
BROKER_PORT = 8080
WORKFLOW_SERVICE_ACCOUNT = "dshare-workflow"
# The label every object a broker mounts carries (dshare_hub.k8s.names.LABEL_OWNER_ORG).
OWNER_ORG_LABEL = "dshare.io/owner-org"

MANIFEST_DIR = Path(__file__).resolve().parent / "manifests"


def _meta(name: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> Obj:
    meta: Obj = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = {"app.kubernetes.io/part-of": "dshare", **(labels or {})}
    return meta


def broker_service_name(org: str) -> str:
    """JupyterHub service (and Kubernetes Service) name of an org's broker: dshare-uis."""
    return "dshare-" + org.lower()


def broker_labels(org: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "dshare-broker", "dshare.io/org": org}


def hub_api_token_key(org: str) -> str:
    # The chart stores each hub.services entry's api token in the hub Secret under this key
    # (its jupyterhub_config.py reads it back from there), so hub and broker share one token.
    return f"hub.services.{broker_service_name(org)}.apiToken"


# --- RBAC -------------------------------------------------------------------------------

# What KubeSpawner and DShareKubeSpawner do in user namespaces. These are cluster-wide
# because user namespaces are created on demand (no RoleBinding can exist in a namespace
# before it does) and because KubeSpawner's pod and event reflectors watch all namespaces
# when enable_user_namespaces is on. Each rule says which code path needs it.
HUB_CLUSTER_RULES: list[Obj] = [
    # KubeSpawner creates the user's namespace on first spawn; it never deletes one.
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "create"]},
    # the user's server pod, its home PVC (standard KubeSpawner duties)
    {
        "apiGroups": [""],
        "resources": ["pods", "persistentvolumeclaims"],
        "verbs": ["get", "list", "watch", "create", "delete"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
    # DShareKubeSpawner: the per-user ServiceAccount, Role and RoleBinding, and the
    # short-lived projected token (TokenRequest) mounted for %dshare_run.
    {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "create", "delete"]},
    {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
    # update: every spawn replaces the Role and RoleBinding, so their rules are exactly
    # dshare's even if someone widened them.
    {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["roles", "rolebindings"],
        "verbs": ["get", "create", "update", "delete"],
    },
    # Kubernetes refuses to let anyone create a Role granting rights they do not hold
    # themselves, so the hub must hold what the per-user Role grants: reading Argo
    # Workflows. It never uses them itself.
    {
        "apiGroups": ["argoproj.io"],
        "resources": ["workflows"],
        "verbs": ["get", "list", "watch"],
    },
    # ...and the right to bind (only) the workflow executor role in user namespaces.
    {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["clusterroles"],
        "verbs": ["bind"],
        "resourceNames": ["dshare-argo-executor", "dshare-broker-runs"],
    },
    # the per-namespace NetworkPolicies of per-user-namespace/ (no egress for data pods)
    {
        "apiGroups": ["networking.k8s.io"],
        "resources": ["networkpolicies"],
        "verbs": ["get", "create"],
    },
]

# What an org broker does when it materializes a lease and when its reaper cleans up.
BROKER_CLUSTER_RULES: list[Obj] = [
    # PersistentVolumes are cluster-scoped: there is no namespaced way to create one. No
    # get or list: another org's PVs name its shares and buckets. The broker finds its own
    # through the Secrets in its own namespace, and dshare-broker-scope lets it create and
    # delete only PVs labelled with its own org.
    {"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["create", "delete"]},
    # the claim in the user's namespace (namespaces are created on demand, hence cluster-wide;
    # dshare-broker-scope pins writes to user namespaces and to the broker's own claims)
    {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["create", "delete"]},
]

# What the user's own org broker may do in that user's namespace, and nowhere else (the
# hub binds it there at every spawn: dshare_hub.k8s.objects.make_broker_runs_binding):
# submit the Workflow it compiled from the run's spec, stop it, follow it and its logs.
BROKER_RUNS_RULES: list[Obj] = [
    {
        "apiGroups": ["argoproj.io"],
        "resources": ["workflows"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
]

# In the org's own Secret namespace only: the storage credential the PV's CSI driver reads,
# one per mount, and the broker's record of what it mounted (an empty Secret for storage
# without credentials), which its reaper lists after a restart. No other org's broker, no
# hub and no user holds any right there.
BROKER_SECRET_RULES: list[Obj] = [
    {
        "apiGroups": [""],
        "resources": ["secrets"],
        "verbs": ["get", "list", "create", "update", "delete"],
    },
]


def secret_namespace(org: str) -> str:
    """Where an org broker keeps the credentials of what it mounts (BrokerApp's default)."""
    return f"dshare-secrets-{org.lower()}"


# Argo's executor (init/wait containers) reports results through WorkflowTaskResults.
ARGO_EXECUTOR_RULES: list[Obj] = [
    {
        "apiGroups": ["argoproj.io"],
        "resources": ["workflowtaskresults"],
        "verbs": ["create", "patch"],
    },
]


def cluster_role(name: str, rules: list[Obj]) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": _meta(name),
        "rules": [dict(rule) for rule in rules],
    }


def cluster_role_binding(name: str, role: str, service_accounts: list[tuple[str, str]]) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _meta(name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [
            {"kind": "ServiceAccount", "name": sa, "namespace": ns} for ns, sa in service_accounts
        ],
    }


def hub_rbac(namespace: str = HUB_NAMESPACE) -> list[Obj]:
    """The hub's rights in user namespaces; the chart's own Role covers its namespace."""
    return [
        cluster_role("dshare-hub", HUB_CLUSTER_RULES),
        cluster_role_binding("dshare-hub", "dshare-hub", [(namespace, "hub")]),
        cluster_role("dshare-argo-executor", ARGO_EXECUTOR_RULES),
        cluster_role("dshare-broker-runs", BROKER_RUNS_RULES),
    ]


def broker_service_account(org: str, namespace: str = HUB_NAMESPACE) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(broker_service_name(org), namespace, broker_labels(org)),
    }


def broker_rbac(orgs: tuple[str, ...] = ORGS, namespace: str = HUB_NAMESPACE) -> list[Obj]:
    objects: list[Obj] = [broker_service_account(org, namespace) for org in orgs]
    objects += [
        cluster_role("dshare-broker", BROKER_CLUSTER_RULES),
        cluster_role_binding(
            "dshare-broker",
            "dshare-broker",
            [(namespace, broker_service_name(org)) for org in orgs],
        ),
    ]
    for org in orgs:
        secrets = secret_namespace(org)
        objects += [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": _meta(secrets, labels={"dshare.io/org": org}),
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": _meta("dshare-broker", secrets),
                "rules": [dict(rule) for rule in BROKER_SECRET_RULES],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": _meta("dshare-broker", secrets),
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "dshare-broker",
                },
                "subjects": [
                    {
                        "kind": "ServiceAccount",
                        "name": broker_service_name(org),
                        "namespace": namespace,
                    }
                ],
            },
        ]
    return objects


def admission_policy(name: str, resource_rules: list[Obj], **spec: Any) -> list[Obj]:
    """A ValidatingAdmissionPolicy that fails closed, and the binding that makes it deny."""
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": _meta(name),
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": resource_rules},
                **spec,
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": _meta(name),
            "spec": {"policyName": name, "validationActions": ["Deny"]},
        },
    ]


def broker_scope_policy(namespace: str = HUB_NAMESPACE) -> list[Obj]:
    """Admission policy: a broker writes only its own org's mounts, claims only in user
    namespaces, credentials only in its own Secret namespace.

    RBAC cannot say "namespaces whose name starts with" or "objects labelled with my org",
    so without this one broker could delete another org's volumes or put a claim in
    kube-system.
    """
    name = "dshare-broker-scope"
    sa_prefix = f"system:serviceaccount:{namespace}:dshare-"
    return admission_policy(
        name,
        [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE", "DELETE"],
                "resources": [
                    "secrets",
                    "persistentvolumeclaims",
                    "persistentvolumes",
                ],
            }
        ],
        matchConditions=[
            {
                "name": "is-a-dshare-broker",
                "expression": f"request.userInfo.username.startsWith('{sa_prefix}')",
            }
        ],
        variables=[
            # the org of the calling broker: system:serviceaccount:<ns>:dshare-<org> (split,
            # not an offset, so the expression does not depend on the namespace's length)
            {
                "name": "org",
                "expression": "request.userInfo.username.split(':')[3].substring(7)",
            },
            {
                "name": "target",
                "expression": "request.operation == 'DELETE' ? oldObject : object",
            },
        ],
        validations=[
            {
                "expression": (
                    "has(variables.target.metadata.labels) && "
                    f"'{OWNER_ORG_LABEL}' in variables.target.metadata.labels && "
                    f"variables.target.metadata.labels['{OWNER_ORG_LABEL}']"
                    ".lowerAscii() == variables.org"
                ),
                "message": (
                    "a dshare broker may create, change and delete only objects "
                    f"labelled {OWNER_ORG_LABEL} with its own organization"
                ),
                "reason": "Forbidden",
            },
            {
                "expression": (
                    "request.resource.resource != 'persistentvolumeclaims' || "
                    f"request.namespace.startsWith('{USER_NAMESPACE_PREFIX}')"
                ),
                "message": (
                    "dshare brokers may write PersistentVolumeClaims only in user "
                    f"namespaces ({USER_NAMESPACE_PREFIX}*)"
                ),
                "reason": "Forbidden",
            },
            {
                "expression": (
                    "request.resource.resource != 'secrets' || "
                    "request.namespace == 'dshare-secrets-' + variables.org"
                ),
                "message": (
                    "a dshare broker may write Secrets only in its own namespace "
                    "dshare-secrets-<org>"
                ),
                "reason": "Forbidden",
            },
        ],
    )


# --- Argo hardening -----------------------------------------------------------------------

_NO_PATCH_IN_TEMPLATES = "(!has({s}.templates) || {s}.templates.all(t, !has(t.podSpecPatch)))"


def _no_pod_spec_patch(spec: str) -> str:
    return (
        f"!has({spec}.podSpecPatch) && "
        f"(!has({spec}.templateDefaults) || !has({spec}.templateDefaults.podSpecPatch)) && "
        + _NO_PATCH_IN_TEMPLATES.format(s=spec)
    )


def pod_spec_patch_policy() -> list[Obj]:
    """Deny podSpecPatch anywhere a user can write it.

    podSpecPatch lets a workflow rewrite its pods after dshare compiled them (volumes,
    security context, service account), which undoes every job-pod guarantee; issue 8 cites
    Argo CVE-2026-31892 and its incomplete fix. dshare's compiler never emits it.
    """
    name = "dshare-deny-podspecpatch"
    workflow_like = _no_pod_spec_patch("object.spec")
    cron = _no_pod_spec_patch("object.spec.workflowSpec")
    return admission_policy(
        name,
        [
            {
                "apiGroups": ["argoproj.io"],
                "apiVersions": ["*"],
                "operations": ["CREATE", "UPDATE"],
                "resources": [
                    "workflows",
                    "workflowtemplates",
                    "clusterworkflowtemplates",
                    "cronworkflows",
                ],
            }
        ],
        validations=[
            {
                "expression": (f"object.kind == 'CronWorkflow' ? ({cron}) : ({workflow_like})"),
                "message": (
                    "podSpecPatch is not allowed in dshare clusters: remove "
                    "spec.podSpecPatch, spec.templateDefaults.podSpecPatch and every "
                    "templates[].podSpecPatch (set resources and volumes in the "
                    "workflow.yaml job instead)"
                ),
                "reason": "Forbidden",
            }
        ],
    )


# --- Brokers ------------------------------------------------------------------------------


def broker_config_map(org: str, namespace: str = HUB_NAMESPACE, image: str = HUB_IMAGE) -> Obj:
    """The broker's traitlets config: where each mounted fact lives, never a secret."""
    config = "\n".join(
        [
            "# Rendered by z2jh-values/dshare_manifests.py; secrets come from mounted files",
            "# and environment variables, never from this file.",
            "import os",
            "",
            f"c.BrokerApp.org = {org!r}",
            "c.BrokerApp.ip = '0.0.0.0'",
            f"c.BrokerApp.port = {BROKER_PORT}",
            "c.BrokerApp.ledger_kind = 'fabric'",
            # FabricProfile format (dshare_hub.ledger.fabric): peer_endpoint, msp_id, channel,
            # chaincode, key_path, cert_path, tls_root_cert_path; written by
            # fabric-network/scripts/connection-profiles.sh
            "c.BrokerApp.fabric_profile = '/etc/dshare/fabric/connection.json'",
            # Leased data becomes Secret + PersistentVolume + claim in the user's namespace.
            "c.BrokerApp.materializer_kind = 'kubernetes'",
            f"c.BrokerApp.kube_hub_namespace = {namespace!r}",
            # The same namespaces as KubeSpawner.user_namespace_template in values.yaml.
            "c.BrokerApp.kube_namespace_template = 'dshare-u-{username}'",
            # The broker submits each run to Argo; its seed and gate steps run this image
            # (dshare's own, never the scientist's): pin it by digest in production.
            f"c.BrokerApp.kube_gate_image = {image!r}",
            "c.BrokerApp.kek_file = '/etc/dshare/kek/kek'",
            "c.BrokerApp.keystore_url = os.environ['DSHARE_KEYSTORE_URL']",
            "c.BrokerApp.data_dir = '/tmp/dshare'",
            "",
        ]
    )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(f"{broker_service_name(org)}-config", namespace, broker_labels(org)),
        "data": {"broker_config.py": config},
    }


def broker_deployment(org: str, namespace: str = HUB_NAMESPACE, image: str = HUB_IMAGE) -> Obj:
    name = broker_service_name(org)
    labels = broker_labels(org)
    secret = f"{name}-secrets"
    env = [
        {"name": "JUPYTERHUB_SERVICE_NAME", "value": name},
        {"name": "JUPYTERHUB_API_URL", "value": "http://hub:8081/hub/api"},
        {"name": "JUPYTERHUB_SERVICE_PREFIX", "value": f"/services/{name}/"},
        {"name": "JUPYTERHUB_SERVICE_URL", "value": f"http://0.0.0.0:{BROKER_PORT}"},
        {
            "name": "JUPYTERHUB_API_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "hub", "key": hub_api_token_key(org)}},
        },
        {
            "name": "DSHARE_KEYSTORE_URL",
            "valueFrom": {"secretKeyRef": {"name": secret, "key": "keystore-url"}},
        },
    ]
    container: Obj = {
        "name": "broker",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["dshare", "broker", "--org", org, "--config", "/etc/dshare/broker_config.py"],
        "ports": [{"name": "http", "containerPort": BROKER_PORT, "protocol": "TCP"}],
        "env": env,
        "volumeMounts": [
            {
                "name": "config",
                "mountPath": "/etc/dshare/broker_config.py",
                "subPath": "broker_config.py",
                "readOnly": True,
            },
            {"name": "kek", "mountPath": "/etc/dshare/kek", "readOnly": True},
            {"name": "fabric", "mountPath": "/etc/dshare/fabric", "readOnly": True},
            # the root filesystem is read-only; Python and grpc still want a scratch dir
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
        ],
        "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 10},
        "livenessProbe": {
            "tcpSocket": {"port": "http"},
            "initialDelaySeconds": 30,
            "periodSeconds": 20,
        },
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"memory": "512Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, namespace, labels),
        "spec": {
            "replicas": 1,
            # one writer per org key store at a time: never two brokers during a rollout
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {
                    "labels": {
                        "app.kubernetes.io/part-of": "dshare",
                        # the chart's hub NetworkPolicy admits only pods with this label
                        "hub.jupyter.org/network-access-hub": "true",
                        **labels,
                    }
                },
                "spec": {
                    "serviceAccountName": name,
                    "automountServiceAccountToken": True,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 1000,
                        "runAsGroup": 1000,
                        "fsGroup": 1000,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": f"{name}-config"}},
                        {
                            "name": "kek",
                            "secret": {
                                "secretName": secret,
                                "defaultMode": 0o400,
                                "items": [{"key": "kek", "path": "kek"}],
                            },
                        },
                        {
                            "name": "fabric",
                            "secret": {"secretName": f"{name}-fabric", "defaultMode": 0o400},
                        },
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                    ],
                },
            },
        },
    }


def broker_service(org: str, namespace: str = HUB_NAMESPACE) -> Obj:
    labels = broker_labels(org)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(broker_service_name(org), namespace, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(labels),
            "ports": [{"name": "http", "port": BROKER_PORT, "targetPort": "http"}],
        },
    }


def brokers(
    orgs: tuple[str, ...] = ORGS, namespace: str = HUB_NAMESPACE, image: str = HUB_IMAGE
) -> list[Obj]:
    out: list[Obj] = []
    for org in orgs:
        out += [
            broker_config_map(org, namespace, image),
            broker_deployment(org, namespace, image),
            broker_service(org, namespace),
        ]
    return out


# --- NetworkPolicies ----------------------------------------------------------------------
#
# A user writes the labels of almost every pod in their namespace: Argo makes job pods with
# the labels of the user's Workflow (podMetadata, template metadata), and the user's token
# may create Workflows. So nothing in a user namespace is granted on a label a user could
# write. Every pod there starts with no network at all (dshare-default-deny); the user's
# server gets its reach from SERVER_LABELS, which the admission policy
# dshare-reserved-pod-labels lets only the hub put on a pod there; a broker tells its own
# org's users apart by labels of their namespace, which only the hub sets (users hold no
# right on namespaces). tests/deployment/test_network_reach.py checks the result with
# np-guard's analyzer, forged labels included.

# KubeSpawner's label for the user's server. Only the hub may set it in user namespaces.
SERVER_LABELS: dict[str, str] = {"component": "singleuser-server"}
# The org of a user namespace, set by DShareKubeSpawner when it makes the namespace
# (dshare_hub.k8s.objects.user_namespace_labels).
NAMESPACE_ORG_LABEL = "dshare.io/org"
# The chart's ServiceAccount for the hub: the only account that makes users' servers.
HUB_SERVICE_ACCOUNT = "hub"
# Where a user's server reaches the Kubernetes API (its workflows and their logs). Policies
# see the API server's endpoint address, not the `kubernetes` Service's cluster IP. The
# default is Docker's private address pool, where the control plane of a kind or k3d
# cluster lives (operator guide, part 1); elsewhere render with --kube-api-cidr.
KUBE_API_CIDRS: tuple[str, ...] = ("172.16.0.0/12",)
KUBE_API_PORTS = (443, 6443)

_DNS_EGRESS: Obj = {
    # kube-system's resolver only: a pod someone labels k8s-app=kube-dns elsewhere is not one
    "to": [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}


def _hub_namespace_selector(namespace: str) -> Obj:
    return {"matchLabels": {"kubernetes.io/metadata.name": namespace}}


def _hub_or_proxy() -> Obj:
    return {
        "matchLabels": {"app": "jupyterhub"},
        "matchExpressions": [{"key": "component", "operator": "In", "values": ["hub", "proxy"]}],
    }


def user_namespace_selector(org: str) -> Obj:
    """The namespaces of one org's users, by the labels the hub gives them."""
    return {"matchLabels": {USER_NAMESPACE_LABEL: "true", NAMESPACE_ORG_LABEL: org}}


def broker_network_policy(org: str, namespace: str = HUB_NAMESPACE) -> Obj:
    """An org's broker accepts the hub, the proxy and its own org's users' servers only."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(f"dshare-broker-{org.lower()}", namespace),
        "spec": {
            "podSelector": {"matchLabels": broker_labels(org)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [
                        {"podSelector": _hub_or_proxy()},
                        {
                            "namespaceSelector": user_namespace_selector(org),
                            "podSelector": {"matchLabels": dict(SERVER_LABELS)},
                        },
                    ],
                    "ports": [{"protocol": "TCP", "port": BROKER_PORT}],
                }
            ],
            "egress": [
                _DNS_EGRESS,
                {
                    "to": [
                        {"podSelector": {"matchLabels": {"app": "jupyterhub", "component": "hub"}}}
                    ],
                    "ports": [{"protocol": "TCP", "port": 8081}],
                },
                # Kubernetes API (PV/PVC/Secret writes), Fabric peers and orderer, PostgreSQL:
                # these live outside the cluster's pod network in most clusters, so they are
                # allowed by port, not by selector.
                {
                    "ports": [
                        {"protocol": "TCP", "port": 443},
                        {"protocol": "TCP", "port": 6443},
                        {"protocol": "TCP", "port": 7050},
                        {"protocol": "TCP", "port": 7051},
                        {"protocol": "TCP", "port": 5432},
                    ]
                },
            ],
        },
    }


def _carries_server_labels(obj: str) -> str:
    checks = [
        f"'{key}' in {obj}.metadata.labels && {obj}.metadata.labels['{key}'] == '{value}'"
        for key, value in sorted(SERVER_LABELS.items())
    ]
    return f"{obj} != null && has({obj}.metadata.labels) && " + " && ".join(checks)


def reserved_server_label_policy(namespace: str = HUB_NAMESPACE) -> list[Obj]:
    """Admission: in user namespaces only the hub makes pods that carry SERVER_LABELS.

    Those labels get the server's reach (hub, broker, Kubernetes API). Argo makes job pods
    with whatever labels the user's Workflow names, so without this a job that mounts leased
    data could call itself a server. A pod that already carried them (the hub's own) may be
    updated as before.
    """
    name = "dshare-reserved-pod-labels"
    shown = ", ".join(f"{k}={v}" for k, v in sorted(SERVER_LABELS.items()))
    return admission_policy(
        name,
        [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["pods"],
            }
        ],
        matchConditions=[
            # by name, as the broker scope policy: no label can take a namespace out
            {
                "name": "in-a-user-namespace",
                "expression": f"request.namespace.startsWith('{USER_NAMESPACE_PREFIX}')",
            },
            {
                "name": "not-the-hub",
                "expression": (
                    "request.userInfo.username != "
                    f"'system:serviceaccount:{namespace}:{HUB_SERVICE_ACCOUNT}'"
                ),
            },
        ],
        variables=[
            {"name": "server", "expression": _carries_server_labels("object")},
            {"name": "wasServer", "expression": _carries_server_labels("oldObject")},
        ],
        validations=[
            {
                "expression": "!variables.server || variables.wasServer",
                "message": (
                    f"only JupyterHub may create pods labelled {shown} in user "
                    "namespaces: that label is what lets the user's server reach the "
                    "hub, its broker and the Kubernetes API. Remove it from the "
                    "workflow's podMetadata and templates' metadata."
                ),
                "reason": "Forbidden",
            }
        ],
    )


def network_policies(orgs: tuple[str, ...] = ORGS, namespace: str = HUB_NAMESPACE) -> list[Obj]:
    return [broker_network_policy(org, namespace) for org in orgs] + reserved_server_label_policy(
        namespace
    )


def default_deny_network_policy() -> Obj:
    """Every pod in a user namespace: no ingress, no egress, whatever its labels say.

    Job pods, the ones that mount leased data, get nothing more: they are isolated because
    nothing grants them anything, not because they carry a label. Namespaced objects without
    a namespace: applied in each user namespace when it is made.
    """
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta("dshare-default-deny"),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [],
        },
    }


def singleuser_network_policy(
    hub_namespace: str = HUB_NAMESPACE, kube_api_cidrs: tuple[str, ...] = KUBE_API_CIDRS
) -> Obj:
    """The user's server: reached by hub and proxy; talks to DNS, hub, brokers, API server.

    Brokers admit only their own org's users' servers; the Kubernetes API is reached at its
    own addresses only, so no port of this policy leads to the internet.
    """
    hub_ns = _hub_namespace_selector(hub_namespace)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta("dshare-singleuser"),
        "spec": {
            "podSelector": {"matchLabels": dict(SERVER_LABELS)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [{"namespaceSelector": hub_ns, "podSelector": _hub_or_proxy()}],
                    "ports": [{"protocol": "TCP", "port": 8888}],
                }
            ],
            "egress": [
                _DNS_EGRESS,
                {
                    "to": [
                        {
                            "namespaceSelector": hub_ns,
                            "podSelector": {
                                "matchLabels": {"app": "jupyterhub", "component": "hub"}
                            },
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": 8081}],
                },
                {
                    "to": [
                        {
                            "namespaceSelector": hub_ns,
                            "podSelector": {
                                "matchLabels": {"app.kubernetes.io/name": "dshare-broker"}
                            },
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": BROKER_PORT}],
                },
                # %dshare_run follows its workflows and their logs through the Kubernetes API
                {
                    "to": [{"ipBlock": {"cidr": cidr}} for cidr in kube_api_cidrs],
                    "ports": [{"protocol": "TCP", "port": port} for port in KUBE_API_PORTS],
                },
            ],
        },
    }


def workflow_service_account() -> Obj:
    # Job pods run as this account; the compiled Workflow sets
    # automountServiceAccountToken: false and executor.serviceAccountName to it, so only
    # Argo's own init/wait containers ever see its token, never the user's code.
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(WORKFLOW_SERVICE_ACCOUNT),
        "automountServiceAccountToken": False,
    }


def workflow_executor_binding() -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta("dshare-argo-executor"),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "dshare-argo-executor",
        },
        "subjects": [{"kind": "ServiceAccount", "name": WORKFLOW_SERVICE_ACCOUNT}],
    }


def per_user_namespace(kube_api_cidrs: tuple[str, ...] = KUBE_API_CIDRS) -> list[Obj]:
    """Objects every user namespace needs (apply with -n <user namespace>)."""
    return [
        default_deny_network_policy(),
        singleuser_network_policy(kube_api_cidrs=kube_api_cidrs),
        workflow_service_account(),
        workflow_executor_binding(),
    ]


# --- Rendering ----------------------------------------------------------------------------

HEADER = (
    "# Rendered by z2jh-values/dshare_manifests.py: edit that file, then run it with --write.\n"
)


def rendered(kube_api_cidrs: tuple[str, ...] = KUBE_API_CIDRS) -> dict[str, list[Obj]]:
    """File name under manifests/ -> the objects it holds, in order."""
    return {
        "hub-rbac.yaml": hub_rbac(),
        "broker-rbac.yaml": broker_rbac() + broker_scope_policy(),
        "brokers.yaml": brokers(),
        "network-policies.yaml": network_policies(),
        "argo-podspecpatch-policy.yaml": pod_spec_patch_policy(),
        "per-user-namespace/objects.yaml": per_user_namespace(kube_api_cidrs),
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        # a selector used twice is written out twice: operators read these files, and an
        # &id001 anchor says nothing to them
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    # config files embedded in ConfigMaps stay readable as block literals
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(objects: list[Obj]) -> str:
    return HEADER + "---\n".join(
        yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False) for obj in objects
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render dshare's raw Kubernetes manifests.")
    parser.add_argument("--write", action="store_true", help="write the files under manifests/")
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    parser.add_argument(
        "--kube-api-cidr",
        action="append",
        metavar="CIDR",
        help="address block of your Kubernetes API server's endpoints, which users' servers "
        f"may reach (repeat for more; default {', '.join(KUBE_API_CIDRS)}: kind and k3d)",
    )
    parser.add_argument(
        "--out", type=Path, help="write or check the files under this directory, not manifests/"
    )
    args = parser.parse_args(argv)
    out_dir = args.out or MANIFEST_DIR
    stale = []
    for name, objects in rendered(tuple(args.kube_api_cidr or KUBE_API_CIDRS)).items():
        path = out_dir / name
        text = dump(objects)
        if args.write:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        elif not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    if stale and (args.check or not args.write):
        print("out of date, run with --write: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

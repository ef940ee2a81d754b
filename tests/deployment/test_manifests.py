"""Raw Kubernetes manifests: rendered from their builders, valid for 1.32, least privilege."""

from __future__ import annotations

import copy
from pathlib import Path

import kubernetes_validate
import pytest

from .conftest import K8S_VERSION, Z2JH, load_all

MANIFESTS = sorted((Z2JH / "manifests").rglob("*.yaml"))
DOCS = [(path, i, doc) for path in MANIFESTS for i, doc in enumerate(load_all(path))]


def _id(item: tuple[Path, int, dict]) -> str:
    path, _, doc = item
    return f"{path.relative_to(Z2JH)}:{doc['kind']}/{doc['metadata']['name']}"


def test_checked_in_manifests_match_their_builders(manifests_module):
    rendered = manifests_module.rendered()
    assert sorted(rendered) == sorted(str(p.relative_to(Z2JH / "manifests")) for p in MANIFESTS)
    for name, objects in rendered.items():
        text = (Z2JH / "manifests" / name).read_text(encoding="utf-8")
        assert text == manifests_module.dump(objects), (
            f"{name} is stale: run python z2jh-values/dshare_manifests.py --write"
        )


def test_render_check_mode_reports_stale_files(manifests_module, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(manifests_module, "MANIFEST_DIR", tmp_path)
    assert manifests_module.main(["--check"]) == 1
    assert "out of date, run with --write: hub-rbac.yaml" in capsys.readouterr().err
    assert manifests_module.main(["--write"]) == 0
    assert manifests_module.main(["--check"]) == 0


@pytest.mark.parametrize("item", DOCS, ids=[_id(d) for d in DOCS])
def test_manifest_is_valid_kubernetes_1_32_strictly(item):
    kubernetes_validate.validate(item[2], K8S_VERSION, strict=True)


def test_strict_validation_rejects_an_unknown_field(manifests_module):
    deployment = manifests_module.broker_deployment("UiS")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    unexpected = "'securityContxt' was unexpected"
    with pytest.raises(kubernetes_validate.ValidationError, match=unexpected):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def _rules():
    for _path, _, doc in DOCS:
        if doc["kind"] in ("Role", "ClusterRole"):
            for rule in doc["rules"]:
                yield doc["metadata"]["name"], rule


def test_no_wildcards_in_any_rbac_rule():
    rules = list(_rules())
    assert len(rules) >= 10
    for role, rule in rules:
        for field in ("verbs", "resources", "apiGroups", "resourceNames"):
            assert "*" not in rule.get(field, []), f"{role}: wildcard in {field}: {rule}"


def test_secrets_are_reachable_only_in_each_brokers_own_namespace():
    # No cluster-wide right on Secrets for anyone; each org's broker holds one Role, in
    # its own dshare-secrets-<org> namespace, bound to its own ServiceAccount only.
    secret_roles = []
    for _path, _, doc in DOCS:
        if doc["kind"] not in ("Role", "ClusterRole"):
            continue
        if any("secrets" in rule["resources"] for rule in doc["rules"]):
            assert doc["kind"] == "Role", f"{doc['metadata']['name']} grants Secrets cluster-wide"
            secret_roles.append(doc["metadata"].get("namespace"))
    assert sorted(secret_roles) == [
        "dshare-secrets-uib",
        "dshare-secrets-uio",
        "dshare-secrets-uis",
    ]
    bindings = {
        doc["metadata"]["namespace"]: doc["subjects"]
        for _path, _, doc in DOCS
        if doc["kind"] == "RoleBinding"
        and doc["metadata"].get("namespace", "").startswith("dshare-secrets-")
    }
    assert bindings == {
        f"dshare-secrets-{org}": [
            {"kind": "ServiceAccount", "name": f"dshare-{org}", "namespace": "dshare"}
        ]
        for org in ("uis", "uio", "uib")
    }


def _rights(rules: list[dict]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def test_hub_cluster_wide_rights_are_exactly_the_justified_ones(manifests_module):
    # docs/security-model.md lists each of these with the reason the hub needs it
    role = next(
        d
        for _, _, d in DOCS
        if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "dshare-hub"
    )
    assert _rights(role["rules"]) == {
        ("", "namespaces"): {"get", "create"},
        ("", "pods"): {"get", "list", "watch", "create", "delete"},
        ("", "persistentvolumeclaims"): {"get", "list", "watch", "create", "delete"},
        ("", "events"): {"get", "list", "watch"},
        ("", "serviceaccounts"): {"get", "create", "delete"},
        ("", "serviceaccounts/token"): {"create"},
        ("rbac.authorization.k8s.io", "roles"): {"get", "create", "update", "delete"},
        ("rbac.authorization.k8s.io", "rolebindings"): {"get", "create", "update", "delete"},
        ("rbac.authorization.k8s.io", "clusterroles"): {"bind"},
        ("argoproj.io", "workflows"): {"get", "list", "watch"},
        ("networking.k8s.io", "networkpolicies"): {"get", "create"},
    }
    bind = next(r for r in role["rules"] if r["verbs"] == ["bind"])
    # the workflow executor's role, and the user's own org broker's rights in the user's
    # namespace (dshare-broker-runs): the hub grants only these
    assert bind["resourceNames"] == ["dshare-argo-executor", "dshare-broker-runs"]
    # the hub never touches PersistentVolumes or Secrets: the brokers do
    assert ("", "persistentvolumes") not in _rights(role["rules"])
    assert ("", "secrets") not in _rights(role["rules"])
    docs = (Z2JH.parent / "docs" / "security-model.md").read_text(encoding="utf-8")
    for _group, resource in _rights(role["rules"]):
        assert f"`{resource}`" in docs, f"{resource} not justified in docs/security-model.md"


def test_brokers_may_materialize_mounts_and_nothing_else():
    role = next(
        d
        for _, _, d in DOCS
        if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "dshare-broker"
    )
    # No get or list: another org's PersistentVolumes name its shares and buckets.
    assert _rights(role["rules"]) == {
        ("", "persistentvolumes"): {"create", "delete"},
        ("", "persistentvolumeclaims"): {"create", "delete"},
    }
    binding = next(
        d
        for _, _, d in DOCS
        if d["kind"] == "ClusterRoleBinding" and d["metadata"]["name"] == "dshare-broker"
    )
    assert [s["name"] for s in binding["subjects"]] == ["dshare-uis", "dshare-uio", "dshare-uib"]


def test_the_broker_scope_policy_binds_to_brokers_and_denies(manifests_module):
    # What it refuses is checked on the real API server (tests/cluster/test_broker_mounts.py).
    policy, binding = manifests_module.broker_scope_policy()
    assert policy["spec"]["matchConditions"][0]["expression"] == (
        "request.userInfo.username.startsWith('system:serviceaccount:dshare:dshare-')"
    )
    assert policy["spec"]["failurePolicy"] == "Fail"
    assert binding["spec"] == {"policyName": "dshare-broker-scope", "validationActions": ["Deny"]}


def test_podspecpatch_is_denied_everywhere_argo_reads_it(manifests_module):
    policy, binding = manifests_module.pod_spec_patch_policy()
    rule = policy["spec"]["matchConstraints"]["resourceRules"][0]
    assert rule["apiGroups"] == ["argoproj.io"]
    assert set(rule["resources"]) == {
        "workflows",
        "workflowtemplates",
        "clusterworkflowtemplates",
        "cronworkflows",
    }
    assert rule["operations"] == ["CREATE", "UPDATE"]
    expression = policy["spec"]["validations"][0]["expression"]
    for where in (
        "object.spec.podSpecPatch",
        "object.spec.templateDefaults.podSpecPatch",
        "t.podSpecPatch",
        "object.spec.workflowSpec.podSpecPatch",
    ):
        assert f"!has({where})" in expression
    assert binding["spec"]["validationActions"] == ["Deny"]


def test_broker_deployment_for_uis_as_a_whole(manifests_module):
    labels = {"app.kubernetes.io/name": "dshare-broker", "dshare.io/org": "UiS"}
    assert manifests_module.broker_deployment("UiS") == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "dshare-uis",
            "namespace": "dshare",
            "labels": {"app.kubernetes.io/part-of": "dshare", **labels},
        },
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {
                    "labels": {
                        "app.kubernetes.io/part-of": "dshare",
                        "hub.jupyter.org/network-access-hub": "true",
                        **labels,
                    }
                },
                "spec": {
                    "serviceAccountName": "dshare-uis",
                    "automountServiceAccountToken": True,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 1000,
                        "runAsGroup": 1000,
                        "fsGroup": 1000,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "broker",
                            "image": "dshare/hub:0.1.0",
                            "imagePullPolicy": "IfNotPresent",
                            "command": [
                                "dshare",
                                "broker",
                                "--org",
                                "UiS",
                                "--config",
                                "/etc/dshare/broker_config.py",
                            ],
                            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                            "env": [
                                {"name": "JUPYTERHUB_SERVICE_NAME", "value": "dshare-uis"},
                                {"name": "JUPYTERHUB_API_URL", "value": "http://hub:8081/hub/api"},
                                {
                                    "name": "JUPYTERHUB_SERVICE_PREFIX",
                                    "value": "/services/dshare-uis/",
                                },
                                {"name": "JUPYTERHUB_SERVICE_URL", "value": "http://0.0.0.0:8080"},
                                {
                                    "name": "JUPYTERHUB_API_TOKEN",
                                    "valueFrom": {
                                        "secretKeyRef": {
                                            "name": "hub",
                                            "key": "hub.services.dshare-uis.apiToken",
                                        }
                                    },
                                },
                                {
                                    "name": "DSHARE_KEYSTORE_URL",
                                    "valueFrom": {
                                        "secretKeyRef": {
                                            "name": "dshare-uis-secrets",
                                            "key": "keystore-url",
                                        }
                                    },
                                },
                            ],
                            "volumeMounts": [
                                {
                                    "name": "config",
                                    "mountPath": "/etc/dshare/broker_config.py",
                                    "subPath": "broker_config.py",
                                    "readOnly": True,
                                },
                                {"name": "kek", "mountPath": "/etc/dshare/kek", "readOnly": True},
                                {
                                    "name": "fabric",
                                    "mountPath": "/etc/dshare/fabric",
                                    "readOnly": True,
                                },
                                {"name": "tmp", "mountPath": "/tmp"},
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
                    ],
                    "volumes": [
                        {"name": "config", "configMap": {"name": "dshare-uis-config"}},
                        {
                            "name": "kek",
                            "secret": {
                                "secretName": "dshare-uis-secrets",
                                "defaultMode": 0o400,
                                "items": [{"key": "kek", "path": "kek"}],
                            },
                        },
                        {
                            "name": "fabric",
                            "secret": {"secretName": "dshare-uis-fabric", "defaultMode": 0o400},
                        },
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                    ],
                },
            },
        },
    }


def test_broker_service_matches_the_hub_service_url(manifests_module):
    service = manifests_module.broker_service("UiB")
    assert service["metadata"]["name"] == "dshare-uib"
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http"}]
    assert service["spec"]["selector"] == {
        "app.kubernetes.io/name": "dshare-broker",
        "dshare.io/org": "UiB",
    }


def test_broker_config_holds_paths_not_secrets(manifests_module):
    text = manifests_module.broker_config_map("UiO")["data"]["broker_config.py"]
    compile(text, "broker_config.py", "exec")
    assert "c.BrokerApp.org = 'UiO'" in text
    assert "/etc/dshare/kek/kek" in text
    assert "/etc/dshare/fabric/connection.json" in text
    assert "os.environ['DSHARE_KEYSTORE_URL']" in text
    assert "c.BrokerApp.ledger_kind = 'fabric'" in text


def test_every_pod_of_a_user_namespace_starts_with_no_network(manifests_module):
    # selected by nothing a user writes: job pods (and anything else Argo makes from a
    # user's Workflow) are isolated because no policy grants them anything
    policy = manifests_module.default_deny_network_policy()
    assert policy["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [],
        "egress": [],
    }
    assert "namespace" not in policy["metadata"]  # applied in each user namespace


def test_the_users_server_reaches_dns_hub_brokers_and_the_api_only(manifests_module):
    policy = manifests_module.singleuser_network_policy(kube_api_cidrs=("10.0.0.1/32",))
    hub_ns = {"matchLabels": {"kubernetes.io/metadata.name": "dshare"}}
    hub_or_proxy = {
        "matchLabels": {"app": "jupyterhub"},
        "matchExpressions": [{"key": "component", "operator": "In", "values": ["hub", "proxy"]}],
    }
    assert policy["spec"] == {
        "podSelector": {"matchLabels": {"component": "singleuser-server"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            {
                "from": [{"namespaceSelector": hub_ns, "podSelector": hub_or_proxy}],
                "ports": [{"protocol": "TCP", "port": 8888}],
            }
        ],
        "egress": [
            {
                "to": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                        },
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    }
                ],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            },
            {
                "to": [
                    {
                        "namespaceSelector": hub_ns,
                        "podSelector": {"matchLabels": {"app": "jupyterhub", "component": "hub"}},
                    }
                ],
                "ports": [{"protocol": "TCP", "port": 8081}],
            },
            {
                "to": [
                    {
                        "namespaceSelector": hub_ns,
                        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "dshare-broker"}},
                    }
                ],
                "ports": [{"protocol": "TCP", "port": 8080}],
            },
            {
                "to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}],
                "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}],
            },
        ],
    }


def test_a_broker_accepts_hub_proxy_and_its_own_orgs_servers(manifests_module):
    policy = manifests_module.broker_network_policy("UiO")
    assert policy["metadata"]["name"] == "dshare-broker-uio"
    assert policy["spec"]["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "dshare-broker", "dshare.io/org": "UiO"}
    }
    (rule,) = policy["spec"]["ingress"]
    assert rule == {
        "from": [
            {
                # same namespace only
                "podSelector": {
                    "matchLabels": {"app": "jupyterhub"},
                    "matchExpressions": [
                        {"key": "component", "operator": "In", "values": ["hub", "proxy"]}
                    ],
                }
            },
            {
                # by the labels the hub gave the namespace, never by a pod's own org label
                "namespaceSelector": {
                    "matchLabels": {"dshare.io/user-namespace": "true", "dshare.io/org": "UiO"}
                },
                "podSelector": {"matchLabels": {"component": "singleuser-server"}},
            },
        ],
        "ports": [{"protocol": "TCP", "port": 8080}],
    }
    assert [p["metadata"]["name"] for p in manifests_module.network_policies()[:3]] == [
        "dshare-broker-uis",
        "dshare-broker-uio",
        "dshare-broker-uib",
    ]


def test_render_takes_the_api_servers_address(manifests_module, tmp_path):
    assert (
        manifests_module.main(["--write", "--out", str(tmp_path), "--kube-api-cidr", "10.1.2.3/32"])
        == 0
    )
    text = (tmp_path / "per-user-namespace" / "objects.yaml").read_text(encoding="utf-8")
    assert "cidr: 10.1.2.3/32" in text
    assert "172.16.0.0/12" not in text


def test_job_pods_run_under_an_account_whose_token_is_not_mounted(manifests_module):
    sa = manifests_module.workflow_service_account()
    binding = manifests_module.workflow_executor_binding()
    assert sa["automountServiceAccountToken"] is False
    assert binding["roleRef"]["name"] == "dshare-argo-executor"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "dshare-workflow"}]

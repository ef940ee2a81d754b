"""Per-user manifests: whole dicts, strict schema validity, and the security rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dshare_hub.k8s import objects
from dshare_hub.k8s.names import dataset_dir_name, dns_name, label_value

from .checks import assert_pod_is_locked_down, assert_role_is_narrow, assert_valid

USER_META = {
    "name": "dshare-ann",
    "namespace": "jhub-ann",
    "labels": {
        "app.kubernetes.io/managed-by": "dshare",
        "dshare.io/component": "user-rbac",
        "dshare.io/user": "ann",
        "dshare.io/org": "UiS",
    },
    "annotations": {"dshare.io/user-name": "ann"},
}


def test_service_account_never_automounts_its_token() -> None:
    sa = objects.make_service_account(
        name="dshare-ann", namespace="jhub-ann", user="ann", org="UiS"
    )
    assert sa == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": USER_META,
        "automountServiceAccountToken": False,
    }
    assert_valid(sa)


def test_role_only_reads_workflows_and_pods() -> None:
    role = objects.make_role(name="dshare-ann", namespace="jhub-ann", user="ann", org="UiS")
    assert role == {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": USER_META,
        "rules": [
            {
                "apiGroups": ["argoproj.io"],
                "resources": ["workflows"],
                "verbs": ["get", "list", "watch"],
            },
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        ],
    }
    assert_valid(role)
    assert_role_is_narrow(role)
    # The builder hands out copies: a caller mutating one Role cannot widen the next.
    role["rules"][0]["verbs"].append("*")
    assert (
        "*"
        not in objects.make_role(name="a", namespace="b", user="c", org="d")["rules"][0]["verbs"]
    )


def test_role_binding_binds_only_the_users_service_account() -> None:
    rb = objects.make_role_binding(
        name="dshare-ann",
        namespace="jhub-ann",
        user="ann",
        org="UiS",
        service_account="dshare-ann",
        role="dshare-ann",
    )
    assert rb == {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": USER_META,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "dshare-ann"},
        "subjects": [{"kind": "ServiceAccount", "name": "dshare-ann", "namespace": "jhub-ann"}],
    }
    assert_valid(rb)


def test_token_request_is_bounded() -> None:
    tr = objects.make_token_request(
        audiences=["https://kubernetes.default.svc"], expiration_seconds=3600
    )
    assert tr == {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600},
    }
    assert_valid(tr)


@pytest.mark.parametrize("builder", ["token_request", "projected"])
def test_token_lifetime_under_ten_minutes_is_refused(builder: str) -> None:
    with pytest.raises(ValueError) as err:
        if builder == "token_request":
            objects.make_token_request(audiences=["a"], expiration_seconds=599)
        else:
            objects.make_projected_token_volume(audience="a", expiration_seconds=599)
    assert str(err.value) == "token expiration_seconds must be at least 600, got 599"


def test_projected_token_volume_holds_token_and_namespace() -> None:
    volume = objects.make_projected_token_volume(audience="dshare", expiration_seconds=3600)
    assert volume == {
        "name": "dshare-token",
        "projected": {
            "sources": [
                {
                    "serviceAccountToken": {
                        "audience": "dshare",
                        "expirationSeconds": 3600,
                        "path": "token",
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                        ]
                    }
                },
            ]
        },
    }


def _base_pod() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "jupyter-ann", "labels": {"component": "singleuser-server"}},
        "spec": {
            "automountServiceAccountToken": True,
            "securityContext": {"runAsUser": 1000, "fsGroup": 100},
            "containers": [
                {
                    "name": "notebook",
                    "image": "quay.io/jupyter/base-notebook:2025-01-01",
                    "env": [{"name": "JUPYTERHUB_USER", "value": "ann"}],
                    "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}],
                }
            ],
            "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-ann"}}],
        },
    }


def _parts(**kw: object) -> objects.PodParts:
    args: dict = {
        "user": "ann",
        "org": "UiS",
        "datasets_path": "/home/jovyan/datasets/",
        "token_volume": objects.make_projected_token_volume(
            audience="dshare", expiration_seconds=3600
        ),
        "service_account_name": "dshare-ann",
        "interactive": [objects.InteractiveMount(dir_name="Weather", claim_name="dshare-l1-r1")],
        "skeletons": {"Census 2020": ["a/b.csv", "c/"]},
        "skeleton_image": "quay.io/jupyter/base-notebook:2025-01-01",
        "uid": 1000,
    }
    args.update(kw)
    return objects.make_pod_parts(**args)


def test_pod_gets_read_only_data_skeletons_and_only_the_dshare_token() -> None:
    pod = objects.apply_pod_parts(_base_pod(), _parts())
    assert_valid(pod)
    assert_pod_is_locked_down(pod, token_path="/var/run/secrets/dshare")
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "dshare-ann"
    assert pod["metadata"]["labels"] == {
        "component": "singleuser-server",
        "dshare.io/user": "ann",
        "dshare.io/org": "UiS",
        "dshare.io/data-access": "interactive",
    }
    assert pod["metadata"]["annotations"] == {"dshare.io/user-name": "ann"}
    assert spec["volumes"] == [
        {"name": "home", "persistentVolumeClaim": {"claimName": "claim-ann"}},
        objects.make_projected_token_volume(audience="dshare", expiration_seconds=3600),
        {
            "name": "dshare-data-0",
            "persistentVolumeClaim": {"claimName": "dshare-l1-r1", "readOnly": True},
        },
        {"name": "dshare-skeletons", "emptyDir": {"sizeLimit": "16Mi"}},
    ]
    assert spec["containers"][0]["volumeMounts"] == [
        {"name": "home", "mountPath": "/home/jovyan"},
        {"name": "dshare-token", "mountPath": "/var/run/secrets/dshare", "readOnly": True},
        {"name": "dshare-data-0", "mountPath": "/home/jovyan/datasets/Weather", "readOnly": True},
        {
            "name": "dshare-skeletons",
            "mountPath": "/home/jovyan/datasets/Census 2020",
            "subPath": "Census 2020",
            "readOnly": True,
        },
    ]
    assert spec["containers"][0]["env"] == [{"name": "JUPYTERHUB_USER", "value": "ann"}]
    (init,) = spec["initContainers"]
    assert init == {
        "name": "dshare-skeleton",
        "image": "quay.io/jupyter/base-notebook:2025-01-01",
        "command": ["python3", "-c", objects.SKELETON_SCRIPT],
        "args": ["/dshare-skeletons", '{"Census 2020": ["a/b.csv", "c/"]}'],
        "volumeMounts": [{"name": "dshare-skeletons", "mountPath": "/dshare-skeletons"}],
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
            "runAsUser": 1000,
        },
        "resources": {
            "requests": {"cpu": "10m", "memory": "32Mi"},
            "limits": {"cpu": "500m", "memory": "128Mi"},
        },
    }


def test_pod_without_leases_is_labelled_none_and_has_no_init_container() -> None:
    pod = objects.apply_pod_parts(_base_pod(), _parts(interactive=[], skeletons={}))
    assert_valid(pod)
    assert pod["metadata"]["labels"]["dshare.io/data-access"] == "none"
    assert "initContainers" not in pod["spec"]
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["home", "dshare-token"]


def test_skeleton_only_pod_is_labelled_skeleton() -> None:
    pod = objects.apply_pod_parts(_base_pod(), _parts(interactive=[]))
    assert pod["metadata"]["labels"]["dshare.io/data-access"] == "skeleton"


def test_operator_token_volume_at_the_same_path_is_replaced() -> None:
    base = _base_pod()
    base["spec"]["volumes"].append({"name": "old", "secret": {"secretName": "cluster-admin"}})
    base["spec"]["containers"][0]["volumeMounts"].append(
        {"name": "old", "mountPath": "/var/run/secrets/dshare"}
    )
    pod = objects.apply_pod_parts(base, _parts())
    mounts = pod["spec"]["containers"][0]["volumeMounts"]
    assert [m["name"] for m in mounts if m["mountPath"] == "/var/run/secrets/dshare"] == [
        "dshare-token"
    ]


def test_root_notebook_is_refused_with_a_clear_message() -> None:
    base = _base_pod()
    base["spec"]["securityContext"]["runAsUser"] = 0
    with pytest.raises(ValueError) as err:
        objects.apply_pod_parts(base, _parts())
    assert str(err.value) == (
        "the notebook container is set to run as uid 0 (root) but "
        "DShareKubeSpawner.enforce_non_root is True: set KubeSpawner.uid to the "
        "image's non-root user (e.g. 1000)"
    )
    # The same pod is accepted when the operator opts out.
    pod = objects.apply_pod_parts(base, _parts(), enforce_non_root=False)
    assert "runAsNonRoot" not in pod["spec"]["containers"][0].get("securityContext", {})


def test_apply_does_not_mutate_its_input() -> None:
    base = _base_pod()
    before = json.dumps(base, sort_keys=True)
    objects.apply_pod_parts(base, _parts())
    assert json.dumps(base, sort_keys=True) == before


def test_skeleton_script_writes_structure_and_stays_inside_its_root(tmp_path: Path) -> None:
    root = tmp_path / "skel"
    root.mkdir()
    outside = tmp_path / "escaped"
    skeletons = {
        "Census": ["a/b.csv", "c/", "../../escaped", "/abs"],
        "..": ["x"],
    }
    subprocess.run(
        [sys.executable, "-c", objects.SKELETON_SCRIPT, str(root), json.dumps(skeletons)],
        check=True,
    )
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert files == ["Census", "Census/a", "Census/a/b.csv", "Census/c"]
    assert (root / "Census/a/b.csv").stat().st_size == 0
    assert not outside.exists()
    assert not (tmp_path / "x").exists()


def test_names_are_valid_and_distinct() -> None:
    assert label_value("ann") == "ann"
    assert label_value("Ann@uis.no") != label_value("ann-uis.no")
    assert label_value("Ann@uis.no").startswith("ann-uis-no-")
    assert len(label_value("x" * 100)) <= 63
    assert dns_name("dshare", "ann") == "dshare-ann"
    assert dns_name("dshare", "Ann") != dns_name("dshare", "ann")
    long = dns_name("dshare", "a" * 200)
    assert len(long) <= 63 and long.startswith("dshare-a")
    assert dataset_dir_name("../../etc/passwd") == "_.._etc_passwd"
    assert dataset_dir_name("..").startswith("dataset-")
    assert dataset_dir_name("Census 2020") == "Census 2020"

"""Checks shared by the k8s and spawner tests: schema validity and dshare's security rules."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

K8S_VERSION = "1.32"


def assert_valid(manifest: dict[str, Any]) -> None:
    """Strict validation (no unknown fields) against the Kubernetes 1.32 schema."""
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def assert_pod_is_locked_down(pod: dict[str, Any], *, token_path: str) -> None:
    """The rules a user's notebook pod must obey whatever else is configured."""
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for container in spec["containers"] + spec.get("initContainers", []):
        for env in container.get("env") or []:
            assert "valueFrom" not in env or "secretKeyRef" not in env["valueFrom"], env
            assert "dshare-token" not in str(env.get("value", "")), env
        assert not container.get("envFrom"), container["name"]
        for mount in container.get("volumeMounts") or []:
            source = volumes[mount["name"]]
            if "persistentVolumeClaim" in source and source["persistentVolumeClaim"][
                "claimName"
            ].startswith("dshare-"):
                assert mount["readOnly"] is True, mount
                assert source["persistentVolumeClaim"]["readOnly"] is True, source
            if mount["name"] == "dshare-skeletons" and container["name"] == "notebook":
                assert mount["readOnly"] is True, mount
        assert container["securityContext"]["runAsNonRoot"] is True, container["name"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
    token_mounts = [
        m
        for c in spec["containers"]
        for m in c.get("volumeMounts") or []
        if m["mountPath"] == token_path
    ]
    assert len(token_mounts) == 1 and token_mounts[0]["readOnly"] is True
    # No other Kubernetes token may be projected into the pod.
    for volume in spec.get("volumes", []):
        for source in (volume.get("projected") or {}).get("sources", []):
            if "serviceAccountToken" in source:
                assert volume["name"] == "dshare-token", volume


def assert_role_is_narrow(role: dict[str, Any]) -> None:
    for rule in role["rules"]:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], rule
        assert "secrets" not in rule["resources"]
        assert "persistentvolumes" not in rule["resources"]
        assert "persistentvolumeclaims" not in rule["resources"]
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])

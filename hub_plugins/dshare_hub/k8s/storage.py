"""Pure builders of what a lease materializes into: Secret, PersistentVolume, claim.

Storage details are decrypted by the owner's broker just before these are built. Secret values
go only into the Secret, which lives in the broker's own namespace (never the user's: a pod in
the user's namespace could mount any Secret there; never one shared by orgs: each broker may
read the Secrets of its namespace). The PV and the claim hold names and addresses only.
Every PV is pre-bound to its claim, read-only, and `Retain`, so deleting it never asks a
driver to delete the owner's share or bucket.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .names import (
    ANNOTATION_DATASET,
    ANNOTATION_EXPIRES,
    ANNOTATION_LEASE,
    ANNOTATION_RUN,
    ANNOTATION_USER,
    LABEL_COMPONENT,
    LABEL_LEASE,
    LABEL_MANAGED_BY,
    LABEL_OWNER_ORG,
    LABEL_RUN,
    LABEL_USER,
    MANAGED_BY,
    label_value,
)

STORAGE_TYPES = ("azurefile", "s3", "nfs", "gcs", "hostpath", "local")

# Per type: required details, optional details. Anything else is refused so a typo
# (`acount_key`) is caught at materialization, not as a mount failure on a node.
_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "azurefile": (("account_name", "account_key", "share_name"), ("capacity",)),
    "s3": (("bucket", "region", "access_key_id", "secret_access_key"), ("prefix", "capacity")),
    "nfs": (("server", "path"), ("capacity",)),
    "gcs": (("bucket",), ("service_account_json", "capacity")),
    "hostpath": (("path",), ("node", "capacity")),
    "local": (("path", "node"), ("capacity",)),
}


class StorageDetailsError(ValueError):
    """Storage details that cannot be materialized; the message names the field, never a value."""


@dataclass(frozen=True)
class MaterializedNames:
    """Names of the objects one (lease, run) materializes into."""

    secret: str
    volume: str
    claim: str
    namespace: str
    secret_namespace: str


def check_details(storage_type: str, details: Mapping[str, Any]) -> None:
    """Raise StorageDetailsError naming the first missing, empty or unknown field."""
    if storage_type not in _FIELDS:
        raise StorageDetailsError(
            f"storage type {storage_type!r} is not supported; use one of: "
            + ", ".join(STORAGE_TYPES)
        )
    required, optional = _FIELDS[storage_type]
    for key in required:
        value = details.get(key)
        if not isinstance(value, str) or not value.strip():
            raise StorageDetailsError(
                f"storage details for type {storage_type!r} need a non-empty string "
                f"{key!r}; ask the dataset's owner to update its storage details"
            )
    unknown = sorted(set(details) - set(required) - set(optional))
    if unknown:
        raise StorageDetailsError(
            f"storage details for type {storage_type!r} have unknown field {unknown[0]!r}; "
            f"allowed: {', '.join(required + optional)}"
        )
    if storage_type in ("hostpath", "local") and not str(details["path"]).startswith("/"):
        raise StorageDetailsError(
            f"storage details for type {storage_type!r}: 'path' must be absolute"
        )


def lease_labels(*, lease_id: str, run_id: str, owner_org: str, user: str) -> dict[str, str]:
    """Labels by which the broker and its reaper find and delete a materialization."""
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_COMPONENT: "lease-mount",
        LABEL_LEASE: label_value(lease_id),
        LABEL_RUN: label_value(run_id),
        LABEL_OWNER_ORG: label_value(owner_org),
        LABEL_USER: label_value(user),
    }


def _meta(
    name: str, labels: Mapping[str, str], annotations: Mapping[str, str], namespace: str | None
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": dict(labels),
        "annotations": dict(annotations),
    }
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def has_credentials(storage_type: str, details: Mapping[str, Any]) -> bool:
    """Whether the PV's driver reads a credential from the mount's Secret."""
    return storage_type in ("azurefile", "s3") or bool(
        storage_type == "gcs" and details.get("service_account_json")
    )


def make_storage_secret(
    *,
    storage_type: str,
    details: Mapping[str, Any],
    names: MaterializedNames,
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The mount's Secret in the broker's own namespace: the credential a driver reads (none
    for storage without one) and the broker's record of the mount, which its reaper lists
    there after a restart: the broker may not list PersistentVolumes, which name every
    org's storage."""
    data: dict[str, str] = {}
    if storage_type == "azurefile":
        # Key names the Azure Files CSI driver reads.
        data = {
            "azurestorageaccountname": details["account_name"],
            "azurestorageaccountkey": details["account_key"],
        }
    elif storage_type == "s3":
        # Key names of the Mountpoint CSI driver's credential secret.
        data = {
            "key_id": details["access_key_id"],
            "access_key": details["secret_access_key"],
        }
    elif has_credentials(storage_type, details):
        data = {"key.json": details["service_account_json"]}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(names.secret, labels, annotations or {}, names.secret_namespace),
        "type": "Opaque",
        "stringData": data,
    }


def _volume_source(
    storage_type: str, details: Mapping[str, Any], names: MaterializedNames, has_secret: bool
) -> dict[str, Any]:
    secret_ref = {"name": names.secret, "namespace": names.secret_namespace}
    if storage_type == "azurefile":
        return {
            "csi": {
                "driver": "file.csi.azure.com",
                "readOnly": True,
                # Unique per materialization: the driver caches mounts by handle.
                "volumeHandle": names.volume,
                "volumeAttributes": {"shareName": details["share_name"]},
                "nodeStageSecretRef": secret_ref,
            },
            "mountOptions": ["ro", "dir_mode=0555", "file_mode=0444"],
        }
    if storage_type == "s3":
        options = ["read-only", f"region {details['region']}"]
        if details.get("prefix"):
            options.append(f"prefix {details['prefix'].strip('/')}/")
        return {
            "csi": {
                "driver": "s3.csi.aws.com",
                "readOnly": True,
                "volumeHandle": names.volume,
                "volumeAttributes": {"bucketName": details["bucket"]},
                "nodePublishSecretRef": secret_ref,
            },
            "mountOptions": options,
        }
    if storage_type == "gcs":
        csi: dict[str, Any] = {
            "driver": "gcsfuse.csi.storage.gke.io",
            "readOnly": True,
            # The GCS FUSE driver takes the bucket name as the volume handle.
            "volumeHandle": details["bucket"],
        }
        if has_secret:
            csi["nodePublishSecretRef"] = secret_ref
        return {"csi": csi, "mountOptions": ["implicit-dirs", "o=ro"]}
    if storage_type == "nfs":
        return {
            "nfs": {"server": details["server"], "path": details["path"], "readOnly": True},
            "mountOptions": ["ro"],
        }
    if storage_type == "local" or (storage_type == "hostpath" and details.get("node")):
        return {
            "local": {"path": details["path"]},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": [details["node"]],
                                }
                            ]
                        }
                    ]
                }
            },
        }
    return {"hostPath": {"path": details["path"], "type": "Directory"}}


def make_persistent_volume(
    *,
    storage_type: str,
    details: Mapping[str, Any],
    names: MaterializedNames,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
) -> dict[str, Any]:
    """A read-only, Retain PersistentVolume pre-bound to the run's claim."""
    check_details(storage_type, details)
    source = _volume_source(
        storage_type,
        details,
        names,
        has_secret=has_credentials(storage_type, details),
    )
    spec: dict[str, Any] = {
        "capacity": {"storage": details.get("capacity") or "1Gi"},
        "accessModes": ["ReadOnlyMany"],
        "persistentVolumeReclaimPolicy": "Retain",
        "storageClassName": "",
        "volumeMode": "Filesystem",
        "claimRef": {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "namespace": names.namespace,
            "name": names.claim,
        },
        **source,
    }
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": _meta(names.volume, labels, annotations, None),
        "spec": spec,
    }


def make_persistent_volume_claim(
    *,
    names: MaterializedNames,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    capacity: str = "1Gi",
) -> dict[str, Any]:
    """The claim in the user's namespace, bound by name to its PersistentVolume."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(names.claim, labels, annotations, names.namespace),
        "spec": {
            "accessModes": ["ReadOnlyMany"],
            "storageClassName": "",
            "volumeName": names.volume,
            "volumeMode": "Filesystem",
            "resources": {"requests": {"storage": capacity}},
        },
    }


def lease_annotations(
    *, user: str, dataset: str, expires_at: str, lease_id: str, run_id: str
) -> dict[str, str]:
    """Annotations a person reading `kubectl describe` needs, and the raw ids (a label may
    hold only a hashed form); nothing secret."""
    return {
        ANNOTATION_USER: user,
        ANNOTATION_DATASET: dataset,
        ANNOTATION_EXPIRES: expires_at,
        ANNOTATION_LEASE: lease_id,
        ANNOTATION_RUN: run_id,
    }

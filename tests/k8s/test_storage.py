"""Lease storage manifests: one whole PV per storage type, secrets only in the Secret."""

from __future__ import annotations

import json
import secrets

import pytest

from dshare_hub.k8s.storage import (
    MaterializedNames,
    StorageDetailsError,
    check_details,
    lease_labels,
    make_persistent_volume,
    make_persistent_volume_claim,
    make_storage_secret,
)

from .checks import assert_valid

NAMES = MaterializedNames(
    secret="dshare-l1-r1",
    volume="dshare-l1-r1",
    claim="dshare-l1-r1",
    namespace="jhub-ann",
    secret_namespace="dshare-secrets",
)
LABELS = lease_labels(lease_id="l1", run_id="r1", owner_org="UiO", user="ann")
COMMON_SPEC = {
    "capacity": {"storage": "1Gi"},
    "accessModes": ["ReadOnlyMany"],
    "persistentVolumeReclaimPolicy": "Retain",
    "storageClassName": "",
    "volumeMode": "Filesystem",
    "claimRef": {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": "jhub-ann",
        "name": "dshare-l1-r1",
    },
}
SECRET_REF = {"name": "dshare-l1-r1", "namespace": "dshare-secrets"}


def _details(kind: str) -> dict[str, str]:
    # Secret values generated per test run: nothing secret-looking is committed.
    key = secrets.token_urlsafe(24)
    return {
        "azurefile": {"account_name": "acct", "account_key": key, "share_name": "share"},
        "s3": {
            "bucket": "b",
            "region": "eu-north-1",
            "access_key_id": "AKIA" + key[:8],
            "secret_access_key": key,
            "prefix": "/data/",
        },
        "nfs": {"server": "nfs.uio.no", "path": "/exports/weather"},
        "gcs": {"bucket": "gb", "service_account_json": json.dumps({"private_key": key})},
        "hostpath": {"path": "/srv/data/weather"},
        "local": {"path": "/srv/data/weather", "node": "node-1"},
    }[kind]


EXPECTED_SOURCE = {
    "azurefile": {
        "csi": {
            "driver": "file.csi.azure.com",
            "readOnly": True,
            "volumeHandle": "dshare-l1-r1",
            "volumeAttributes": {"shareName": "share"},
            "nodeStageSecretRef": SECRET_REF,
        },
        "mountOptions": ["ro", "dir_mode=0555", "file_mode=0444"],
    },
    "s3": {
        "csi": {
            "driver": "s3.csi.aws.com",
            "readOnly": True,
            "volumeHandle": "dshare-l1-r1",
            "volumeAttributes": {"bucketName": "b"},
            "nodePublishSecretRef": SECRET_REF,
        },
        "mountOptions": ["read-only", "region eu-north-1", "prefix data/"],
    },
    "nfs": {
        "nfs": {"server": "nfs.uio.no", "path": "/exports/weather", "readOnly": True},
        "mountOptions": ["ro"],
    },
    "gcs": {
        "csi": {
            "driver": "gcsfuse.csi.storage.gke.io",
            "readOnly": True,
            "volumeHandle": "gb",
            "nodePublishSecretRef": SECRET_REF,
        },
        "mountOptions": ["implicit-dirs", "o=ro"],
    },
    "hostpath": {"hostPath": {"path": "/srv/data/weather", "type": "Directory"}},
    "local": {
        "local": {"path": "/srv/data/weather"},
        "nodeAffinity": {
            "required": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {
                                "key": "kubernetes.io/hostname",
                                "operator": "In",
                                "values": ["node-1"],
                            }
                        ]
                    }
                ]
            }
        },
    },
}


@pytest.mark.parametrize("kind", sorted(EXPECTED_SOURCE))
def test_persistent_volume_per_storage_type(kind: str) -> None:
    details = _details(kind)
    pv = make_persistent_volume(
        storage_type=kind, details=details, names=NAMES, labels=LABELS, annotations={"a": "b"}
    )
    assert pv == {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "dshare-l1-r1", "labels": LABELS, "annotations": {"a": "b"}},
        "spec": {**COMMON_SPEC, **EXPECTED_SOURCE[kind]},
    }
    assert_valid(pv)
    text = json.dumps(pv)
    for field in ("account_key", "secret_access_key", "service_account_json"):
        if field in details:
            assert details[field] not in text


@pytest.mark.parametrize("kind", ["azurefile", "s3", "gcs"])
def test_credentials_go_only_into_a_secret_in_the_brokers_namespace(kind: str) -> None:
    details = _details(kind)
    secret = make_storage_secret(storage_type=kind, details=details, names=NAMES, labels=LABELS)
    assert secret is not None
    assert_valid(secret)
    assert secret["metadata"]["namespace"] == "dshare-secrets"
    expected = {
        "azurefile": {
            "azurestorageaccountname": "acct",
            "azurestorageaccountkey": details.get("account_key"),
        },
        "s3": {
            "key_id": details.get("access_key_id"),
            "access_key": details.get("secret_access_key"),
        },
        "gcs": {"key.json": details.get("service_account_json")},
    }[kind]
    assert secret["stringData"] == expected


@pytest.mark.parametrize("kind", ["nfs", "hostpath", "local"])
def test_types_without_credentials_get_a_record_without_data(kind: str) -> None:
    # The broker's record of the mount, which its reaper lists: no credential in it.
    secret = make_storage_secret(
        storage_type=kind, details=_details(kind), names=NAMES, labels=LABELS
    )
    assert secret == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "dshare-l1-r1",
            "namespace": "dshare-secrets",
            "labels": LABELS,
            "annotations": {},
        },
        "type": "Opaque",
        "stringData": {},
    }


def test_claim_is_read_only_and_bound_by_name() -> None:
    pvc = make_persistent_volume_claim(names=NAMES, labels=LABELS, annotations={})
    assert pvc == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": "dshare-l1-r1",
            "namespace": "jhub-ann",
            "labels": LABELS,
            "annotations": {},
        },
        "spec": {
            "accessModes": ["ReadOnlyMany"],
            "storageClassName": "",
            "volumeName": "dshare-l1-r1",
            "volumeMode": "Filesystem",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    assert_valid(pvc)


def test_lease_labels() -> None:
    assert LABELS == {
        "app.kubernetes.io/managed-by": "dshare",
        "dshare.io/component": "lease-mount",
        "dshare.io/lease": "l1",
        "dshare.io/run": "r1",
        "dshare.io/owner-org": "UiO",
        "dshare.io/user": "ann",
    }


@pytest.mark.parametrize(
    ("kind", "details", "message"),
    [
        (
            "ftp",
            {},
            "storage type 'ftp' is not supported; use one of: azurefile, s3, nfs, gcs, "
            "hostpath, local",
        ),
        (
            "s3",
            {"bucket": "b", "region": "r", "access_key_id": "a"},
            "storage details for type 's3' need a non-empty string 'secret_access_key'; ask the "
            "dataset's owner to update its storage details",
        ),
        (
            "nfs",
            {"server": " ", "path": "/x"},
            "storage details for type 'nfs' need a non-empty string 'server'; ask the dataset's "
            "owner to update its storage details",
        ),
        (
            "azurefile",
            {"account_name": "a", "account_key": "k", "share_name": "s", "acount_key": "k"},
            "storage details for type 'azurefile' have unknown field 'acount_key'; allowed: "
            "account_name, account_key, share_name, capacity",
        ),
        (
            "hostpath",
            {"path": "relative/dir"},
            "storage details for type 'hostpath': 'path' must be absolute",
        ),
        (
            "local",
            {"path": "/x"},
            "storage details for type 'local' need a non-empty string 'node'; ask the dataset's "
            "owner to update its storage details",
        ),
    ],
)
def test_bad_details_are_refused_naming_the_field(kind: str, details: dict, message: str) -> None:
    with pytest.raises(StorageDetailsError) as err:
        check_details(kind, details)
    assert str(err.value) == message

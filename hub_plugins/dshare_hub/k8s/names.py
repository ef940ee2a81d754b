"""Label keys and the rules that turn user, org and dataset names into valid Kubernetes names.

User names come from an identity provider and may hold `@`, capitals or be too long; a
Kubernetes name or label value that is rejected would fail a spawn far from its cause, so
everything that reaches a manifest goes through these functions.
"""

from __future__ import annotations

import hashlib
import re

LABEL_USER = "dshare.io/user"
LABEL_ORG = "dshare.io/org"
LABEL_DATA_ACCESS = "dshare.io/data-access"
LABEL_LEASE = "dshare.io/lease"
LABEL_RUN = "dshare.io/run"
LABEL_OWNER_ORG = "dshare.io/owner-org"
LABEL_COMPONENT = "dshare.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_USER_NAMESPACE = "dshare.io/user-namespace"
# Pod Security admission's level for a namespace: see objects.user_namespace_labels.
LABEL_POD_SECURITY = "pod-security.kubernetes.io/enforce"
MANAGED_BY = "dshare"

# The raw (unslugged) user name travels as an annotation: labels cannot hold every name.
ANNOTATION_USER = "dshare.io/user-name"
ANNOTATION_EXPIRES = "dshare.io/expires-at"
ANNOTATION_DATASET = "dshare.io/dataset"
ANNOTATION_LEASE = "dshare.io/lease-id"
ANNOTATION_RUN = "dshare.io/run-id"
# On a mount's record (its Secret): the user namespace its claim is in.
ANNOTATION_CLAIM_NAMESPACE = "dshare.io/claim-namespace"

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS_LABEL_CHARS = re.compile(r"[^a-z0-9-]+")


def _digest(raw: str, n: int = 8) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:n]


def label_value(raw: str) -> str:
    """`raw` if it is a valid label value, else a readable slug plus a hash of `raw`.

    The hash keeps two different names that slug alike (`Ann@x`, `ann-x`) apart.
    """
    if len(raw) <= 63 and _LABEL_VALUE.match(raw):
        return raw
    slug = _DNS_LABEL_CHARS.sub("-", raw.lower()).strip("-")[:50].strip("-")
    return f"{slug}-{_digest(raw)}" if slug else f"x-{_digest(raw)}"


def dns_name(prefix: str, raw: str, max_length: int = 63) -> str:
    """A DNS-1123 label `<prefix>-<slug of raw>`, hashed when the slug is not `raw` itself."""
    slug = _DNS_LABEL_CHARS.sub("-", raw.lower()).strip("-")
    if slug == raw and len(prefix) + 1 + len(slug) <= max_length:
        return f"{prefix}-{slug}"
    room = max_length - len(prefix) - 2 - 8
    slug = slug[:room].strip("-")
    return f"{prefix}-{slug}-{_digest(raw)}" if slug else f"{prefix}-{_digest(raw)}"


def dataset_dir_name(name: str) -> str:
    """A single, safe path segment for a dataset's directory under ~/datasets.

    Dataset names are chosen by another organization; a `/` or `..` must never let them
    place files outside the datasets directory.
    """
    cleaned = re.sub(r"[^A-Za-z0-9._ -]+", "_", name).strip(" .")
    return cleaned[:100] or f"dataset-{_digest(name)}"

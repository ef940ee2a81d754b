"""The owner broker's Kubernetes materializer: a lease for a run becomes Secret + PV + claim.

Implements `dshare_hub.broker.materialize.Materializer`. All state lives in the cluster:
each mount's Secret in the broker's own namespace is its record (labels: lease, run, owner
org, user; annotations: where the claim is), so a restarted broker rebuilds its view by
listing its own namespace, the one place its RBAC lets it list. Objects are created Secret
first, claim last: a claim that exists always has its volume and credentials, and a crash
part-way leaves a record that `release` finds, deleting claim, volume, then the record.
"""

from __future__ import annotations

import logging
from typing import Any

from ..broker.materialize import MaterializeError, schema_columns
from ..broker.redaction import RedactionError, decide
from .api import KubeApi, KubeApiError, selector
from .names import (
    ANNOTATION_CLAIM_NAMESPACE,
    ANNOTATION_EXPIRES,
    ANNOTATION_LEASE,
    ANNOTATION_RUN,
    ANNOTATION_USER,
    LABEL_COMPONENT,
    LABEL_LEASE,
    LABEL_MANAGED_BY,
    LABEL_OWNER_ORG,
    LABEL_RUN,
    MANAGED_BY,
    dns_name,
    label_value,
)
from .storage import (
    MaterializedNames,
    StorageDetailsError,
    check_details,
    lease_annotations,
    lease_labels,
    make_persistent_volume,
    make_persistent_volume_claim,
    make_storage_secret,
)

log = logging.getLogger(__name__)

_BASE = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_COMPONENT: "lease-mount"}


def _user_slug(user: str) -> str:
    # The same slug KubeSpawner 7 uses for {username}, so both sides name one namespace.
    from kubespawner.slugs import safe_slug

    return str(safe_slug(user))


def refuse_redacted(asset: dict[str, Any], lease: dict[str, Any]) -> None:
    """A PV leads straight to the storage, so nothing here can make a redacted copy: a
    dataset whose policy hides columns from this lessee is not mounted at all (never raw)."""
    try:
        redacts = decide(asset, lease).redacts
    except RedactionError as error:
        raise MaterializeError(
            "REDACTION_FAILED",
            f"asset '{asset.get('id')}' is not mounted: its {error.message}; its owner must "
            "fix the policy",
        ) from None
    if redacts:
        raise MaterializeError(
            "REDACTION_UNAVAILABLE",
            f"asset '{asset.get('id')}' hides columns from {lease.get('lessee_org')} and the "
            "Kubernetes deployment cannot make redacted copies yet; nothing is mounted raw "
            "(run it on the embedded deployment, or ask the owner for a dataset without "
            "those columns)",
        )


class KubeMaterializer:
    """Materialize leased datasets as read-only claims in the lessee's namespace.

    `namespace_template` must name the same namespace as the spawner's
    (KubeSpawner.user_namespace_template); fields: {username} (KubeSpawner's safe slug),
    {hubnamespace}. Secrets go to `secret_namespace`, this org's own namespace, where no user
    can start pods and no other org's broker holds a right. `owner_org` is the broker's org:
    it only ever lists and releases what it mounted itself.
    """

    def __init__(
        self,
        api: KubeApi,
        *,
        namespace_template: str = "{hubnamespace}-{username}",
        hub_namespace: str = "jhub",
        secret_namespace: str,
        owner_org: str,
    ) -> None:
        self.api = api
        self.owner_org = owner_org
        self.namespace_template = namespace_template
        self.hub_namespace = hub_namespace
        self.secret_namespace = secret_namespace

    def namespace_for(self, user: str) -> str:
        return self.namespace_template.format(
            username=_user_slug(user), hubnamespace=self.hub_namespace
        )

    def names_for(self, *, lease_id: str, run_id: str, user: str) -> MaterializedNames:
        name = dns_name("dshare", f"{lease_id}-{run_id}".lower())
        return MaterializedNames(
            secret=name,
            volume=name,
            claim=name,
            namespace=self.namespace_for(user),
            secret_namespace=self.secret_namespace,
        )

    async def materialize(
        self,
        *,
        asset: dict[str, Any],
        details: dict[str, Any],
        lease: dict[str, Any],
        run_id: str,
        user: str,
    ) -> dict[str, Any]:
        refuse_redacted(asset, lease)
        storage_type = str(asset.get("storage_type") or "")
        try:
            check_details(storage_type, details)
        except StorageDetailsError as exc:
            raise MaterializeError("STORAGE_INVALID", f"asset '{asset.get('id')}': {exc}") from None
        lease_id = str(lease["id"])
        expires_at = str(lease.get("expires_at") or "")
        names = self.names_for(lease_id=lease_id, run_id=run_id, user=user)
        labels = lease_labels(
            lease_id=lease_id,
            run_id=run_id,
            owner_org=str(asset.get("owner_org") or ""),
            user=user,
        )
        annotations = lease_annotations(
            user=user,
            dataset=str(asset.get("id") or ""),
            expires_at=expires_at,
            lease_id=lease_id,
            run_id=run_id,
        )
        annotations = {**annotations, ANNOTATION_CLAIM_NAMESPACE: names.namespace}
        secret = make_storage_secret(
            storage_type=storage_type,
            details=details,
            names=names,
            labels=labels,
            annotations=annotations,
        )
        volume = make_persistent_volume(
            storage_type=storage_type,
            details=details,
            names=names,
            labels=labels,
            annotations=annotations,
        )
        claim = make_persistent_volume_claim(
            names=names,
            labels=labels,
            annotations=annotations,
            capacity=volume["spec"]["capacity"]["storage"],
        )
        try:
            # Replace: the same run asking again after a key rotation gets fresh values.
            await self.api.create(secret, replace=True)
            await self.api.create(volume)
            await self.api.create(claim)
        except KubeApiError as exc:
            # The server's reason may quote the body; only the status and action are shown.
            log.error(
                "materializing lease %s for run %s failed: HTTP %s", lease_id, run_id, exc.status
            )
            raise MaterializeError(
                "STORAGE_UNAVAILABLE",
                f"could not create the volume for lease '{lease_id}' "
                f"(Kubernetes API HTTP {exc.status} on {exc.action}); try again, and if it "
                "persists ask your administrator",
            ) from None
        return {
            "lease_id": lease_id,
            "claim_name": names.claim,
            "namespace": names.namespace,
            "expires_at": expires_at,
            # The owner's release policy, for the gate step the user's broker adds.
            "dataset_id": str(asset.get("id") or ""),
            "dataset_name": asset.get("name") or "",
            "release": (asset.get("policy") or {}).get("release") or {},
            "columns": schema_columns(asset),  # for the gate's disclosure checks
        }

    def _selector(self, **wanted: str) -> str:
        return selector({**_BASE, LABEL_OWNER_ORG: label_value(self.owner_org), **wanted})

    async def _records(self, sel: str) -> list[dict[str, Any]]:
        return await self.api.list("Secret", label_selector=sel, namespace=self.secret_namespace)

    async def release(self, *, lease_id: str | None = None, run_id: str | None = None) -> int:
        if lease_id is None and run_id is None:
            raise ValueError("release needs a lease_id, a run_id or both")
        wanted = {}
        if lease_id is not None:
            wanted[LABEL_LEASE] = label_value(lease_id)
        if run_id is not None:
            wanted[LABEL_RUN] = label_value(run_id)
        released = 0
        for record in await self._records(self._selector(**wanted)):
            meta = record["metadata"]
            namespace = (meta.get("annotations") or {}).get(ANNOTATION_CLAIM_NAMESPACE)
            # Claim first (what pods use), then volume, then the record and credential: at
            # every step what remains is consistent, and a crash leaves the record for the
            # next pass. Claim, volume and Secret share one name.
            if namespace:
                await self.api.delete("PersistentVolumeClaim", meta["name"], namespace)
            await self.api.delete("PersistentVolume", meta["name"])
            await self.api.delete("Secret", meta["name"], self.secret_namespace)
            released += 1
        return released

    async def list_materialized(self) -> list[dict[str, Any]]:
        """One record per mount this org's broker made, read from its own Secret namespace."""
        records = []
        for obj in await self._records(self._selector()):
            meta = obj["metadata"]
            labels = meta.get("labels") or {}
            annotations = meta.get("annotations") or {}
            records.append(
                {
                    "lease_id": annotations.get(ANNOTATION_LEASE, labels.get(LABEL_LEASE)),
                    "run_id": annotations.get(ANNOTATION_RUN, labels.get(LABEL_RUN)),
                    "owner_org": labels.get(LABEL_OWNER_ORG),
                    "user": annotations.get(ANNOTATION_USER),
                    "claim_name": meta["name"],
                    "namespace": annotations.get(ANNOTATION_CLAIM_NAMESPACE),
                    "expires_at": annotations.get(ANNOTATION_EXPIRES),
                }
            )
        return sorted(records, key=lambda r: (str(r["lease_id"]), str(r["run_id"])))

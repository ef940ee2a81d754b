"""DShareKubeSpawner: KubeSpawner (7.0 and 7.1) with dshare's per-user RBAC, token and mounts.

At each spawn, after KubeSpawner has applied the user's profile and before any object is
made: identity from groups, active leases from the user's broker, then (idempotently) the
user's ServiceAccount, Role and RoleBinding, the token for %dshare_run, and the pod additions
(read-only claims for interactive leases, skeletons for workflow-only ones).
"""

from __future__ import annotations

import json
from typing import Any

from kubespawner import KubeSpawner
from traitlets import Bool, Int, Unicode

from ..k8s import objects
from ..k8s.api import KubeApi, RetryPolicy
from ..k8s.names import dataset_dir_name
from .base import DShareSpawnerMixin, Identity, LeasedDataset


class _Response:
    """What ApiClient.deserialize reads: a body under `data`."""

    def __init__(self, data: str) -> None:
        self.data = data


class DShareKubeSpawner(DShareSpawnerMixin, KubeSpawner):
    """KubeSpawner for dshare: one narrow token per user, leased data read-only."""

    token_audience = Unicode(
        "",
        config=True,
        help="""Audience of the per-user token. Empty: the API server's default audience,
        which is what the Kubernetes API (and so Argo submission) accepts.""",
    )

    token_expiration_seconds = Int(
        3600,
        config=True,
        help="""Lifetime of the per-user token in seconds (at least 600, the API server's
        minimum). Projected tokens are renewed by the kubelet before they expire.""",
    )

    broker_account_template = Unicode(
        "dshare-{org_lower}",
        config=True,
        help="""The ServiceAccount of the user's org broker ({org}, {org_lower}), which gets
        the rights of the chart's dshare-broker-runs ClusterRole in this user's namespace
        only. Change it only together with the chart's broker names.""",
    )

    broker_namespace = Unicode(
        "dshare",
        config=True,
        help="""Namespace of the brokers' ServiceAccounts: the one the dshare chart is
        installed in (with zero-to-jupyterhub, the hub's).""",
    )

    datasets_path = Unicode(
        "/home/jovyan/datasets",
        config=True,
        help="Where leased datasets (or their skeletons) appear in the notebook container.",
    )

    skeleton_image = Unicode(
        "",
        config=True,
        help="""Image of the init container that writes dataset skeletons; it needs python3.
        Empty: the notebook image (already on the node).""",
    )

    enforce_non_root = Bool(
        True,
        config=True,
        help="""Refuse to start a notebook container configured to run as uid 0, and set
        runAsNonRoot and allowPrivilegeEscalation=false on it.""",
    )

    mount_interactive = Bool(
        True,
        config=True,
        help="""Mount read-only the leased datasets whose policy allows interactive use
        (asks the broker to materialize them for the session). When False, or when the
        broker returns no claim for a lease, the dataset's skeleton is mounted instead.""",
    )

    _dshare_parts: objects.PodParts | None = None
    _dshare_identity: Identity | None = None
    _dshare_session_run: str | None = None

    # -- names -----------------------------------------------------------------------------

    @property
    def dshare_object_name(self) -> str:
        """Name of the user's ServiceAccount, Role and RoleBinding (one per user)."""
        return str(self._expand_user_properties("dshare-{username}"))

    def _kube(self) -> KubeApi:
        return KubeApi(
            self.api.api_client,
            retry=RetryPolicy(request_timeout=float(self.k8s_api_request_timeout)),
        )

    # -- spawn -----------------------------------------------------------------------------

    async def load_user_options(self) -> None:
        await super().load_user_options()
        # Here the profile (which may change namespace or image) is applied and nothing has
        # been created yet: a refusal now leaves the cluster untouched.
        await self.dshare_prepare()

    async def dshare_prepare(self) -> None:
        identity = self.dshare_identity()
        leased = await self.dshare_leased_datasets(identity)
        # The namespace before the session: the owner's broker makes the interactive
        # leases' claims in it and may not create namespaces itself (a first spawn would
        # fail with 404).
        if self.enable_user_namespaces:
            self.user_namespace_labels = self.dshare_namespace_labels(identity)
            await self._ensure_namespace()
        interactive, skeletons = await self._dshare_mounts(identity, leased)
        await self.dshare_ensure_rbac(identity)
        token_volume = await self.dshare_token_volume(identity)
        self._dshare_identity = identity
        self._dshare_parts = objects.make_pod_parts(
            user=identity.user,
            org=identity.org,
            datasets_path=self.datasets_path,
            token_volume=token_volume,
            service_account_name=self.dshare_object_name,
            interactive=interactive,
            skeletons=skeletons,
            skeleton_image=self.skeleton_image or str(self.image),
            uid=self.uid if isinstance(self.uid, int) and self.uid > 0 else None,
        )

    async def _dshare_mounts(
        self, identity: Identity, leased: list[LeasedDataset]
    ) -> tuple[list[objects.InteractiveMount], dict[str, list[str]]]:
        mounts: dict[str, Any] = {}
        wanted = [item for item in leased if item.interactive] if self.mount_interactive else []
        if wanted:
            session = await self.dshare_open_session(identity, wanted, self.name)
            run = session.get("run") or {}
            self._dshare_session_run = str(run["id"]) if run.get("id") else None
            mounts = session.get("mounts") or {}
        interactive: list[objects.InteractiveMount] = []
        skeletons: dict[str, list[str]] = {}
        for item in leased:
            dir_name = dataset_dir_name(item.name)
            mount = mounts.get(str(item.lease["id"])) or {}
            if mount.get("claim_name") and mount.get("namespace", self.namespace) == self.namespace:
                interactive.append(objects.InteractiveMount(dir_name, str(mount["claim_name"])))
            else:
                skeletons.setdefault(dir_name, []).extend(item.skeleton)
        return interactive, skeletons

    def dshare_namespace_labels(self, identity: Identity) -> dict[str, str]:
        """The configured user_namespace_labels with dshare's own on top, which always win:
        NetworkPolicies and admission trust them (objects.user_namespace_labels).

        KubeSpawner sets them only when it creates the namespace; one made before keeps
        its labels (the hub may not patch namespaces), so its server reaches no broker until
        an operator labels it (docs/operator-guide.md).
        """
        return {**self.user_namespace_labels, **objects.user_namespace_labels(identity.org)}

    async def dshare_ensure_rbac(self, identity: Identity) -> None:
        """ServiceAccount, Role and RoleBinding of the user, and the user's org broker's
        rights in the namespace; 409 means already there."""
        name, ns = self.dshare_object_name, self.namespace
        kube = self._kube()
        common = {"name": name, "namespace": ns, "user": identity.user, "org": identity.org}
        await kube.create(objects.make_service_account(**common))
        # Replaced when present so its rules are always exactly dshare's.
        await kube.create(objects.make_role(**common), replace=True)
        await kube.create(
            objects.make_role_binding(**common, service_account=name, role=name), replace=True
        )
        broker = self.broker_account_template.format(org=identity.org, org_lower=identity.org_lower)
        await kube.create(
            objects.make_broker_runs_binding(
                namespace=ns,
                user=identity.user,
                org=identity.org,
                broker_account=broker,
                broker_namespace=self.broker_namespace,
            ),
            replace=True,
        )

    async def dshare_token_volume(self, identity: Identity) -> dict[str, Any]:
        """The per-user token for the pod, always as a file at /var/run/secrets/dshare/token
        (namespace beside it), never an env variable: a projected serviceAccountToken that
        the kubelet renews and that dies with the pod. Nothing is stored in the cluster, so
        the hub needs no right on Secrets."""
        return objects.make_projected_token_volume(
            audience=self.token_audience, expiration_seconds=self.token_expiration_seconds
        )

    async def get_pod_manifest(self) -> Any:
        pod = await super().get_pod_manifest()
        if self._dshare_parts is None:
            raise RuntimeError(
                "DShareKubeSpawner.get_pod_manifest called before load_user_options; "
                "the dshare parts of the pod are made there"
            )
        api_client = self.api.api_client
        patched = objects.apply_pod_parts(
            api_client.sanitize_for_serialization(pod),
            self._dshare_parts,
            enforce_non_root=self.enforce_non_root,
        )
        return api_client.deserialize(_Response(json.dumps(patched)), "V1Pod")

    def get_env(self) -> dict[str, str]:
        env: dict[str, str] = super().get_env()
        identity = self._dshare_identity or self.dshare_identity()
        env.update(self.dshare_env(identity))
        return env

    # -- state, stop, delete -----------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = super().get_state()
        if self._dshare_session_run:
            state["dshare_session_run"] = self._dshare_session_run
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self._dshare_session_run = state.get("dshare_session_run")

    def clear_state(self) -> None:
        super().clear_state()
        self._dshare_session_run = None

    async def stop(self, now: bool = False) -> None:
        await super().stop(now=now)
        run_id, self._dshare_session_run = self._dshare_session_run, None
        if run_id:
            await self.dshare_close_session(self._dshare_identity or self.dshare_identity(), run_id)

    async def delete_forever(self) -> None:
        """On user deletion, remove the user's ServiceAccount, Role and RoleBinding."""
        if not self.name:
            # Named servers share the user's objects; only the default server's deletion
            # means the user is gone.
            kube = self._kube()
            ns, name = self.namespace, self.dshare_object_name
            await kube.delete("RoleBinding", objects.BROKER_RUNS_ROLE, ns)
            for kind in ("RoleBinding", "Role", "ServiceAccount"):
                await kube.delete(kind, name, ns)
        await super().delete_forever()

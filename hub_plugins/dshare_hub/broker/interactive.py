"""Interactive leases: datasets whose owner allows it, readable in the scientist's server.

The lessee's broker asks, for each of the caller's active leases of an interactive
dataset, the owner's broker for a view (itself when it is the owner, else over the signed
peer protocol: a peer request with an empty `run_id`, which no mount request has). The
owner checks the lease and the dataset's policy on the ledger itself, opens the storage
details and makes the view (`viewstore.ViewStore`): hard links under a path that names no
storage, readable by the lessee's OS user only. The reply is the view's path; the
scientist's server links `~/datasets/<name>` to it, as the user.

When the dataset's redaction policy hides columns from the lessee, the view is made from
a redacted copy (redacted.py), never from the raw files; the copy's names go as soon as
the view's hard links hold its files.

The owner's reaper removes a view once its lease is no longer active (expired, released,
its dataset retired or no longer interactive), from the views on disk.
"""

from __future__ import annotations

import logging
import pwd
from pathlib import Path
from typing import Any

from ..k8s.names import dataset_dir_name
from ..keys import KeyServiceError
from ..ledger import LedgerError
from ..spawner.system_users import AccountError, os_username
from .errors import ApiError, from_keys
from .materialize import LocalMaterializer, MaterializeError
from .peers import send_peer_mount, verify_signed
from .redacted import remove_copy
from .redaction import RedactionError, decide
from .service import LEASE, Broker
from .views import Caller, check_id
from .viewstore import ViewError, ViewStore

log = logging.getLogger("dshare.broker.interactive")

REAPER_ACTOR = "dshare-reaper"
# A view request is a signed peer request whose run_id is empty: a mount request always
# names a run, so neither can be taken for the other.
VIEW_RUN_ID = ""


def _interactive(asset: dict[str, Any]) -> bool:
    return bool((asset.get("policy") or {}).get("interactive"))


class InteractiveViews:
    """The broker's part of interactive use: asking for views and making them."""

    def __init__(
        self, broker: Broker, store: ViewStore | None, *, system_username_template: str
    ) -> None:
        self.broker = broker
        self.store = store
        self.system_username_template = system_username_template

    # -- the lessee's side -------------------------------------------------------------------

    async def refresh(self, caller: Caller) -> dict[str, Any]:
        """The caller's interactive views, made where missing: `{items, unavailable}`.

        One lease that cannot be shown (an owner's broker down, a dataset on another file
        system) does not hide the others; it is listed with its refusal."""
        self.broker.require(caller, LEASE)
        leases = await self.broker._list_leases(
            {"org": self.broker.org, "user": caller.user}, caller.user
        )
        items: list[dict[str, Any]] = []
        unavailable: list[dict[str, Any]] = []
        for lease in leases:
            if lease.get("state") != "active" or not lease.get("interactive"):
                continue
            try:
                asset = await self.broker.asset_record(str(lease["asset_id"]), caller.user)
                if not _interactive(asset):
                    continue  # the owner turned it off: a skeleton again
                if lease["owner_org"] == self.broker.org:
                    view = await self.view_for(
                        lease_id=str(lease["id"]), user=caller.user, org=self.broker.org
                    )
                else:
                    view = await self._peer_view(lease, caller.user)
            except ApiError as error:
                unavailable.append(
                    {
                        "lease_id": lease["id"],
                        "asset_id": lease["asset_id"],
                        "code": error.code,
                        "message": error.message,
                    }
                )
                continue
            name = str(asset.get("name") or asset.get("id"))
            items.append(
                {
                    "lease_id": lease["id"],
                    "asset_id": lease["asset_id"],
                    "name": name,
                    "dir": dataset_dir_name(name),
                    "path": str(view["path"]),
                    "expires_at": lease.get("expires_at"),
                }
            )
        return {"items": items, "unavailable": unavailable}

    async def _peer_view(self, lease: dict[str, Any], user: str) -> dict[str, Any]:
        owner = str(lease["owner_org"])
        base = self.broker.peers.get(owner)
        if base is None:
            raise ApiError(
                "PEER_UNAVAILABLE",
                f"this broker does not know the broker of {owner}; add it to BrokerApp.peers",
            )
        envelope = self.broker.signer.sign(
            to=owner, lease_id=str(lease["id"]), run_id=VIEW_RUN_ID, user=user
        )
        view = await send_peer_mount(
            base,
            envelope,
            owner=owner,
            timeout_s=self.broker.peer_timeout_s,
            path="api/v1/peer/views",
        )
        if not isinstance(view.get("path"), str) or not view["path"].startswith("/"):
            raise ApiError("PEER_UNAVAILABLE", f"the broker of {owner} sent no view path")
        return view

    # -- the owner's side --------------------------------------------------------------------

    async def peer_view(self, envelope: Any) -> dict[str, Any]:
        """Another org's broker asks for a view; nothing it says counts until verified."""
        payload = await verify_signed(
            envelope,
            me=self.broker.org,
            ca_for_org=self.broker.ca_for_org,
            nonces=self.broker.nonces,
        )
        if payload["run_id"] != VIEW_RUN_ID:
            raise ApiError(
                "INVALID_ARGUMENT",
                "payload.run_id: a view request names no run (send mount requests to peer/mounts)",
                "payload.run_id",
            )
        return await self.view_for(
            lease_id=check_id(payload["lease_id"], "lease_id"),
            user=str(payload["user"]),
            org=str(payload["org"]),
        )

    def _os_user(self, user: str) -> pwd.struct_passwd:
        try:
            name = os_username(self.system_username_template, user)
            return pwd.getpwnam(name)
        except (AccountError, KeyError):
            raise ApiError(
                "INVALID_STATE",
                f"user '{user}' has no OS account on this machine yet, so nothing can be "
                "shown to them; start your server once, then ask again",
            ) from None

    async def view_for(self, *, lease_id: str, user: str, org: str) -> dict[str, Any]:
        """A view of one of this org's assets for the lessee, after checking the ledger."""
        if self.store is None:
            raise ApiError(
                "VIEW_UNAVAILABLE",
                f"the broker of {self.broker.org} shows no data interactively (its "
                "BrokerApp.interactive_views_dir is not set); read it in a workflow",
            )
        broker = self.broker
        lease = await broker.lessee_lease(lease_id, user, org)
        asset = await broker.asset_record(lease["asset_id"], user)
        if not (lease.get("interactive") and _interactive(asset)):
            raise ApiError(
                "POLICY_DENIED",
                f"the owner of '{asset['id']}' does not allow reading it in the notebook; "
                "mount it in a workflow (workflow.yaml) instead",
            )
        if asset.get("storage_type") not in ("local", "hostpath"):
            raise ApiError(
                "VIEW_UNAVAILABLE",
                f"asset '{asset['id']}' is stored as {asset.get('storage_type')!r}; the "
                "embedded broker shows only local and hostpath storage",
            )
        account = self._os_user(user)
        existing = self.store.current(lease_id, account.pw_uid)
        if existing is not None:
            # Asked again (every refresh of the lessee's server): no key is opened for it.
            return self._reply(lease_id, existing, lease)
        try:
            details = broker.keys.open_details(asset["id"], broker.org, asset["sealed_storage"])
        except KeyServiceError as error:
            raise from_keys(error) from None
        source = Path(str(details.get("path", "")))
        del details
        copy, actions = await self._redacted_copy(asset, lease, source)
        try:
            # The plan goes into the view's record, written before the view is made: the
            # reaper compares it with the current policy's on every pass.
            record = await self.store.make(
                lease=lease,
                source=copy or source,
                uid=account.pw_uid,
                os_user=account.pw_name,
                redacted=actions,
            )
        except ViewError as error:
            raise ApiError(error.code, error.message) from None
        finally:
            # The view's hard links keep the copy's files (and their ACL entries) alive;
            # the copy's own names are not needed once the view exists.
            if copy is not None:
                remove_copy(copy)
        return self._reply(lease_id, record, lease)

    async def _redacted_copy(
        self, asset: dict[str, Any], lease: dict[str, Any], source: Path
    ) -> tuple[Path | None, dict[str, str]]:
        """The redacted copy the view is made from when the dataset's policy hides columns
        from this lessee (None: the policy hides nothing); never the raw files then."""
        try:
            plan = decide(asset, lease)
        except RedactionError as error:
            raise ApiError(
                "REDACTION_FAILED",
                f"asset '{asset['id']}' is not shown: its {error.message}; its owner must fix "
                "the policy",
            ) from None
        materializer = self.broker.materializer
        if isinstance(materializer, LocalMaterializer):
            try:
                materializer.check_source(asset, source)
            except MaterializeError as error:
                raise ApiError(error.code, error.message) from None
        if not plan.redacts:
            return None, {}
        if not isinstance(materializer, LocalMaterializer) or materializer.redacted_dir is None:
            raise ApiError(
                "REDACTION_UNAVAILABLE",
                f"asset '{asset['id']}' hides columns from {lease.get('lessee_org')} and this "
                "broker has nowhere to write redacted copies; read it in a workflow instead",
            )
        dest = materializer.redacted_dir / "interactive" / str(lease["id"])
        # Left by a crash, it may be of an older plan: never reused.
        remove_copy(dest)
        try:
            await materializer.write_redacted(asset, lease, plan, source, dest)
        except MaterializeError as error:
            raise ApiError(error.code, error.message) from None
        return dest, dict(plan.actions)

    def _reply(
        self, lease_id: str, record: dict[str, Any], lease: dict[str, Any]
    ) -> dict[str, Any]:
        assert self.store is not None
        return {
            "lease_id": lease_id,
            "path": self.store.path_of(record),
            "expires_at": lease.get("expires_at"),
        }

    # -- the reaper's part -------------------------------------------------------------------

    async def _wanted(self, record: dict[str, Any]) -> bool:
        ledger = self.broker.ledger
        try:
            lease = await ledger.evaluate("GetLease", str(record["lease_id"]), actor=REAPER_ACTOR)
            asset = await ledger.evaluate("GetAsset", str(lease["asset_id"]), actor=REAPER_ACTOR)
        except LedgerError as error:
            if error.code.endswith("_NOT_FOUND"):
                return False
            raise
        if not (
            lease.get("state") == "active"
            and asset.get("state") != "retired"
            and _interactive(asset)
        ):
            return False
        try:
            plan = decide(asset, lease).actions
        except RedactionError:
            return False  # undecidable now: shown no longer (never raw)
        # When the owner's policy (or the columns) changed, the view made under the old plan
        # goes and the next refresh makes it again. A record without one was made raw.
        made = record.get("redacted") or {}
        return dict(plan) == (made if isinstance(made, dict) else {"(unreadable)": "remove"})

    async def reap(self) -> int:
        """Remove the views whose lease is over; what exists comes from the disk."""
        if self.store is None:
            return 0
        return await self.store.sweep(self._wanted)

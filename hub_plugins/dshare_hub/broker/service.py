"""The broker's behaviour, independent of HTTP: what each API call does on the ledger,
with the keys and with mounts. Handlers only translate requests and responses."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from ..keys import KeyService, KeyServiceError
from ..ledger import Ledger, LedgerError
from ..webapi import STATUS_BY_CODE
from .errors import ApiError, from_keys, from_ledger
from .materialize import MaterializeError, Materializer
from .pagecache import PageCache
from .peers import NonceStore, Signer, send_peer_mount, verify_signed
from .redaction import CHECKED_FIELDS, RedactionError, check_dataset
from .views import (
    Caller,
    check_id,
    dataset_view,
    history_view,
    lease_view,
    run_view,
    split_dataset_in,
)

log = logging.getLogger("dshare.broker")

READ = "custom:dshare:read"
LEASE = "custom:dshare:lease"
ADMIN = "custom:dshare:admin"
REAPER_ACTOR = "dshare-reaper"


class Broker:
    def __init__(
        self,
        *,
        org: str,
        ledger: Ledger,
        keys: KeyService,
        materializer: Materializer,
        signer: Signer,
        nonces: NonceStore,
        ca_for_org: Callable[[str], Awaitable[str | None]],
        peers: dict[str, str],
        peer_timeout_s: float = 30.0,
        page_cache_size: int = 256,
        storage_roots: list[str] | None = None,
    ) -> None:
        self.org = org
        self.ledger = ledger
        self.keys = keys
        self.materializer = materializer
        self.signer = signer
        self.nonces = nonces
        self.ca_for_org = ca_for_org
        self.peers = {name: url.rstrip("/") for name, url in peers.items()}
        self.peer_timeout_s = peer_timeout_s
        self.pages = PageCache(page_cache_size)
        self.storage_roots = [os.path.realpath(r) for r in storage_roots or []]

    # -- who may do what -------------------------------------------------------------------

    def require(self, caller: Caller, scope: str) -> None:
        if caller.org is None:
            raise ApiError(
                "FORBIDDEN",
                f"user {caller.user!r} belongs to no organization (exactly one 'org:<Org>' "
                "group is required); ask an administrator",
            )
        if caller.org != self.org:
            raise ApiError(
                "FORBIDDEN",
                f"this is the broker of {self.org}; user {caller.user!r} belongs to "
                f"{caller.org} and must use the dshare-{caller.org.lower()} service",
            )
        if scope not in caller.scopes:
            raise ApiError(
                "FORBIDDEN",
                f"your token lacks the scope {scope}; ask an administrator of {self.org} for "
                "the role that grants it",
            )

    async def _submit(self, fn: str, *args: str, actor: str) -> Any:
        try:
            return await self.ledger.submit(fn, *args, actor=actor)
        except LedgerError as error:
            raise from_ledger(error) from None

    async def _evaluate(self, fn: str, *args: str, actor: str) -> Any:
        try:
            return await self.ledger.evaluate(fn, *args, actor=actor)
        except LedgerError as error:
            raise from_ledger(error) from None

    # -- identity ---------------------------------------------------------------------------

    def me(self, caller: Caller) -> dict[str, Any]:
        return {
            "user": caller.user,
            "org": caller.org,
            "roles": list(caller.roles),
            "scopes": sorted(s for s in caller.scopes if s.startswith("custom:dshare:")),
        }

    # -- datasets ---------------------------------------------------------------------------

    async def list_datasets(self, caller: Caller, params: dict[str, str]) -> dict[str, Any]:
        page: dict[str, Any] = json.loads(await self.list_datasets_json(caller, params))
        return page

    async def list_datasets_json(self, caller: Caller, params: dict[str, str]) -> bytes:
        """A page of datasets as the response body, from the page cache when the ledger can
        say that nothing changed since the page was made."""
        self.require(caller, READ)
        filters = self._dataset_filters(params)

        async def make() -> bytes:
            page = await self._evaluate("QueryAssets", json.dumps(filters), actor=caller.user)
            body = {
                "items": [dataset_view(a) for a in page["items"]],
                "bookmark": page.get("bookmark", ""),
            }
            return json.dumps(body).encode()

        state_token = getattr(self.ledger, "state_token", None)
        if state_token is None or self.pages.size == 0:
            return await make()

        async def token() -> Hashable:
            try:
                at: Hashable = await state_token()
            except LedgerError as error:
                raise from_ledger(error) from None
            return at

        return await self.pages.get(json.dumps(filters, sort_keys=True), make, token)

    @staticmethod
    def _dataset_filters(params: dict[str, str]) -> dict[str, Any]:
        filters: dict[str, Any] = {}
        for name in ("q", "org", "tag", "storage", "bookmark"):
            if params.get(name):
                filters[name] = params[name]
        if "limit" in params:
            try:
                filters["limit"] = int(params["limit"])
            except ValueError:
                raise ApiError(
                    "INVALID_ARGUMENT", "limit: must be a whole number (1-200)", "limit"
                ) from None
        if "available" in params:
            value = params["available"].lower()
            if value not in ("true", "false", "1", "0"):
                raise ApiError("INVALID_ARGUMENT", "available: must be true or false", "available")
            filters["available"] = value in ("true", "1")
        return filters

    async def get_dataset(self, caller: Caller, asset_id: str) -> dict[str, Any]:
        self.require(caller, READ)
        asset = await self._evaluate("GetAsset", check_id(asset_id, "id"), actor=caller.user)
        return dataset_view(asset)

    async def dataset_history(self, caller: Caller, asset_id: str) -> dict[str, Any]:
        self.require(caller, READ)
        result = await self._evaluate(
            "GetAssetHistory", check_id(asset_id, "id"), actor=caller.user
        )
        return {"items": [history_view(entry) for entry in result["items"]]}

    def require_admin(self, caller: Caller, what: str = "manage its datasets") -> None:
        self.require(caller, ADMIN)
        if not caller.is_admin:
            raise ApiError("FORBIDDEN", f"only administrators of {self.org} may {what}")

    async def register_dataset(self, caller: Caller, body: Any) -> dict[str, Any]:
        self.require_admin(caller)
        fields, storage = split_dataset_in(body, partial=False)
        asset_id = check_id(fields.get("id") or f"ds-{secrets.token_hex(8)}", "id")
        fields["id"] = asset_id
        assert storage is not None
        self._check_storage_root(storage[0], storage[1])
        await self._check_redaction(fields, None)
        sealed = self._seal(asset_id, storage[1])
        fields["sealed_storage"] = sealed
        try:
            asset = await self._submit("RegisterAsset", json.dumps(fields), actor=caller.user)
        except ApiError:
            # Refused: keep nothing of it, not even the new key version.
            self.keys.discard(asset_id, sealed)
            raise
        log.info("%s registered dataset %s", caller.user, asset_id)
        return dataset_view(asset)

    async def update_dataset(self, caller: Caller, asset_id: str, body: Any) -> dict[str, Any]:
        self.require_admin(caller)
        check_id(asset_id, "id")
        fields, storage = split_dataset_in(body, partial=True)
        checked = CHECKED_FIELDS & set(fields)
        current = (
            await self._evaluate("GetAsset", asset_id, actor=caller.user)
            if checked or storage is not None
            else None
        )
        if checked:
            await self._check_redaction(fields, current)
        sealed = None
        if storage is not None:
            assert current is not None
            if current["owner_org"] != self.org:
                raise ApiError(
                    "NOT_OWNER",
                    f"only the owner organization '{current['owner_org']}' may update asset "
                    f"'{asset_id}'",
                )
            self._check_storage_root(storage[0], storage[1])
            sealed = self._seal(asset_id, storage[1])
            fields["sealed_storage"] = sealed
        try:
            asset = await self._submit(
                "UpdateAsset", asset_id, json.dumps(fields), actor=caller.user
            )
        except ApiError:
            if sealed is not None:
                self.keys.discard(asset_id, sealed)
            raise
        log.info("%s updated dataset %s (%s)", caller.user, asset_id, ", ".join(sorted(fields)))
        return dataset_view(asset)

    async def retire_dataset(self, caller: Caller, asset_id: str) -> dict[str, Any]:
        self.require_admin(caller)
        asset = await self._submit("RetireAsset", check_id(asset_id, "id"), actor=caller.user)
        # After the ledger says retired: destroy the data keys, so the sealed details that
        # stay on the ledger forever can never be opened again.
        shredded = self.keys.shred(asset_id)
        for lease in await self._list_leases({"asset_id": asset_id}, caller.user):
            await self.materializer.release(lease_id=lease["id"])
        log.info("%s retired dataset %s; %d data key(s) destroyed", caller.user, asset_id, shredded)
        return dataset_view(asset)

    async def _check_redaction(self, fields: dict[str, Any], base: Any) -> None:
        """The Rego compiles and names known tags before anything is sealed or submitted."""
        try:
            await asyncio.to_thread(check_dataset, fields, base, self.org)
        except RedactionError as error:
            raise ApiError(error.code, error.message, error.field) from None

    def _check_storage_root(self, kind: str, details: dict[str, Any]) -> None:
        """Local storage must lie under one of this org's roots: never another org's
        directory, /etc or the deployment's own state."""
        if kind not in ("local", "hostpath") or not self.storage_roots:
            return
        path = details.get("path")
        real = os.path.realpath(path) if isinstance(path, str) and path.startswith("/") else ""
        if not any(real == r or real.startswith(r.rstrip("/") + "/") for r in self.storage_roots):
            raise ApiError(
                "INVALID_ARGUMENT",
                "storage.details.path: is outside this organization's storage roots "
                f"({', '.join(self.storage_roots)}); put the data under one of them or ask "
                "the operator to add a root (BrokerApp.storage_roots)",
                "storage.details.path",
            )

    def _seal(self, asset_id: str, details: dict[str, Any]) -> str:
        try:
            return self.keys.seal_details(asset_id, self.org, details)
        except KeyServiceError as error:
            raise from_keys(error) from None

    # -- leases -----------------------------------------------------------------------------

    async def _list_leases(self, filters: dict[str, Any], actor: str) -> list[dict[str, Any]]:
        result = await self._evaluate("ListLeases", json.dumps(filters), actor=actor)
        items: list[dict[str, Any]] = result["items"]
        return items

    async def list_leases(self, caller: Caller, params: dict[str, str]) -> dict[str, Any]:
        self.require(caller, READ)
        scope = params.get("scope", "mine")
        filters: dict[str, Any]
        if scope == "mine":
            filters = {"org": self.org, "user": caller.user}
        elif scope == "org":
            filters = {"org": self.org}
        elif scope == "pending":
            self.require_admin(caller)
            filters = {"owner_org": self.org, "state": "pending"}
        else:
            raise ApiError("INVALID_ARGUMENT", "scope: must be mine, org or pending", "scope")
        items = await self._list_leases(filters, caller.user)
        if params.get("dataset"):
            items = [lease for lease in items if lease["asset_id"] == params["dataset"]]
        return {"items": [lease_view(lease) for lease in items]}

    async def request_lease(
        self, caller: Caller, dataset_id: str, duration_s: int, purpose: str
    ) -> dict[str, Any]:
        self.require(caller, LEASE)
        lease = await self._submit(
            "RequestLease", dataset_id, str(duration_s), purpose, actor=caller.user
        )
        return lease_view(lease)

    async def decide_lease(self, caller: Caller, lease_id: str, approve: bool) -> dict[str, Any]:
        self.require_admin(caller)
        fn = "ApproveLease" if approve else "RejectLease"
        lease = await self._submit(fn, check_id(lease_id, "lease_id"), actor=caller.user)
        return lease_view(lease)

    async def release_lease(self, caller: Caller, lease_id: str) -> dict[str, Any]:
        self.require(caller, LEASE)
        current = await self._evaluate(
            "GetLease", check_id(lease_id, "lease_id"), actor=caller.user
        )
        lessee = (current["lessee_org"], current["lessee_user"]) == (caller.org, caller.user)
        # The contract only knows organizations: without this, any member of the owner org
        # could end another organization's lease. Only the owner's admins may.
        if not lessee and (current["owner_org"] != self.org or not caller.is_admin):
            raise ApiError(
                "NOT_LESSEE",
                f"lease '{lease_id}' belongs to {current['lessee_user']!r} of "
                f"{current['lessee_org']}; only they or an administrator of "
                f"{current['owner_org']} may release it",
            )
        lease = await self._submit("ReleaseLease", lease_id, actor=caller.user)
        if lease["owner_org"] == self.org:
            await self.materializer.release(lease_id=lease_id)
        return lease_view(lease)

    # -- runs and mounts --------------------------------------------------------------------

    async def create_run(
        self, caller: Caller, name: str, lease_ids: list[str], spec_sha256: str
    ) -> dict[str, Any]:
        self.require(caller, LEASE)
        run = await self._submit(
            "RecordRun", json.dumps(lease_ids), spec_sha256, name, actor=caller.user
        )
        mounts: dict[str, Any] = {}
        try:
            for lease_id in lease_ids:
                lease = await self._evaluate("GetLease", lease_id, actor=caller.user)
                if lease["owner_org"] == self.org:
                    mounts[lease_id] = await self.mount_for(
                        lease_id=lease_id, run_id=run["id"], user=caller.user, org=self.org
                    )
                else:
                    mounts[lease_id] = await self._peer_mount(lease, run["id"], caller.user)
        except ApiError:
            # A run that cannot get its data does not start: record that, drop what was
            # already mounted here; other brokers' reapers see the run ended on the ledger.
            await self.materializer.release(run_id=run["id"])
            await self._submit("FinishRun", run["id"], "cancelled", "", actor=caller.user)
            raise
        return {"run": run_view(run), "mounts": mounts}

    async def start_run(
        self, caller: Caller, name: str, lease_ids: list[str], spec_sha256: str, code: str = ""
    ) -> dict[str, Any]:
        """RecordRun; `code` is the run's code identity (broker.approvals.Code.ledger_arg)."""
        self.require(caller, LEASE)
        extra = [code] if code else []
        run: dict[str, Any] = await self._submit(
            "RecordRun", json.dumps(lease_ids), spec_sha256, name, *extra, actor=caller.user
        )
        return run

    async def materialize_for_run(
        self, lease: dict[str, Any], run_id: str, user: str
    ) -> dict[str, Any]:
        """This org's data is mounted here; another org's by its own broker. Either way the
        owner checks the lease and the run on the ledger itself before it mounts."""
        if lease["owner_org"] == self.org:
            lease_id = str(lease["id"])
            return await self.mount_for(lease_id=lease_id, run_id=run_id, user=user, org=self.org)
        return await self._peer_mount(lease, run_id, user)

    async def end_run(
        self,
        run_id: str,
        user: str,
        outcome: str,
        digest: str = "",
        outputs: list[dict[str, Any]] | None = None,
    ) -> None:
        """Record how a run ended (and what left it), then remove what this org mounted;
        other owners' reapers remove theirs once the ledger says the run ended."""
        args = [run_id, outcome, digest] + ([json.dumps(outputs)] if outputs else [])
        try:
            await self._submit("FinishRun", *args, actor=user)
        finally:
            await self.materializer.release(run_id=run_id)

    async def decide_output(
        self, caller: Caller, run_id: str, path: str, approve: bool, reason: str
    ) -> dict[str, Any]:
        self.require_admin(caller, "decide what leaves runs over its data")
        run = await self._evaluate("GetRun", check_id(run_id, "run_id"), actor=caller.user)
        entry = next((o for o in run.get("outputs") or [] if o.get("path") == path), None)
        mine = (entry or {}).get("decisions", {}).get(self.org)
        if mine is not None and mine.get("approve") == approve:
            return dict(run)  # already on the ledger: only the executor's side was left to do
        decided: dict[str, Any] = await self._submit(
            "DecideOutput", run_id, path, "true" if approve else "false", reason, actor=caller.user
        )
        verb = "approved" if approve else "denied"
        log.info("%s %s output %s of run %s", caller.user, verb, path, run_id)
        return decided

    async def asset_record(self, asset_id: str, actor: str) -> dict[str, Any]:
        """The asset as the ledger keeps it (sealed storage included): for this org's own
        checks, never for a reply."""
        asset: dict[str, Any] = await self._evaluate("GetAsset", asset_id, actor=actor)
        return asset

    async def held_outputs(self, caller: Caller) -> list[dict[str, Any]]:
        """Runs over this org's data with files that wait for its decision (admins only)."""
        self.require_admin(caller, "review what leaves runs over its data")
        result = await self._evaluate("ListHeldOutputs", actor=caller.user)
        items: list[dict[str, Any]] = result["items"]
        return items

    async def lessee_lease(self, lease_id: str, user: str, org: str) -> dict[str, Any]:
        """One of this org's leases, read from the ledger: active, and held by `user` of
        `org` (what an owner checks before it mounts or shows anything for a lessee)."""
        lease: dict[str, Any] = await self._evaluate("GetLease", lease_id, actor=user)
        if lease["owner_org"] != self.org:
            raise ApiError(
                "NOT_OWNER", f"lease '{lease_id}' is for an asset of {lease['owner_org']}"
            )
        if lease["lessee_org"] != org or lease["lessee_user"] != user:
            raise ApiError(
                "NOT_LESSEE", f"lease '{lease_id}' does not belong to user '{user}' of '{org}'"
            )
        if lease["state"] == "expired":
            raise ApiError("LEASE_EXPIRED", f"lease '{lease_id}' expired at {lease['expires_at']}")
        if lease["state"] != "active":
            raise ApiError("INVALID_STATE", f"lease '{lease_id}' is {lease['state']}, not active")
        return lease

    async def mount_for(self, *, lease_id: str, run_id: str, user: str, org: str) -> dict[str, Any]:
        """Materialize a lease of one of this org's assets, after checking on the ledger."""
        lease = await self.lessee_lease(lease_id, user, org)
        run = await self._evaluate("GetRun", run_id, actor=user)
        if run["org"] != org or run["user"] != user or lease_id not in run["lease_ids"]:
            raise ApiError(
                "FORBIDDEN", f"run '{run_id}' of this user does not use lease '{lease_id}'"
            )
        if run["state"] != "running":
            raise ApiError("INVALID_STATE", f"run '{run_id}' has already finished")
        asset = await self._evaluate("GetAsset", lease["asset_id"], actor=user)
        try:
            details = self.keys.open_details(asset["id"], self.org, asset["sealed_storage"])
        except KeyServiceError as error:
            raise from_keys(error) from None
        try:
            mount = await self.materializer.materialize(
                asset=asset, details=details, lease=lease, run_id=run_id, user=user
            )
        except MaterializeError as error:
            # A code of the shared shape (REDACTION_FAILED, ...) says more than "storage".
            code = error.code if error.code in STATUS_BY_CODE else "STORAGE_UNAVAILABLE"
            raise ApiError(code, error.message) from None
        finally:
            del details
        log.info("mounted lease %s for run %s of %s/%s", lease_id, run_id, org, user)
        return mount

    async def _peer_mount(self, lease: dict[str, Any], run_id: str, user: str) -> dict[str, Any]:
        owner = lease["owner_org"]
        base = self.peers.get(owner)
        if base is None:
            raise ApiError(
                "PEER_UNAVAILABLE",
                f"this broker does not know the broker of {owner}; add it to BrokerApp.peers",
            )
        envelope = self.signer.sign(to=owner, lease_id=lease["id"], run_id=run_id, user=user)
        return await send_peer_mount(base, envelope, owner=owner, timeout_s=self.peer_timeout_s)

    async def peer_mount(self, envelope: Any) -> dict[str, Any]:
        """Another org's broker asks for a mount; trust nothing it says until verified."""
        payload = await verify_signed(
            envelope, me=self.org, ca_for_org=self.ca_for_org, nonces=self.nonces
        )
        return await self.mount_for(
            lease_id=check_id(payload["lease_id"], "lease_id"),
            run_id=check_id(payload["run_id"], "run_id"),
            user=payload["user"],
            org=payload["org"],
        )

    async def finish_run(
        self, caller: Caller, run_id: str, outcome: str, result_sha256: str
    ) -> dict[str, Any]:
        self.require(caller, LEASE)
        run = await self._submit(
            "FinishRun", check_id(run_id, "run_id"), outcome, result_sha256, actor=caller.user
        )
        await self.materializer.release(run_id=run_id)
        return run_view(run)

    async def runs_of(self, caller: Caller) -> list[dict[str, Any]]:
        """The caller's runs as the ledger keeps them (with the gate's decisions)."""
        self.require(caller, READ)
        result = await self._evaluate("ListRuns", caller.user, actor=caller.user)
        items: list[dict[str, Any]] = result["items"]
        return items

    async def list_runs(self, caller: Caller) -> dict[str, Any]:
        return {"items": [run_view(run) for run in await self.runs_of(caller)]}

    async def own_run(self, caller: Caller, run_id: str) -> dict[str, Any]:
        """One of the caller's runs as the ledger keeps it."""
        self.require(caller, READ)
        run: dict[str, Any] = await self._evaluate(
            "GetRun", check_id(run_id, "run_id"), actor=caller.user
        )
        if run["org"] != caller.org or run["user"] != caller.user:
            # Another user's run does not exist as far as this caller is concerned.
            raise ApiError("RUN_NOT_FOUND", f"run '{run_id}' does not exist")
        return run

    async def get_run(self, caller: Caller, run_id: str) -> dict[str, Any]:
        return run_view(await self.own_run(caller, run_id))

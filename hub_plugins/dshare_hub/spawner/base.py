"""What both dshare spawners share: who the user is, where their broker is, what they lease.

Identity comes from JupyterHub groups only (`org:<Org>`, `role:<role>`), never from the
request. The broker is asked with the server's own API token, so it sees the same user and
scopes the single-user server will have.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import jupyterhub.spawner
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Float, Unicode
from traitlets.config import LoggingConfigurable

from .skeleton import normalize_skeleton

# JupyterHub >= 6 has SpawnException (logged without traceback, counted as user-caused);
# JupyterHub 5.5 does not.
_SpawnBase: Any = getattr(jupyterhub.spawner, "SpawnException", None)

log = logging.getLogger(__name__)

ORG_PREFIX = "org:"
ROLE_PREFIX = "role:"


def _http_error_init(self: web.HTTPError, message: str, reason: str, status_code: int) -> None:
    # No format args: tornado then never applies % to the message, so "%" in a name is safe.
    web.HTTPError.__init__(self, status_code, message)
    self.reason = reason


if _SpawnBase is not None:

    class DShareSpawnError(_SpawnBase):
        """A spawn refused because of the user's state; `jupyterhub_message` is shown to them."""

        def __init__(self, message: str, *, reason: str, status_code: int = 400) -> None:
            super().__init__(message, reason=reason, status_code=status_code)
            # JupyterHub's spawn page and progress stream read this attribute.
            self.jupyterhub_message = message

else:

    class DShareSpawnError(web.HTTPError):  # type: ignore[no-redef]
        """A spawn refused because of the user's state; `jupyterhub_message` is shown to them."""

        def __init__(self, message: str, *, reason: str, status_code: int = 400) -> None:
            _http_error_init(self, message, reason, status_code)
            self.jupyterhub_message = message
            self.message = message


@dataclass(frozen=True)
class Identity:
    """The user's organization and roles, from their JupyterHub groups."""

    user: str
    org: str
    roles: tuple[str, ...]

    @property
    def org_lower(self) -> str:
        return self.org.lower()


def identity_from_groups(user: str, groups: list[str]) -> Identity:
    """Exactly one `org:` group and at least one `role:` group, or a DShareSpawnError."""
    orgs = sorted({g[len(ORG_PREFIX) :] for g in groups if g.startswith(ORG_PREFIX)} - {""})
    roles = tuple(sorted({g[len(ROLE_PREFIX) :] for g in groups if g.startswith(ROLE_PREFIX)}))
    if not orgs:
        raise DShareSpawnError(
            f"Your account ({user}) belongs to no organization, so dshare cannot start a "
            "server for it. Ask your organization's admin to add you to its 'org:<Org>' group.",
            reason="dshare_no_org",
            status_code=403,
        )
    if len(orgs) > 1:
        raise DShareSpawnError(
            f"Your account ({user}) is in several organizations ({', '.join(orgs)}); dshare "
            "needs exactly one. Ask an admin to remove all but one 'org:' group.",
            reason="dshare_many_orgs",
            status_code=403,
        )
    if not roles:
        raise DShareSpawnError(
            f"Your account ({user}) has no dshare role. Ask your organization's admin to add "
            "you to 'role:scientist' (or 'role:admin').",
            reason="dshare_no_role",
            status_code=403,
        )
    return Identity(user=user, org=orgs[0], roles=roles)


@dataclass
class LeasedDataset:
    """An active lease of the user's and what the pod needs to know about its dataset."""

    lease: dict[str, Any]
    dataset: dict[str, Any]
    skeleton: list[str] = field(default_factory=list)

    @property
    def interactive(self) -> bool:
        return bool((self.dataset.get("policy") or {}).get("interactive"))

    @property
    def name(self) -> str:
        return str(self.dataset.get("name") or self.dataset.get("id") or self.lease["asset_id"])


class DShareSpawnerMixin(LoggingConfigurable):
    """Mixed into a JupyterHub spawner (before it in the bases) to make it dshare-aware."""

    hub_url = Unicode(
        "http://127.0.0.1:8000/",
        config=True,
        help="""URL at which the JupyterHub proxy serves this hub, base_url included, ending
        in '/'. The broker of each organization is a JupyterHub service behind it. In
        zero-to-jupyterhub use the proxy's service, e.g. 'http://proxy-public/'.""",
    )

    broker_url_template = Unicode(
        "{hub_url}services/dshare-{org_lower}/",
        config=True,
        help="""URL of the user's organization broker. Fields: {hub_url}, {org} (as in the
        'org:<Org>' group), {org_lower}, {username}. Given to the server as DSHARE_BROKER_URL
        and used by the spawner to read the user's leases.""",
    )

    broker_request_timeout = Float(
        20.0,
        config=True,
        help="Seconds to wait for the broker when reading a user's leases at spawn.",
    )

    def _user_groups(self) -> list[str]:
        user: Any = getattr(self, "user", None)
        return [g if isinstance(g, str) else g.name for g in getattr(user, "groups", [])]

    def dshare_identity(self) -> Identity:
        user: Any = getattr(self, "user", None)
        return identity_from_groups(str(user.name), self._user_groups())

    def dshare_broker_url(self, identity: Identity) -> str:
        url = self.broker_url_template.format(
            hub_url=self.hub_url,
            org=identity.org,
            org_lower=identity.org_lower,
            username=identity.user,
        )
        return url if url.endswith("/") else url + "/"

    def dshare_env(self, identity: Identity) -> dict[str, str]:
        """The only dshare variables the server gets: where the broker is and the org.

        Nothing secret: the server reaches the broker with its own JupyterHub token.
        """
        return {"DSHARE_BROKER_URL": self.dshare_broker_url(identity), "DSHARE_ORG": identity.org}

    async def _broker(
        self,
        identity: Identity,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
    ) -> Any:
        url = self.dshare_broker_url(identity) + "api/v1/" + path
        token = str(getattr(self, "api_token", "") or "")
        request = HTTPRequest(
            url,
            method=method,
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
            body=json.dumps(body) if body is not None else None,
            request_timeout=self.broker_request_timeout,
            connect_timeout=self.broker_request_timeout,
        )
        where = f"the {identity.org} dataset broker"
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as exc:
            if exc.code == 599 or exc.response is None:
                raise DShareSpawnError(
                    f"dshare could not reach {where} ({exc.message}). Try again in a minute; "
                    "if it keeps failing, tell your administrator.",
                    reason="dshare_broker_unreachable",
                    status_code=503,
                ) from None
            detail = _error_detail(exc.response.body)
            if exc.code in (401, 403):
                raise DShareSpawnError(
                    f"{where} refused your server's request (HTTP {exc.code}{detail}). Ask "
                    "your organization's admin to check your dshare roles.",
                    reason="dshare_broker_refused",
                    status_code=403,
                ) from None
            raise DShareSpawnError(
                f"{where} answered HTTP {exc.code}{detail} to {method} {path.split('?')[0]}. "
                "Try again; if it keeps failing, tell your administrator.",
                reason="dshare_broker_error",
                status_code=502 if exc.code >= 500 else 400,
            ) from None
        except OSError as exc:
            raise DShareSpawnError(
                f"dshare could not reach {where} ({exc.strerror or type(exc).__name__}). Try "
                "again in a minute; if it keeps failing, tell your administrator.",
                reason="dshare_broker_unreachable",
                status_code=503,
            ) from None
        try:
            return json.loads(response.body or b"null")
        except ValueError:
            raise DShareSpawnError(
                f"{where} sent a reply that is not JSON to {method} {path.split('?')[0]}; "
                "tell your administrator.",
                reason="dshare_broker_error",
                status_code=502,
            ) from None

    async def dshare_leased_datasets(self, identity: Identity) -> list[LeasedDataset]:
        """The user's active leases with their datasets' skeletons and policies."""
        reply = await self._broker(identity, "GET", "leases?scope=mine")
        items = reply.get("items", []) if isinstance(reply, dict) else []
        leased = []
        for lease in items:
            if not isinstance(lease, dict) or lease.get("state") != "active":
                continue
            dataset = await self._broker(
                identity, "GET", "datasets/" + quote(str(lease["asset_id"]), safe="")
            )
            skeleton = normalize_skeleton(dataset.get("skeleton") or [], log=self.log)
            leased.append(LeasedDataset(lease=lease, dataset=dataset, skeleton=skeleton))
        return leased

    async def dshare_open_session(
        self, identity: Identity, leases: list[LeasedDataset], server_name: str
    ) -> dict[str, Any]:
        """Ask the broker to materialize the interactive leases for this notebook session.

        The session is recorded as a run, so the ledger shows who mounted what and when;
        returns `{run, mounts: {lease_id: Mount}}`.
        """
        import hashlib

        lease_ids = sorted(str(item.lease["id"]) for item in leases)
        spec = json.dumps({"interactive": server_name or "default", "leases": lease_ids})
        reply = await self._broker(
            identity,
            "POST",
            "runs",
            {
                "name": f"notebook-{server_name or 'default'}",
                "lease_ids": lease_ids,
                "spec_sha256": hashlib.sha256(spec.encode()).hexdigest(),
            },
        )
        return reply if isinstance(reply, dict) else {}

    async def dshare_close_session(self, identity: Identity, run_id: str) -> None:
        """End the notebook session's run; its mounts are released by the broker."""
        try:
            await self._broker(
                identity,
                "POST",
                "runs/" + quote(run_id, safe="") + "/finish",
                {"outcome": "succeeded"},
            )
        except DShareSpawnError as exc:
            # Stopping must not fail on the broker; the reaper releases the mounts at expiry.
            self.log.warning("could not finish dshare session run %s: %s", run_id, exc.message)


def _error_detail(body: bytes | None) -> str:
    try:
        data = json.loads(body or b"")
    except ValueError:
        return ""
    if isinstance(data, dict) and data.get("message"):
        code = f"{data['code']}: " if data.get("code") else ""
        return f", {code}{data['message']}"
    return ""

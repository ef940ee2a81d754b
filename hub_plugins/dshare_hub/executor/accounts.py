"""Whose home a run's results go to: checked here, not taken from the submitting broker.

A broker submits runs for its own organization's users. Its word on which OS account that
is (uid, gid, home) and on the user's organization would let one org's broker have the
executor write, as root, into the home of another organization's scientist. So the
executor looks the account up itself (the same system-user template the spawner and the
brokers use) and asks the hub, with its own token, which organization the user is in.
"""

from __future__ import annotations

import json
import pwd
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from ..webapi import ApiError, bad

ORG_PREFIX = "org:"

Lookup = Callable[[str], pwd.struct_passwd]


class AccountCheck:
    """Refuses a run whose user is not the caller org's, or whose account is not theirs."""

    def __init__(
        self,
        *,
        username_template: str,
        hub_api_url: str,
        hub_api_token: str,
        lookup: Lookup = pwd.getpwnam,
        timeout: float = 10.0,
    ) -> None:
        self.username_template = username_template
        self.hub_api_url = hub_api_url.rstrip("/")
        self.hub_api_token = hub_api_token
        self.lookup = lookup
        self.timeout = timeout

    async def check(self, org: str, body: Any) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("user"), str):
            return  # the request's own validation names what is wrong with it
        user = body["user"]
        account = self._account(user)
        claimed = (body.get("uid"), body.get("gid"), body.get("home"))
        if claimed != (account.pw_uid, account.pw_gid, account.pw_dir):
            raise ApiError(
                "FORBIDDEN",
                f"uid, gid and home must be those of {user}'s own account "
                f"({account.pw_name}); the executor delivers nowhere else",
                "uid",
            )
        orgs = await self._orgs(user)
        if orgs != [org]:
            raise ApiError(
                "FORBIDDEN",
                f"user {user!r} is not a member of {org}; a broker submits runs of its own "
                "organization's users only",
                "user",
            )

    def _account(self, user: str) -> pwd.struct_passwd:
        try:
            name = self.username_template.format(username=user)
        except (KeyError, IndexError, ValueError):
            raise bad("user", "cannot be mapped to an OS account") from None
        try:
            return self.lookup(name)
        except KeyError:
            raise bad("user", f"{user!r} has no OS account ({name}) on this host") from None

    async def _orgs(self, user: str) -> list[str]:
        request = HTTPRequest(
            f"{self.hub_api_url}/users/{quote(user, safe='')}",
            headers={"Authorization": f"token {self.hub_api_token}"},
            request_timeout=self.timeout,
        )
        try:
            reply = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as error:
            if error.code == 404:
                raise bad("user", f"{user!r} is not a user of this hub") from None
            raise ApiError(
                "HUB_UNAVAILABLE",
                f"the hub did not say which organization {user!r} is in (HTTP {error.code}); "
                "try again, or check the executor's role (scope read:users:groups)",
            ) from None
        except OSError as error:
            raise ApiError(
                "HUB_UNAVAILABLE", f"the hub could not be reached ({error}); try again"
            ) from None
        model = json.loads(reply.body or b"{}")
        groups = model.get("groups") or []
        return sorted({g[len(ORG_PREFIX) :] for g in groups if g.startswith(ORG_PREFIX)})

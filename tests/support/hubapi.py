"""The hub's and brokers' REST APIs as the broker and proof suites call them: plain HTTP
with tokens, every broker reply kept in a transcript for the leak checks."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass
class Reply:
    status: int
    body: Any
    text: str


class HubApi:
    """Mixed into a test harness that has `url`, `admin_token` and `transcript`."""

    url: str
    admin_token: str
    transcript: list[str]

    def call(
        self,
        method: str,
        path: str,
        token: str | None,
        body: Any = None,
        raw: bytes | None = None,
        timeout: float = 60,
    ) -> Reply:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if token:
            request.add_header("Authorization", f"token {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, payload = error.code, error.read()
        text = payload.decode("utf-8", "replace")
        if path.startswith("/services/"):
            # What the brokers answered; the hub's own replies (token creation) are not
            # what the leak checks are about.
            self.transcript.append(text)
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        return Reply(status, parsed, text)

    def broker(
        self, org: str, method: str, path: str, token: str | None, body: Any = None
    ) -> Reply:
        return self.call(method, f"/services/dshare-{org.lower()}/api/v1{path}", token, body)

    def make_user(self, name: str, org: str, role: str) -> str:
        """A hub user in org:<org> and role:<role>, and a token with what that role grants."""
        reply = self.call("POST", f"/hub/api/users/{name}", self.admin_token)
        assert reply.status in (201, 409), reply.text
        for group in (f"org:{org}", f"role:{role}"):
            self.call("POST", f"/hub/api/groups/{group}", self.admin_token, {})
            reply = self.call(
                "POST", f"/hub/api/groups/{group}/users", self.admin_token, {"users": [name]}
            )
            assert reply.status == 200, reply.text
        scopes = [
            "read:users:name!user",
            "read:users:groups!user",
            f"access:services!service=dshare-{org.lower()}",
            "custom:dshare:read",
            "custom:dshare:lease",
        ]
        if role == "admin":
            scopes.append("custom:dshare:admin")
        reply = self.call(
            "POST", f"/hub/api/users/{name}/tokens", self.admin_token, {"scopes": scopes}
        )
        assert reply.status == 201, reply.text
        return str(reply.body["token"])

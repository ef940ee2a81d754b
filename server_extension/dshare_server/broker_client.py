"""HTTP client for the user's organization broker (API in docs/interfaces.md, section 3).

It authenticates with the single-user server's JupyterHub token, so the broker sees the
user, never a shared identity. The token is read from the environment at call time and
never logged, echoed or written anywhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest


class BrokerUnavailable(Exception):
    """The broker could not be reached or answered something that is not its API."""


@dataclass
class BrokerReply:
    status: int
    body: Any


class BrokerError(Exception):
    """The broker refused a request; carries its `{code, message, field?}`."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.code = str(body.get("code", "BROKER_ERROR"))
        self.message = str(body.get("message", "the broker refused the request"))
        self.field = body.get("field")
        super().__init__(f"{self.code}: {self.message}")


def _token() -> str:
    token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
    if not token:
        raise BrokerUnavailable(
            "no JupyterHub token in this server's environment (JUPYTERHUB_API_TOKEN): "
            "dshare needs the server to be started by JupyterHub"
        )
    return token


class AsyncBrokerClient:
    """Calls `<broker_url>api/v1/<path>` and returns the status and decoded JSON."""

    def __init__(self, broker_url: str, *, timeout: float = 30.0) -> None:
        if not broker_url:
            raise BrokerUnavailable(
                "no broker configured: DSHARE_BROKER_URL is not set for this server "
                "(the dshare spawners set it; ask your JupyterHub administrator)"
            )
        self.base = broker_url if broker_url.endswith("/") else broker_url + "/"
        self.timeout = timeout

    def url(self, path: str, query: dict[str, str] | None = None) -> str:
        url = f"{self.base}api/v1/{path.lstrip('/')}"
        if query:
            url += "?" + urlencode(query)
        return url

    async def forward(
        self, method: str, path: str, *, query: str = "", body: bytes | None = None
    ) -> BrokerReply:
        """Send a request through unchanged and hand back whatever the broker said."""
        url = f"{self.base}api/v1/{path.lstrip('/')}" + (f"?{query}" if query else "")
        request = HTTPRequest(
            url,
            method=method,
            headers={"Authorization": f"token {_token()}", "Content-Type": "application/json"},
            body=body if method in ("POST", "PATCH", "PUT") else None,
            allow_nonstandard_methods=True,
            request_timeout=self.timeout,
            follow_redirects=False,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as e:
            raise BrokerUnavailable(f"the broker at {self.base} did not answer: {e}") from None
        if response.code == 599:
            raise BrokerUnavailable(
                f"the broker at {self.base} did not answer: {response.error}"
            ) from None
        text = response.body or b""
        try:
            decoded = json.loads(text) if text else None
        except ValueError:
            raise BrokerUnavailable(
                f"the broker at {self.base} answered {response.code} with something that is "
                "not JSON; is DSHARE_BROKER_URL pointing at a dshare broker?"
            ) from None
        return BrokerReply(response.code, decoded)

    async def call(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
    ) -> Any:
        """Like `forward`, but raises `BrokerError` for any refusal."""
        body = json.dumps(payload).encode() if payload is not None else None
        reply = await self.forward(method, path, query=urlencode(query) if query else "", body=body)
        if reply.status >= 400:
            raise BrokerError(reply.status, reply.body if isinstance(reply.body, dict) else {})
        return reply.body

    async def list_leases(self, scope: str = "mine") -> list[dict[str, Any]]:
        return list((await self.call("GET", "leases", query={"scope": scope}))["items"])

    async def start_run(self, name: str, lease_ids: list[str], spec_sha256: str) -> dict[str, Any]:
        payload = {"name": name, "lease_ids": lease_ids, "spec_sha256": spec_sha256}
        return dict(await self.call("POST", "runs", payload))

    async def finish_run(
        self, run_id: str, outcome: str, result_sha256: str | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"outcome": outcome}
        if result_sha256:
            payload["result_sha256"] = result_sha256
        return dict(await self.call("POST", f"runs/{quote(run_id, safe='')}/finish", payload))

    async def submit_run(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(await self.call("POST", "runs", body))

    async def get_run(self, run_id: str) -> dict[str, Any]:
        return dict(await self.call("GET", f"runs/{quote(run_id, safe='')}"))

    async def run_logs(self, run_id: str, job: str) -> str:
        path = f"runs/{quote(run_id, safe='')}/logs/{quote(job, safe='')}"
        url = f"{self.base}api/v1/{path}"
        request = HTTPRequest(
            url,
            headers={"Authorization": f"token {_token()}"},
            request_timeout=self.timeout,
            follow_redirects=False,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except OSError as e:
            raise BrokerUnavailable(f"the broker at {self.base} did not answer: {e}") from None
        if response.code >= 400:
            try:
                body = json.loads(response.body or b"{}")
            except ValueError:
                body = {}
            raise BrokerError(response.code, body if isinstance(body, dict) else {})
        return (response.body or b"").decode(errors="replace")

    async def cancel_run(self, run_id: str) -> None:
        await self.call("POST", f"runs/{quote(run_id, safe='')}/cancel", {})

    async def request_approval(self, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /approvals`: `{spec, workspace, working_dir}` as for a run."""
        return dict(await self.call("POST", "approvals", body))

    async def list_approvals(self, scope: str = "mine") -> dict[str, Any]:
        return dict(await self.call("GET", "approvals", query={"scope": scope}))


def from_environment() -> AsyncBrokerClient:
    """The client the magic and the CLI use: the broker the spawner configured."""
    return AsyncBrokerClient(os.environ.get("DSHARE_BROKER_URL", ""))

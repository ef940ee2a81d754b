"""The broker's client of the job executor (embedded deployment).

The broker authenticates with its own JupyterHub service token, so the executor knows
which organization's broker is asking (HubAuth on its side). Each call is a small
function that handles the statuses it expects; anything else is an `ApiError` that
names the executor, never a traceback or the executor's internals.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse

from .errors import ApiError


def _service_token() -> str:
    return os.environ.get("JUPYTERHUB_API_TOKEN", "")


class ExecutorClient:
    def __init__(
        self,
        url: str,
        *,
        token: Callable[[], str] = _service_token,
        timeout_s: float = 60.0,
    ) -> None:
        self.base = url.rstrip("/") + "/api/v1"
        self.token = token
        self.timeout_s = timeout_s

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> HTTPResponse:
        request = HTTPRequest(
            f"{self.base}/{path}",
            method=method,
            body=json.dumps(body) if body is not None else None,
            headers={"Authorization": f"token {self.token()}", "Content-Type": "application/json"},
            request_timeout=self.timeout_s,
            follow_redirects=False,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except OSError:
            raise ApiError("EXECUTOR_UNAVAILABLE", "the job executor cannot be reached") from None
        if response.code == 599:
            raise ApiError("EXECUTOR_UNAVAILABLE", "the job executor did not answer in time")
        return response

    @staticmethod
    def _refusal(response: HTTPResponse) -> ApiError:
        try:
            problem = json.loads(response.body or b"{}")
            return ApiError(str(problem["code"]), str(problem["message"]), problem.get("field"))
        except (ValueError, KeyError, TypeError):
            return ApiError("EXECUTOR_UNAVAILABLE", f"the job executor failed ({response.code})")

    async def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._call("POST", "runs", body)
        if response.code not in (200, 201, 202):
            raise self._refusal(response)
        result: dict[str, Any] = json.loads(response.body)
        return result

    async def status(self, run_id: str) -> dict[str, Any] | None:
        """The executor's view of a run, or None when it has never heard of it."""
        response = await self._call("GET", f"runs/{quote(run_id, safe='')}")
        if response.code == 404:
            return None
        if response.code != 200:
            raise self._refusal(response)
        result: dict[str, Any] = json.loads(response.body)
        return result

    async def logs(self, run_id: str, job: str) -> str:
        response = await self._call(
            "GET", f"runs/{quote(run_id, safe='')}/logs/{quote(job, safe='')}"
        )
        if response.code != 200:
            raise self._refusal(response)
        return (response.body or b"").decode(errors="replace")

    async def cancel(self, run_id: str) -> None:
        response = await self._call("POST", f"runs/{quote(run_id, safe='')}/cancel", {})
        if response.code not in (200, 202, 204):
            raise self._refusal(response)

    async def decide(
        self, run_id: str, *, path: str, approve: bool, org: str, reason: str
    ) -> dict[str, Any]:
        body = {"path": path, "approve": approve, "org": org, "reason": reason}
        response = await self._call("POST", f"runs/{quote(run_id, safe='')}/outputs/decide", body)
        if response.code != 200:
            raise self._refusal(response)
        result: dict[str, Any] = json.loads(response.body)
        return result

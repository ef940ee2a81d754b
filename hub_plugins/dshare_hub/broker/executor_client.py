"""The broker's client of the job executor (embedded deployment).

The broker authenticates with its own JupyterHub service token, so the executor knows
which organization's broker is asking (HubAuth on its side). Each call is a small
function that handles the statuses it expects; anything else is an `ApiError` that
names the executor, never a traceback or the executor's internals.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse

from .errors import ApiError
from .runner import Submission


def _service_token() -> str:
    return os.environ.get("JUPYTERHUB_API_TOKEN", "")


class ExecutorClient:
    """The `Runner` of the embedded deployment."""

    image = "dshare-local"  # the executor runs every job in its own sandbox
    supports_mock = True  # it writes mock views itself (executor/mockrun.py)

    def __init__(
        self,
        url: str,
        *,
        token: Callable[[], str] = _service_token,
        timeout_s: float = 60.0,
        system_username_template: str = "{username}",
    ) -> None:
        self.base = url.rstrip("/") + "/api/v1"
        self.token = token
        self.timeout_s = timeout_s
        self.system_username_template = system_username_template

    def _account(self, user: str) -> pwd.struct_passwd:
        name = self.system_username_template.format(username=user)
        try:
            return pwd.getpwnam(name)
        except KeyError:
            raise ApiError(
                "INVALID_STATE",
                f"user {user!r} has no system account on this machine yet; start your "
                "server once (the spawner creates it), then run again",
            ) from None

    def check_user(self, user: str) -> None:
        self._account(user)

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

    async def submit(self, run: Submission) -> None:
        account = self._account(run.user)
        body = {
            "run_id": run.run_id,
            "org": run.org,
            "user": run.user,
            "home": account.pw_dir,
            "uid": account.pw_uid,
            "gid": account.pw_gid,
            "manifest": run.manifest,
            "home_claim": run.home_claim,
            "mounts": run.mounts,
            "workspace": base64.b64encode(run.workspace).decode(),
        }
        if run.mock:
            body["mock"] = True
        response = await self._call("POST", "runs", body)
        if response.code not in (200, 201, 202):
            raise self._refusal(response)

    async def status(self, run_id: str, user: str = "") -> dict[str, Any] | None:
        """The executor's view of a run, or None when it has never heard of it."""
        response = await self._call("GET", f"runs/{quote(run_id, safe='')}")
        if response.code == 404:
            return None
        if response.code != 200:
            raise self._refusal(response)
        result: dict[str, Any] = json.loads(response.body)
        return result

    async def logs(self, run_id: str, user: str, job: str) -> str:
        response = await self._call(
            "GET", f"runs/{quote(run_id, safe='')}/logs/{quote(job, safe='')}"
        )
        if response.code != 200:
            raise self._refusal(response)
        return (response.body or b"").decode(errors="replace")

    async def cancel(self, run_id: str, user: str = "") -> None:
        response = await self._call("POST", f"runs/{quote(run_id, safe='')}/cancel", {})
        if response.code not in (200, 202, 204):
            raise self._refusal(response)

    async def decide(
        self,
        run_id: str,
        user: str,
        *,
        output: dict[str, Any],
        approve: bool,
        org: str,
        reason: str,
    ) -> None:
        # The executor keeps each owner's decision itself and delivers once all approved.
        body = {"path": output["path"], "approve": approve, "org": org, "reason": reason}
        response = await self._call("POST", f"runs/{quote(run_id, safe='')}/outputs/decide", body)
        if response.code != 200:
            raise self._refusal(response)

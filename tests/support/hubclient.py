"""A person's view of a running JupyterHub: log in with the form, start a server, run code.

Plain HTTP and websockets against the real hub, proxy and single-user server; no JupyterHub
internals, so what passes here is what a browser would see.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse
from tornado.websocket import websocket_connect


@dataclass
class HubSession:
    base: str  # e.g. http://127.0.0.1:8000/
    user: str = ""
    cookies: dict[str, str] = field(default_factory=dict)

    def _cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def _remember(self, response: HTTPResponse) -> None:
        for header in response.headers.get_list("Set-Cookie"):
            cookie: SimpleCookie = SimpleCookie()
            cookie.load(header)
            for name, morsel in cookie.items():
                if morsel.value:
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)

    async def fetch(
        self,
        path: str,
        method: str = "GET",
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        follow: bool = False,
    ) -> HTTPResponse:
        url = path if path.startswith("http") else self.base + path.lstrip("/")
        for _ in range(10):
            all_headers = {"Cookie": self._cookie_header(), **(headers or {})}
            response = await AsyncHTTPClient().fetch(
                HTTPRequest(
                    url,
                    method=method,
                    body=body,
                    headers=all_headers,
                    follow_redirects=False,
                    allow_nonstandard_methods=True,
                    request_timeout=120,
                ),
                raise_error=False,
            )
            self._remember(response)
            if not (follow and response.code in (301, 302, 303, 307)):
                return response
            location = response.headers["Location"]
            url = location if location.startswith("http") else self.base + location.lstrip("/")
            method, body = "GET", None
        return response

    @property
    def xsrf(self) -> str:
        return self.cookies.get("_xsrf", "")

    async def login(self, user: str, password: str) -> HTTPResponse:
        """Fill in the login form as a browser does (the form's _xsrf included)."""
        page = await self.fetch("hub/login")
        match = re.search(rb'name="_xsrf" value="([^"]+)"', page.body or b"")
        xsrf = match.group(1).decode() if match else self.xsrf
        response = await self.fetch(
            "hub/login",
            "POST",
            urlencode({"username": user, "password": password, "_xsrf": xsrf}),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        if response.code == 302:
            self.user = user
        return response

    async def put_text(self, name: str, content: str) -> None:
        """Write a text file into the user's home through the contents API, as the editor does."""
        status, body = await self.api(
            f"api/contents/{name}", "PUT", {"type": "file", "format": "text", "content": content}
        )
        assert status in (200, 201), body

    async def stop_own_server(self) -> None:
        """Stop the user's server with a short-lived token of their own, and wait for it
        (a module that leaves no server running leaves no process behind either)."""
        await self.fetch("hub/home")  # the hub's own XSRF cookie (the server's has its name)
        response = await self.fetch(
            f"hub/api/users/{self.user}/tokens",
            "POST",
            json.dumps({"note": "stop after the tests", "expires_in": 300}),
            {"X-XSRFToken": self.xsrf, "Content-Type": "application/json"},
        )
        assert response.code == 201, response.body
        await self.stop_server(json.loads(response.body)["token"])

    async def stop_server(self, token: str, timeout: float = 120.0) -> None:
        """Stop the user's server if it runs (tests share one deployment, so an earlier
        module may have left it running) and wait until the hub says it is gone."""
        auth = {"Authorization": f"token {token}"}
        response = await self.fetch(f"hub/api/users/{self.user}/server", "DELETE", None, auth)
        assert response.code in (202, 204, 400), response.body
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            reply = await self.fetch(f"hub/api/users/{self.user}", headers=auth)
            model = json.loads(reply.body or b"{}")
            if reply.code == 200 and not model.get("server") and not model.get("pending"):
                return
            if loop.time() > deadline:
                raise AssertionError(f"{self.user}'s server did not stop: {reply.body!r}")
            await asyncio.sleep(0.5)

    async def start_server(self, timeout: float = 120.0) -> HTTPResponse:
        """Follow the spawn redirects until JupyterLab's page answers."""
        await self.fetch("hub/spawn", follow=False)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            response = await self.fetch(f"user/{self.user}/lab", follow=True)
            if response.code == 200 and b"jupyter-config-data" in (response.body or b""):
                return response
            if loop.time() > deadline:
                raise AssertionError(
                    f"{self.user}'s server did not start: {response.code} "
                    f"{(response.body or b'')[:500]!r}"
                )
            await asyncio.sleep(1)

    async def api(
        self, path: str, method: str = "GET", payload: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        """Call the user's server API with the browser's cookies and XSRF header."""
        response = await self.fetch(
            f"user/{self.user}/{path.lstrip('/')}",
            method,
            json.dumps(payload) if payload is not None else None,
            {"X-XSRFToken": self.xsrf, "Content-Type": "application/json"},
        )
        text = response.body or b""
        try:
            return response.code, json.loads(text) if text else None
        except ValueError:
            return response.code, text.decode(errors="replace")

    async def run_code(self, code: str, timeout: float = 180.0) -> tuple[str, list[dict]]:
        """Run `code` in a new kernel of the user's server; return (stdout, error outputs)."""
        status, kernel = await self.api("api/kernels", "POST", {"name": "python3"})
        assert status == 201, f"could not start a kernel: {status} {kernel}"
        ws_url = self.base.replace("http", "ws", 1) + (
            f"user/{self.user}/api/kernels/{kernel['id']}/channels"
        )
        conn = await websocket_connect(
            HTTPRequest(ws_url, headers={"Cookie": self._cookie_header(), "X-XSRFToken": self.xsrf})
        )
        msg_id = uuid.uuid4().hex
        conn.write_message(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "username": self.user,
                        "session": uuid.uuid4().hex,
                        "version": "5.3",
                        "date": "",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {"code": code, "silent": False, "allow_stdin": False},
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        out: list[str] = []
        errors: list[dict] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    raw = await conn.read_message()
                    if raw is None:
                        raise AssertionError("the kernel's websocket closed")
                    msg = json.loads(raw)
                    if msg.get("parent_header", {}).get("msg_id") != msg_id:
                        continue
                    kind = msg["msg_type"]
                    content = msg["content"]
                    if kind == "stream":
                        out.append(content["text"])
                    elif kind == "error":
                        errors.append(content)
                    elif kind in ("execute_result", "display_data", "update_display_data"):
                        out.append(content.get("data", {}).get("text/plain", "") + "\n")
                    elif kind == "status" and content["execution_state"] == "idle":
                        break
        finally:
            conn.close()
            await self.api(f"api/kernels/{kernel['id']}", "DELETE")
        return "".join(out), errors


async def signed_in(public_url: str, user: str, password: str) -> HubSession:
    """A user logged in through the form with a running server."""
    session = HubSession(public_url)
    await session.login(user, password)
    await session.start_server()
    return session

"""A JupyterLab terminal driven the way the browser drives it: REST to create it, then the
terminado websocket (["stdin", text] in, ["stdout", text] out) with the hub session cookie."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


async def terminal(session: Any, command: str, done: str, timeout: float = 200.0) -> str:
    """Run `command` in a new terminal of the session's user; return everything the terminal
    printed up to the line holding `done` (the command must echo it when finished)."""
    status, created = await session.api("api/terminals", "POST", {})
    assert status == 200 and isinstance(created, dict), f"no terminal: {status} {created}"
    name = created["name"]
    url = session.base.replace("http", "ws", 1) + (
        f"user/{session.user}/terminals/websocket/{name}"
    )
    conn = await websocket_connect(
        HTTPRequest(url, headers={"Cookie": session._cookie_header(), "X-XSRFToken": session.xsrf})
    )
    out: list[str] = []
    try:
        # `stty -echo` first: what comes back is what the commands printed, not their text.
        conn.write_message(
            json.dumps(["stdin", f'stty -echo; {command}; echo; echo {done[:4]}""{done[4:]}\r'])
        )
        async with asyncio.timeout(timeout):
            while True:
                raw = await conn.read_message()
                if raw is None:
                    raise AssertionError("the terminal's websocket closed")
                msg = json.loads(raw)
                if msg[0] == "stdout":
                    out.append(msg[1])
                    text = "".join(out)
                    if f"\n{done}" in text.replace("\r", ""):
                        return text.replace("\r", "")
    finally:
        conn.close()
        await session.api(f"api/terminals/{name}", "DELETE")

"""Fixtures of the hub suites, over the session's one deployment (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest_asyncio
from hubclient import HubSession, signed_in


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sign_in(deployment, logins) -> AsyncIterator[Callable[[str], Awaitable[HubSession]]]:
    """`await sign_in(user)`: the user logged in with a running server. The servers a module
    started are stopped when it ends: a server left running keeps processes of its user
    alive, and later modules expect to spawn it themselves."""
    opened: dict[str, HubSession] = {}

    async def open_session(user: str) -> HubSession:
        opened[user] = await signed_in(deployment.layout.public_url, user, logins[user])
        return opened[user]

    yield open_session
    for session in opened.values():
        await session.stop_own_server()

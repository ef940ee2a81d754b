"""The broker's cache of dataset pages, keyed by the ledger's state token."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable

StateToken = Callable[[], Awaitable[Hashable]]


class PageCache:
    """Response bodies of dataset pages, each kept with the ledger state token it was made at.

    A body is served only while the ledger still answers the same token (no commit from any
    process, no lease past its expiry since), so a page is never older than the last
    commit; the token is read before the lookup. One request makes a missing page while
    concurrent requests for it wait, so a commit does not set off 50 identical queries.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._bodies: OrderedDict[str, tuple[Hashable, bytes]] = OrderedDict()
        self._making: dict[tuple[str, Hashable], asyncio.Future[bytes | None]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._bodies)

    async def get(self, key: str, make: Callable[[], Awaitable[bytes]], token: StateToken) -> bytes:
        at = await token()
        while True:
            kept = self._bodies.get(key)
            if kept is not None and kept[0] == at:
                self._bodies.move_to_end(key)
                self.hits += 1
                return kept[1]
            making = self._making.get((key, at))
            if making is None:
                break
            body = await asyncio.shield(making)
            if body is not None:
                self.hits += 1
                return body
            # The request making it was refused or failed: errors are not shared, so the
            # first waiter to wake makes it again and the others wait for that one.
        self.misses += 1
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._making[(key, at)] = future
        body = None
        try:
            body = await make()
        finally:
            del self._making[(key, at)]
            future.set_result(body)
        # Kept only if nothing changed while it was made: then it is the page at `at`.
        if await token() == at:
            self._bodies[key] = (at, body)
            self._bodies.move_to_end(key)
            while len(self._bodies) > self.size:
                self._bodies.popitem(last=False)
        return body

"""Interactive datasets in the running server: `~/datasets/<name>` follows the leases.

The spawner links the views that exist at spawn; while the server runs, a lease may
become active (granted, approved by its owner) or end. So the server asks its broker for
the user's views every `DShareServerConfig.views_refresh_interval` seconds, and at once on
`POST /dshare/api/views` (the DataExplorer or a notebook may call it after leasing), and
links or prunes as the user it runs as. A link whose view is gone (the owner's reaper
removed it at the lease's end) is pruned even when the broker cannot be reached.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.utils import url_path_join
from tornado.ioloop import PeriodicCallback

from .broker_client import AsyncBrokerClient, BrokerError, BrokerUnavailable
from .config import DShareServerConfig
from .handlers import DShareHandler, broker_error_reply
from .links import links_from_views, prune_dangling, sync_links

log = logging.getLogger("dshare.server.views")


def datasets_root() -> Path:
    return Path(os.path.expanduser("~")) / "datasets"


async def refresh_views(client: AsyncBrokerClient, root: Path | None = None) -> dict[str, Any]:
    """Ask the broker for the user's views and make ~/datasets match; what it did."""
    root = root or datasets_root()
    reply = await client.call("POST", "views", {})
    items = reply.get("items", []) if isinstance(reply, dict) else []
    result = await asyncio.to_thread(sync_links, root, links_from_views(items))
    return {
        "items": [
            {k: item.get(k) for k in ("lease_id", "asset_id", "name", "dir", "expires_at")}
            for item in items
            if isinstance(item, dict)
        ],
        "unavailable": reply.get("unavailable", []) if isinstance(reply, dict) else [],
        "linked": result.linked,
        "pruned": result.pruned,
        "kept": result.kept,
    }


class ViewsHandler(DShareHandler):
    """POST: refresh the links of interactive datasets now (after a lease, say)."""

    @tornado.web.authenticated
    async def post(self) -> None:
        try:
            self.write_json(200, await refresh_views(self.broker()))
        except (BrokerError, BrokerUnavailable) as e:
            broker_error_reply(self, e)


class ViewsRefresher:
    """The periodic refresh; one at a time, never raising into the event loop."""

    def __init__(self, config: DShareServerConfig) -> None:
        self.config = config
        self.running = False

    async def tick(self) -> None:
        if self.running or not self.config.broker_url:
            return
        self.running = True
        try:
            client = AsyncBrokerClient(self.config.broker_url, timeout=self.config.request_timeout)
            try:
                await refresh_views(client)
            except (BrokerError, BrokerUnavailable) as e:
                log.info("dshare: interactive datasets not refreshed: %s", e)
                await asyncio.to_thread(prune_dangling, datasets_root())
        except OSError as e:
            log.warning("dshare: cannot update ~/datasets: %s", e)
        finally:
            self.running = False


def setup_views(web_app: Any, config: DShareServerConfig) -> PeriodicCallback | None:
    """Register POST /dshare/api/views (before the broker proxy's catch-all) and start the
    periodic refresh; returns the callback (None when turned off)."""
    base = url_path_join(web_app.settings["base_url"], "dshare", "api")
    web_app.add_handlers(".*$", [(url_path_join(base, "views"), ViewsHandler)])
    if config.views_refresh_interval <= 0:
        return None
    refresher = ViewsRefresher(config)
    callback = PeriodicCallback(refresher.tick, config.views_refresh_interval * 1000)
    callback.start()
    return callback

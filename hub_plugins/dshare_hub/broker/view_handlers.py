"""Handlers of interactive views: the user's `POST views` and the owners' `POST peer/views`.

`view_routes` comes before the broker's own `routes` in the application (app.py), so the
catch-all there never hides them; the route test walks the application's whole table.
"""

from __future__ import annotations

from tornado import web

from .handlers import BaseHandler
from .interactive import InteractiveViews


class _ViewsBase(BaseHandler):
    @property
    def views(self) -> InteractiveViews:
        views: InteractiveViews = self.settings["views"]
        return views


class ViewsHandler(_ViewsBase):
    """The caller's interactive views, made where missing (their server links to them)."""

    async def post(self) -> None:
        self.reply(await self.views.refresh(self.caller))


class PeerViewHandler(_ViewsBase):
    """Broker-to-broker: authenticated by the org signature, not by a hub token."""

    needs_user = False

    def check_xsrf_cookie(self) -> None:
        return None

    async def post(self) -> None:
        self.reply(await self.views.peer_view(self.body()), 201)


def view_routes(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    api = prefix.rstrip("/") + "/api/v1"
    return [(f"{api}/views", ViewsHandler), (f"{api}/peer/views", PeerViewHandler)]

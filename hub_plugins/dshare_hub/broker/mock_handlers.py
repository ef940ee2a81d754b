"""The handler of mock previews (`GET datasets/{id}/mock`); what it does is in mocks.py.

`mock_routes` comes before the broker's own `routes` in the application (app.py), as
view_routes do, so the catch-all there never hides it.
"""

from __future__ import annotations

from tornado import web

from .handlers import BaseHandler
from .mocks import DEFAULT_MAX_PREVIEW_ROWS, preview
from .synthesize import synthesize


class MockPreviewHandler(BaseHandler):
    async def get(self, asset_id: str) -> None:
        cap = int(self.settings.get("mock_preview_max_rows", DEFAULT_MAX_PREVIEW_ROWS))
        self.reply(await preview(self.broker, self.caller, asset_id, self.params(), cap))


class MockSynthesizeHandler(BaseHandler):
    """The owner's opt-in: mock ranges from the real rows (synthesize.py)."""

    async def post(self, asset_id: str) -> None:
        self.reply(await synthesize(self.broker, self.caller, asset_id, self.body()))


def mock_routes(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    """Before the broker's own `routes` in the application, as view_routes are."""
    api = prefix.rstrip("/") + "/api/v1"
    return [
        (f"{api}/datasets/([^/]+)/mock", MockPreviewHandler),
        (f"{api}/datasets/([^/]+)/mock/synthesize", MockSynthesizeHandler),
    ]

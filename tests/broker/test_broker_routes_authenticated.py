"""Every broker route refuses a caller without a JupyterHub token, but the few that are
public or authenticated otherwise by design, which are listed here with their reason.

Routes and methods are read from the broker's own route table, so a handler added later
that skips authentication fails this test.
"""

from __future__ import annotations

import re

import pytest
import pytest_asyncio
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from tornado.web import RequestHandler

from dshare_hub.broker.app import BrokerApp
from dshare_hub.broker.handlers import routes
from dshare_hub.broker.view_handlers import view_routes
from dshare_hub.keys.kek import generate_kek_line
from dshare_hub.ledger.embedded import EmbeddedLedger

PREFIX = "/services/dshare-uis/"
# (handler class name, method) -> status an anonymous caller gets, and why that is right.
NOT_BY_TOKEN = {
    ("OpenApiHandler", "GET"): 200,  # the API's description is public, as in any service
    ("PeerMountHandler", "POST"): 403,  # brokers sign these; an unsigned body is refused
    ("PeerViewHandler", "POST"): 403,  # the same for interactive views
    ("ServiceRootHandler", "GET"): 200,  # JupyterHub's readiness check: names the service only
    ("NotFoundHandler", "GET"): 404,
    ("NotFoundHandler", "POST"): 404,
    ("NotFoundHandler", "PATCH"): 404,
    ("NotFoundHandler", "DELETE"): 404,
}


def example(pattern: str) -> str:
    """A concrete path matching a route: an alternation becomes its first choice."""

    def group(match: re.Match[str]) -> str:
        body = match.group(1)
        return body.split("|")[0] if "|" in body else "x"

    return re.sub(r"\(([^)]*)\)", group, pattern).replace(".*", "nothing-here")


@pytest_asyncio.fixture
async def broker_url(tmp_path, monkeypatch):
    # HubAuth needs an API URL and token to exist; an anonymous caller never reaches the hub.
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:9/hub/api")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "unused-in-this-test")
    kek = tmp_path / "kek"
    kek.write_text(generate_kek_line() + "\n")
    app = BrokerApp(
        org="UiS",
        data_dir=str(tmp_path / "broker"),
        ledger_db=str(tmp_path / "ledger.sqlite"),
        identity_dir=str(tmp_path / "identities"),
        kek_file=str(kek),
        base_url=PREFIX,
    )
    ledger = EmbeddedLedger.open(app.ledger_db, app.identity_dir, "UiS")
    web_app, _, _ = app.build(ledger)
    sock, port = bind_unused_port()
    server = HTTPServer(web_app)
    server.add_sockets([sock])
    yield f"http://127.0.0.1:{port}", web_app
    server.stop()
    await ledger.close()


@pytest.mark.asyncio
async def test_every_route_and_method_needs_a_token_unless_listed(broker_url):
    broker_url, web_app = broker_url
    checked = []
    # The application's own table, in its order (views' and mocks' routes come first).
    table = [(r.matcher.regex.pattern.rstrip("$"), r.target) for r in web_app.wildcard_router.rules]
    listed = {h for _p, h in [*view_routes(PREFIX), *routes(PREFIX)]}
    assert listed <= {h for _p, h in table}
    assert {"MockPreviewHandler", "MockSynthesizeHandler"} <= {h.__name__ for _p, h in table}
    for pattern, handler in table:
        for method in ("GET", "POST", "PATCH", "DELETE"):
            inherited = getattr(handler, method.lower()) is getattr(RequestHandler, method.lower())
            if inherited and handler.__name__ != "NotFoundHandler":
                continue  # not implemented: tornado answers 405 to anyone
            response = await AsyncHTTPClient().fetch(
                broker_url + example(pattern),
                method=method,
                body=b"{}" if method in ("POST", "PATCH") else None,
                allow_nonstandard_methods=True,
                raise_error=False,
            )
            expected = NOT_BY_TOKEN.get((handler.__name__, method), 401)
            checked.append((method, pattern, response.code))
            assert response.code == expected, (
                f"{method} {pattern} ({handler.__name__}) answered {response.code} to an "
                f"anonymous caller, expected {expected}: {response.body[:200]!r}"
            )
    assert len(checked) > 10

"""Every /dshare/ route refuses a caller without credentials.

The routes are read from the running server's own table, so a handler added later without
@tornado.web.authenticated fails this test without anyone having to list it here.
"""

from __future__ import annotations

import re

import pytest
from tornado.httpclient import HTTPClientError
from tornado.web import RequestHandler

METHODS = ("GET", "POST", "PATCH", "DELETE")


def dshare_routes(serverapp):
    """Every (regex, handler class) under /dshare/, wherever tornado keeps the rule."""
    found = []

    def walk(rules):
        for rule in rules:
            nested = getattr(rule.target, "rules", None)
            if nested is not None:
                walk(nested)
                continue
            regex = getattr(rule.matcher, "regex", None)
            if regex is not None and "/dshare/" in regex.pattern:
                found.append((regex.pattern, rule.target))

    app = serverapp.web_app
    walk(app.wildcard_router.rules)
    walk(app.default_router.rules)
    return found


def example_path(pattern: str) -> str:
    """A concrete URL matching a route's regex: every group becomes a plausible segment."""
    path = re.sub(r"\(\?P<\w+>[^)]*\)|\([^)]*\)", "x", pattern.rstrip("$"))
    return path.replace("\\", "")


async def test_extension_registers_routes(jp_serverapp):
    assert dshare_routes(jp_serverapp), "the dshare server extension registered no routes"


async def test_every_route_and_method_requires_login(jp_serverapp, http_server_client):
    refused = []
    for pattern, handler in dshare_routes(jp_serverapp):
        for method in METHODS:
            if getattr(handler, method.lower()) is getattr(RequestHandler, method.lower()):
                continue  # not implemented: tornado answers 405 to anyone
            url = example_path(pattern)
            with pytest.raises(HTTPClientError) as e:
                await http_server_client.fetch(
                    url,
                    method=method,
                    body=b"{}" if method in ("POST", "PATCH") else None,
                    allow_nonstandard_methods=True,
                    headers={"Content-Type": "application/json"},
                )
            refused.append((method, url, e.value.code))
            assert e.value.code in (401, 403), f"{method} {url} answered {e.value.code}"
    assert refused

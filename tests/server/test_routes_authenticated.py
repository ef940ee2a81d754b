"""Every /dshare/ route refuses a caller without credentials.

The routes are read from the running server's own table, so a handler added later without
@tornado.web.authenticated fails this test without anyone having to list it here.
"""

from __future__ import annotations

import re

import pytest
from tornado.httpclient import HTTPClientError

METHODS = ("GET", "POST", "PATCH", "DELETE")


def dshare_routes(serverapp):
    routes = []
    for rule in serverapp.web_app.wildcard_router.rules:
        for sub in getattr(rule.target, "rules", []):
            pattern = sub.matcher.regex.pattern
            if "/dshare/" in pattern:
                routes.append((pattern, sub.target))
    return routes


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
            if not hasattr(handler, method.lower()):
                continue
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

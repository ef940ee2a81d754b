"""POST /dshare/api/approvals reads the workflow from the user's home only: a path out of
the home, or no workflow at all, is refused before the broker is asked."""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import HTTPClientError


async def _refusal(jp_fetch, body: dict) -> tuple[int, dict]:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("dshare", "api", "approvals", method="POST", body=json.dumps(body))
    response = info.value.response
    assert response is not None
    return response.code, json.loads(response.body)


async def test_a_path_out_of_the_home_is_refused(jp_fetch):
    assert await _refusal(jp_fetch, {"path": "../../../../etc/passwd"}) == (
        400,
        {
            "code": "INVALID_ARGUMENT",
            "message": "path: ../../../../etc/passwd is not a workflow file in your home",
            "field": "path",
        },
    )


async def test_no_workflow_is_refused(jp_fetch):
    assert await _refusal(jp_fetch, {}) == (
        400,
        {
            "code": "INVALID_ARGUMENT",
            "message": "path: name the workflow file in your home (or send its text as `yaml`)",
            "field": "path",
        },
    )

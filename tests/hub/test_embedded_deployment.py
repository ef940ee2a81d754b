"""The embedded deployment as a newcomer meets it: log in, reach JupyterLab, see dshare."""

from __future__ import annotations

import json
import re

import pytest
from hubclient import HubSession

from dshare_hub.auth.directory import DirectoryUser, edit_directory
from dshare_hub.auth.passwords import hash_password

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_login_page_answers(deployment):
    session = HubSession(deployment.layout.public_url)
    response = await session.fetch("hub/login")
    assert response.code == 200
    assert b'name="password"' in response.body


async def test_wrong_password_is_refused(deployment, logins):
    session = HubSession(deployment.layout.public_url)
    response = await session.login("uio-scientist", logins["uio-scientist"] + "x")
    assert response.code == 403
    assert "jupyterhub-session-id" not in session.cookies or not session.user


async def test_scientist_reaches_jupyterlab_with_dshare(deployment, logins):
    session = HubSession(deployment.layout.public_url)
    response = await session.login("uio-scientist", logins["uio-scientist"])
    assert response.code == 302, response.body
    page = await session.start_server()
    config = json.loads(
        re.search(
            rb'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
            page.body,
            re.S,
        ).group(1)
    )
    names = [ext["name"] for ext in config.get("federated_extensions", [])]
    assert "dshare" in names, f"the DataExplorer labextension is not loaded: {names}"

    status, me = await session.api("dshare/api/me")
    assert status == 200, me
    assert me["user"] == "uio-scientist"
    assert me["org"] == "UiO"
    assert "scientist" in me["roles"]


async def test_sample_datasets_are_listed_for_every_org(deployment, logins):
    session = HubSession(deployment.layout.public_url)
    await session.login("uib-scientist", logins["uib-scientist"])
    await session.start_server()
    status, body = await session.api("dshare/api/datasets?limit=50")
    assert status == 200, body
    owners = {d["owner_org"] for d in body["items"]}
    assert owners == {"UiS", "UiO", "UiB"}
    ids = {d["id"] for d in body["items"]}
    assert {"uis-lorem-corpus", "uio-payments", "uib-patient-visits"} <= ids
    for dataset in body["items"]:
        assert "storage" not in dataset and "sealed" not in json.dumps(dataset).lower()


async def test_user_without_org_is_refused_with_reason(deployment):
    with edit_directory(deployment.layout.user_directory) as users:
        users["drifter"] = DirectoryUser(
            name="drifter",
            org=None,
            roles=("scientist",),
            password_hash=hash_password("pw-drifter"),
        )
    session = HubSession(deployment.layout.public_url)
    response = await session.login("drifter", "pw-drifter")
    assert response.code == 403
    assert b"organization" in response.body.lower()

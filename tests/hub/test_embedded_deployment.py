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


async def test_leased_dataset_skeleton_is_in_the_server_and_no_secret_is(deployment, logins):
    """Lease before the server starts; inside the running server the dataset's skeleton is
    there (names and sizes, no content) and nothing secret is in its environment."""
    layout = deployment.layout
    session = HubSession(layout.public_url)
    await session.login("uis-scientist", logins["uis-scientist"])
    response = await session.fetch(
        "hub/api/users/uis-scientist/tokens",
        "POST",
        json.dumps({"note": "lease before spawn", "expires_in": 300}),
        {"X-XSRFToken": session.xsrf, "Content-Type": "application/json"},
    )
    assert response.code == 201, response.body
    token = json.loads(response.body)["token"]
    leased = await session.fetch(
        "services/dshare-uis/api/v1/leases",
        "POST",
        json.dumps({"dataset_id": "uio-lorem-corpus", "duration_s": 3600, "purpose": "skeleton"}),
        {"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    assert leased.code == 201, leased.body

    await session.start_server()
    out, errors = await session.run_code(
        "import json, os\n"
        "root = os.path.expanduser('~/datasets/UiO lorem corpus')\n"
        "print(json.dumps(sorted((f, os.path.getsize(os.path.join(root, f)))"
        " for f in os.listdir(root))))\n"
        "print(json.dumps(dict(os.environ)))\n"
    )
    assert not errors, (out, errors)
    skeleton_line, env_line = out.strip().splitlines()[-2:]
    assert [name for name, _ in json.loads(skeleton_line)] == [
        f"part-{i:03d}.txt" for i in range(5)
    ]
    assert all(size == 0 for _, size in json.loads(skeleton_line)), "skeleton files hold data"

    env = json.loads(env_line)
    assert env["DSHARE_ORG"] == "UiS"
    assert env["DSHARE_BROKER_URL"].endswith("/services/dshare-uis/")
    for org in ("UiS", "UiO", "UiB"):
        kek = layout.kek_file(org).read_text().strip()
        assert kek not in env_line, f"{org}'s key-encryption key reached the server"
    real_corpus = str(layout.data / "uio" / "lorem-corpus")
    assert real_corpus not in env_line, "the owner's storage path reached the server"

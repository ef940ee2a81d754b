"""The embedded deployment as a newcomer meets it: log in, reach JupyterLab, see dshare;
and as an attacker meets it: a scientist's kernel is its own OS user and opens no secret."""

from __future__ import annotations

import grp
import json
import pwd
import re
import stat
from pathlib import Path

import pytest
from hubclient import HubSession

from dshare_hub.auth.directory import DirectoryUser, edit_directory
from dshare_hub.auth.passwords import hash_password
from dshare_hub.demo.content import ORGS
from dshare_hub.spawner.system_users import os_username

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

    await session.stop_server(token)  # the lease must be there when the spawner prepares
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


# --- What a scientist's own code can reach, checked from a real kernel as an attacker would.


def _secret_and_private_paths(layout) -> dict[str, Path]:
    paths = {
        "hub cookie secret": layout.hub_dir / "cookie_secret",
        "hub database": layout.hub_dir / "jupyterhub.sqlite",
        "seeder token": layout.service_token_file("dshare-demo-seeder"),
        "executor token": layout.service_token_file("dshare-executor"),
        "proxy token": layout.hub_dir / "proxy-token",
        "account helper config": layout.accounts_config,
        "demo logins": layout.logins_file,
        "users.yaml": layout.user_directory,
        "ledger database": layout.ledger_db,
        "another user's home": layout.homes / "uio-scientist" / "experiment.ipynb",
    }
    for org in ORGS:
        low = org.lower()
        paths[f"{org} KEK"] = layout.kek_file(org)
        paths[f"{org} key store"] = layout.org_dir(org) / "keys.sqlite"
        paths[f"{org} broker config"] = layout.broker_config(org)
        paths[f"{org} broker token"] = layout.service_token_file(f"dshare-{low}")
        paths[f"{org} key.pem"] = layout.identities / org / "key.pem"
        paths[f"{org} CA key"] = layout.identities / org / "ca-key.pem"
        paths[f"{org} raw corpus"] = layout.data / low / "lorem-corpus" / "part-000.txt"
        paths[f"{org} raw payments"] = layout.data / low / "payments" / "transactions.csv"
    for name, path in paths.items():
        assert path.exists(), f"the test's path for {name} is wrong: {path}"
    return paths


async def test_scientist_kernel_runs_as_its_own_user_and_reads_no_secret(deployment, logins):
    layout = deployment.layout
    paths = _secret_and_private_paths(layout)
    dirs = {
        "the homes root": layout.homes,
        "another user's home": layout.homes / "uio-scientist",
        "the ledger dir": layout.ledger_db.parent,
        "the hub dir": layout.hub_dir,
        "the secrets dir": layout.root / "secrets",
        "the users dir": layout.user_directory.parent,
        **{f"{org}'s data": layout.data / org.lower() for org in ORGS},
        **{f"{org}'s state": layout.org_dir(org) for org in ORGS},
    }
    session = HubSession(layout.public_url)
    await session.login("uis-scientist", logins["uis-scientist"])
    await session.start_server()
    out, errors = await session.run_code(
        "import json, os\n"
        f"files = {json.dumps({k: str(v) for k, v in paths.items()})}\n"
        f"dirs = {json.dumps({k: str(v) for k, v in dirs.items()})}\n"
        "def attempt(fn, path):\n"
        "    try:\n"
        "        fn(path)\n"
        "        return 'allowed'\n"
        "    except Exception as e:\n"
        "        return type(e).__name__\n"
        "print(json.dumps({\n"
        "    'uid': os.getuid(), 'euid': os.geteuid(), 'groups': os.getgroups(),\n"
        "    'home': os.path.expanduser('~'),\n"
        "    'files': {k: attempt(lambda p: open(p, 'rb').read(1), p) for k, p in files.items()},\n"
        "    'dirs': {k: attempt(os.listdir, p) for k, p in dirs.items()},\n"
        "}))\n"
    )
    assert not errors, (out, errors)
    seen = json.loads(out.strip().splitlines()[-1])
    own = pwd.getpwnam(os_username(layout.user_template, "uis-scientist"))
    assert seen["uid"] == seen["euid"] == own.pw_uid != 0
    # The group of dshare users is what the hub's sudo rule names (sudo gives the server
    # the user's groups); it owns no file (test_hub_not_root), so it opens nothing.
    users_gid = grp.getgrnam(layout.users_group).gr_gid
    assert sorted(seen["groups"]) == sorted([own.pw_gid, users_gid]), "another group"
    assert seen["home"] == str(layout.homes / "uis-scientist")
    readable = {k: v for k, v in seen["files"].items() if v != "PermissionError"}
    assert readable == {}, f"a scientist's kernel can open these: {readable}"
    listable = {k: v for k, v in seen["dirs"].items() if v != "PermissionError"}
    assert listable == {}, f"a scientist's kernel can list these: {listable}"


def _broker_processes(layout) -> dict[str, list[dict[str, list[int]]]]:
    found: dict[str, list[dict[str, list[int]]]] = {org: [] for org in ORGS}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            status = (proc / "status").read_text().splitlines()
        except OSError:
            continue
        for org in ORGS:
            if str(layout.broker_config(org)).encode() in argv and b"dshare_hub.broker" in argv:
                fields = {
                    line.split(":")[0]: [int(x) for x in line.split()[1:]]
                    for line in status
                    if line.startswith(("Uid:", "Gid:", "Groups:"))
                }
                found[org].append(fields)
    return found


async def test_each_broker_runs_as_its_own_service_user(deployment):
    layout = deployment.layout
    ledger_gid = grp.getgrnam(layout.ledger_group).gr_gid
    found = _broker_processes(layout)
    for org in ORGS:
        assert len(found[org]) == 1, f"{org}'s broker process: {found[org]}"
        broker = pwd.getpwnam(layout.broker_user(org))
        assert broker.pw_uid < 1000 and broker.pw_uid != 0
        assert broker.pw_shell == "/usr/sbin/nologin"
        proc = found[org][0]
        assert proc["Uid"] == [broker.pw_uid] * 4, f"{org}'s broker runs as {proc['Uid']}"
        assert proc["Gid"] == [broker.pw_gid] * 4
        assert sorted(proc["Groups"]) == sorted({broker.pw_gid, ledger_gid})


def _owner_mode(path: Path) -> tuple[str, str, int]:
    info = path.lstat()
    return (
        pwd.getpwuid(info.st_uid).pw_name,
        grp.getgrgid(info.st_gid).gr_name,
        stat.S_IMODE(info.st_mode),
    )


async def test_every_file_has_the_owner_and_mode_of_the_design(deployment):
    layout = deployment.layout
    for path in (layout.root, layout.homes, layout.data):
        assert _owner_mode(path) == ("root", "root", 0o711), path
    hub = layout.hub_user
    assert _owner_mode(layout.hub_dir) == (hub, hub, 0o700)
    for path in layout.hub_dir.iterdir():
        assert _owner_mode(path) == (hub, hub, 0o600), path
    for path in (layout.root / "secrets", layout.user_directory.parent):
        assert _owner_mode(path) == ("root", hub, 0o750), path
    tokens = [
        layout.service_token_file(name)
        for name in ("dshare-demo-seeder", "dshare-executor", "dshare-uis", "dshare-uio")
    ]
    for path in (*tokens, layout.user_directory):
        assert _owner_mode(path) == ("root", hub, 0o640), path
    for path in (layout.accounts_config, layout.logins_file):
        assert _owner_mode(path) == ("root", "root", 0o600), path
    ledger = layout.ledger_db.parent
    assert _owner_mode(ledger) == ("root", layout.ledger_group, 0o2770)
    writers = {"root", *(layout.broker_user(org) for org in ORGS)}
    for path in ledger.iterdir():
        owner, group, mode = _owner_mode(path)
        assert (owner in writers, group, mode) == (True, layout.ledger_group, 0o660), path
    for org in ORGS:
        broker = layout.broker_user(org)
        for top, mode_d, mode_f, group in (
            (layout.org_dir(org), 0o700, 0o600, broker),
            (layout.identities / org, 0o700, 0o600, broker),
            (layout.data / org.lower(), 0o2750, 0o640, layout.data_group(org)),
        ):
            for path in [top, *top.rglob("*")]:
                if path.is_symlink():
                    continue
                want = mode_d if path.is_dir() else mode_f
                assert _owner_mode(path) == (broker, group, want), path
        # Interactive views: the broker's, traversable and never listable by anyone else.
        owner, _group, mode = _owner_mode(layout.views_dir(org))
        assert (owner, mode) == (broker, 0o711), layout.views_dir(org)
    assert _owner_mode(layout.views) == ("root", "root", 0o711)
    for user in ("uis-scientist", "uio-scientist"):
        name = os_username(layout.user_template, user)
        assert _owner_mode(layout.homes / user) == (name, name, 0o700)

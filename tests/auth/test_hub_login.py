"""A real JupyterHub (subprocess, loopback, random ports) with DShareLocalAuthenticator:
log in over HTTP as a browser does and check what the hub made of each user."""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from dshare_hub.auth.passwords import hash_password

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
LOCKOUT_SECONDS = 6
MAX_FAILURES = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Hub:
    url: str
    probe_dir: Path
    passwords: dict[str, str]
    log_path: Path


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    if shutil.which("configurable-http-proxy") is None:
        pytest.fail("configurable-http-proxy is missing: npm install -g configurable-http-proxy")
    work = tmp_path_factory.mktemp("hub")
    probe_dir = work / "probes"
    probe_dir.mkdir()
    passwords = {n: f"{n}-pw-{os.urandom(6).hex()}" for n in ("alice", "bob", "carol", "erin")}
    users = [
        {"name": "alice", "org": "UiS", "roles": ["scientist"]},
        {"name": "bob", "org": "UiO", "roles": ["admin"]},
        {"name": "carol", "roles": ["scientist"]},
        {"name": "erin", "org": "UiB", "roles": ["scientist"]},
    ]
    for user in users:
        user["password_hash"] = hash_password(passwords[str(user["name"])])
    directory = work / "users.yaml"
    directory.write_text(yaml.safe_dump({"users": users}))
    directory.chmod(0o600)

    port, hub_port, api_port = free_port(), free_port(), free_port()
    config = work / "jupyterhub_config.py"
    config.write_text(
        textwrap.dedent(
            f"""
            from dshare_hub.auth.roles import hub_roles

            settings = hub_roles(["UiS", "UiO", "UiB"])
            c.JupyterHub.ip = "127.0.0.1"
            c.JupyterHub.port = {port}
            c.JupyterHub.hub_ip = "127.0.0.1"
            c.JupyterHub.hub_port = {hub_port}
            c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
            c.JupyterHub.db_url = "sqlite:///{work}/jupyterhub.sqlite"
            c.JupyterHub.cookie_secret_file = "{work}/cookie_secret"
            c.JupyterHub.pid_file = "{work}/jupyterhub.pid"
            c.JupyterHub.implicit_spawn_seconds = 0
            c.JupyterHub.authenticator_class = "dshare-local"
            c.DShareLocalAuthenticator.directory_path = "{directory}"
            c.DShareLocalAuthenticator.max_failures = {MAX_FAILURES}
            c.DShareLocalAuthenticator.lockout_seconds = {LOCKOUT_SECONDS}
            c.JupyterHub.custom_scopes = settings["custom_scopes"]
            c.JupyterHub.load_roles = settings["load_roles"]
            c.JupyterHub.services = [
                {{"name": "dshare-uis"}}, {{"name": "dshare-uio"}}, {{"name": "dshare-uib"}}
            ]
            c.JupyterHub.spawner_class = "hub_probe_spawner.ScopeProbeSpawner"
            c.ScopeProbeSpawner.probe_dir = "{probe_dir}"
            c.Spawner.server_token_scopes = settings["server_token_scopes"]
            """
        )
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    log_path = work / "hub.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyterhub exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                if requests.get(f"{url}/hub/api/", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyterhub did not answer within 90 s:\n{log_path.read_text()}")
            time.sleep(0.3)
        yield Hub(url, probe_dir, passwords, log_path)
    finally:
        # the hub stops its proxy on SIGTERM; the group kill catches a stuck proxy too
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)


def login(hub: Hub, name: str, password: str) -> tuple[requests.Session, requests.Response]:
    """What a browser does: load the form (sets the _xsrf cookie), post it back."""
    session = requests.Session()
    form = session.get(f"{hub.url}/hub/login", timeout=10)
    assert form.status_code == 200
    match = re.search(r'name="_xsrf"\s+value="([^"]+)"', form.text)
    assert match, "login form has no _xsrf field"
    response = session.post(
        f"{hub.url}/hub/login",
        data={"username": name, "password": password, "_xsrf": match.group(1)},
        allow_redirects=False,
        timeout=30,
    )
    return session, response


def api(hub: Hub, session: requests.Session, method: str, path: str) -> requests.Response:
    xsrf = session.cookies.get("_xsrf", path="/hub/") or ""
    return session.request(
        method, f"{hub.url}/hub/api{path}", headers={"X-XSRFToken": xsrf}, timeout=30
    )


def page_error(response: requests.Response) -> str:
    """The login_error paragraph JupyterHub renders above the form."""
    match = re.search(r'<p class="login_error">\s*(.*?)\s*</p>', response.text, re.S)
    assert match, f"no login error on the page:\n{response.text[:2000]}"
    return html.unescape(match.group(1))


def test_login_creates_a_session_with_org_and_role_groups(hub: Hub) -> None:
    session, response = login(hub, "alice", hub.passwords["alice"])
    assert response.status_code == 302
    assert "jupyterhub-session-id" in session.cookies
    me = api(hub, session, "GET", "/user")
    assert me.status_code == 200
    model = me.json()
    assert model["name"] == "alice"
    assert model["groups"] == ["org:UiS", "role:scientist"]
    assert model["admin"] is False
    # the session works for pages too, not only the API
    home = session.get(f"{hub.url}/hub/home", allow_redirects=False, timeout=10)
    assert home.status_code == 200


def test_org_admin_is_in_the_admin_role_group(hub: Hub) -> None:
    session, response = login(hub, "bob", hub.passwords["bob"])
    assert response.status_code == 302
    assert api(hub, session, "GET", "/user").json()["groups"] == ["org:UiO", "role:admin"]


def test_user_without_org_is_refused_with_the_reason(hub: Hub) -> None:
    session, response = login(hub, "carol", hub.passwords["carol"])
    assert response.status_code == 403
    assert page_error(response) == (
        "User 'carol' has no organization in the dshare user directory, so this hub cannot let "
        "them in. Ask your dshare administrator to run "
        "`dshare users add carol --org ORG --role scientist`."
    )
    assert "jupyterhub-session-id" not in session.cookies
    assert api(hub, session, "GET", "/user").status_code == 403


def test_wrong_password_is_refused(hub: Hub) -> None:
    _, response = login(hub, "alice", "not-" + hub.passwords["alice"])
    assert response.status_code == 403
    assert page_error(response) == "Invalid username or password"


def test_repeated_failures_lock_the_account_until_the_lockout_ends(hub: Hub) -> None:
    for _ in range(MAX_FAILURES):
        _, response = login(hub, "erin", "wrong-password")
        assert response.status_code == 403
        assert page_error(response) == "Invalid username or password"
    locked_at = time.monotonic()
    session, response = login(hub, "erin", hub.passwords["erin"])
    assert response.status_code == 403
    assert re.fullmatch(
        r"Too many failed logins for 'erin': the account is locked for another \d+ seconds\. "
        r"Wait, then try again\.",
        page_error(response),
    )
    assert "jupyterhub-session-id" not in session.cookies
    # wait out the lockout (this waits; it asserts nothing about durations)
    time.sleep(max(0.0, LOCKOUT_SECONDS + 0.5 - (time.monotonic() - locked_at)))
    session, response = login(hub, "erin", hub.passwords["erin"])
    assert response.status_code == 302
    assert api(hub, session, "GET", "/user").json()["groups"] == ["org:UiB", "role:scientist"]


def test_passwords_never_reach_the_hub_log(hub: Hub) -> None:
    login(hub, "alice", "not-" + hub.passwords["alice"])
    text = hub.log_path.read_text()
    for password in hub.passwords.values():
        assert password not in text


def probe_server_token(hub: Hub, name: str) -> dict[str, Any]:
    session, response = login(hub, name, hub.passwords[name])
    assert response.status_code == 302
    api(hub, session, "POST", f"/users/{name}/server")
    probe = hub.probe_dir / f"{name}.json"
    assert probe.exists(), f"the spawner did not run:\n{hub.log_path.read_text()[-3000:]}"
    return dict(json.loads(probe.read_text()))


def test_server_token_gets_only_what_a_scientist_holds(hub: Hub) -> None:
    model = probe_server_token(hub, "alice")
    scopes = set(model["scopes"])
    assert {"custom:dshare:read", "custom:dshare:lease"} <= scopes
    assert "custom:dshare:admin" not in scopes
    # access:services was asked for; only the own organization's broker was granted
    assert sorted(s for s in scopes if s.startswith("access:services")) == [
        "access:services!service=dshare-uis"
    ]
    assert {"read:users:name!user=alice", "read:users:groups!user=alice"} <= scopes
    assert "users:activity!user=alice" in scopes
    assert model["groups"] == ["org:UiS", "role:scientist"]


def test_server_token_of_an_org_admin_carries_the_admin_scope(hub: Hub) -> None:
    scopes = set(probe_server_token(hub, "bob")["scopes"])
    assert {"custom:dshare:read", "custom:dshare:lease", "custom:dshare:admin"} <= scopes
    assert sorted(s for s in scopes if s.startswith("access:services")) == [
        "access:services!service=dshare-uio"
    ]

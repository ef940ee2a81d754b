"""The embedded deployment's hub is not root, from an attacker's side: what the hub process
is, what a scientist can reach of its state, and what its sudo rule lets it do."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from hubclient import HubSession

from dshare_hub.auth.directory import DirectoryUser, edit_directory
from dshare_hub.auth.passwords import hash_password
from dshare_hub.spawner.system_users import in_group, lookup, os_username

pytestmark = pytest.mark.asyncio(loop_scope="module")

BIN = Path(sys.executable).parent


def _status(pid: int) -> dict[str, list[str]]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {line.split(":")[0]: line.split()[1:] for line in lines if ":" in line}


def _children(pid: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if _status(int(proc.name)).get("PPid") == [str(pid)]:
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def _as_hub(layout, argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    """Run argv as the hub's service user, as the hub itself would (no tty, no password)."""
    hub = pwd.getpwnam(layout.hub_user)
    return subprocess.run(
        argv,
        user=hub.pw_uid,
        group=hub.pw_gid,
        extra_groups=[hub.pw_gid],
        env={"PATH": os.defpath, "HOME": str(layout.hub_dir), "LANG": "C.UTF-8"},
        cwd="/",
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        **kwargs,
    )


async def test_the_hub_process_and_its_proxy_are_not_root(deployment):
    layout = deployment.layout
    hub = pwd.getpwnam(layout.hub_user)
    assert hub.pw_uid != 0 and hub.pw_uid < 1000 and hub.pw_shell == "/usr/sbin/nologin"
    pid = deployment.process.pid
    assert int((layout.hub_dir / "jupyterhub.pid").read_text()) == pid
    status = _status(pid)
    assert status["Uid"] == [str(hub.pw_uid)] * 4, status["Uid"]
    assert status["Gid"] == [str(hub.pw_gid)] * 4, status["Gid"]
    assert status["Groups"] == [str(hub.pw_gid)], "the hub is in another group"
    assert status["CapEff"] == ["0000000000000000"], "the hub holds capabilities"
    proxy = int((layout.hub_dir / "proxy.pid").read_text())
    assert proxy in _children(pid)
    assert _status(proxy)["Uid"] == [str(hub.pw_uid)] * 4


async def test_only_the_executor_and_brokers_run_beside_it_and_as_whom(deployment):
    """The root-only parts are the launcher's children, not the hub's."""
    layout = deployment.layout
    services = deployment.services.pids()
    want = {f"dshare-{o}": layout.broker_user(o.upper()) for o in ("uis", "uio", "uib")}
    want["dshare-executor"] = "root"
    assert sorted(services) == sorted(want)
    for name, pid in services.items():
        uid = int(_status(pid)["Uid"][0])
        assert pwd.getpwuid(uid).pw_name == want[name], name
        assert pid not in _children(deployment.process.pid)


async def test_a_scientist_reads_nothing_of_the_hub(deployment, logins):
    layout = deployment.layout
    targets = {
        "hub database": layout.hub_dir / "jupyterhub.sqlite",
        "cookie secret": layout.hub_dir / "cookie_secret",
        "proxy token": layout.hub_dir / "proxy-token",
        "seeder token": layout.service_token_file("dshare-demo-seeder"),
        "broker token": layout.service_token_file("dshare-uio"),
        "password hashes": layout.user_directory,
        "hub environment": Path(f"/proc/{deployment.process.pid}/environ"),
    }
    session = HubSession(layout.public_url)
    await session.login("uio-scientist", logins["uio-scientist"])
    await session.start_server()
    out, errors = await session.run_code(
        "import json, subprocess\n"
        f"targets = {json.dumps({k: str(v) for k, v in targets.items()})}\n"
        "def attempt(path):\n"
        "    try:\n"
        "        open(path, 'rb').read(1)\n"
        "        return 'allowed'\n"
        "    except Exception as e:\n"
        "        return type(e).__name__\n"
        "sudo = subprocess.run(['sudo', '-n', '-u', 'root', 'id'], capture_output=True,\n"
        "                      text=True)\n"
        "print(json.dumps({'files': {k: attempt(p) for k, p in targets.items()},\n"
        "                  'sudo': [sudo.returncode, sudo.stderr.strip()]}))\n"
    )
    assert not errors, (out, errors)
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["files"] == dict.fromkeys(targets, "PermissionError")
    assert seen["sudo"] == [1, "sudo: a password is required"]


async def test_the_group_of_dshare_users_owns_no_file(deployment):
    """Every server is in that group (sudo's doing): it must open nothing. Searched in the
    deployment's data directory: elsewhere on a machine where tests make and delete groups
    all day, a stale file may carry a gid that groupadd has since handed to this group."""
    layout = deployment.layout
    done = subprocess.run(
        ["find", str(layout.root), "-group", layout.users_group, "-print"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout == "", f"files of the group {layout.users_group}: {done.stdout}"


async def test_the_sudo_rule_names_the_mediator_and_dshare_users_only(deployment):
    layout = deployment.layout
    listed = subprocess.run(
        ["sudo", "-l", "-U", layout.hub_user], capture_output=True, text=True, check=True
    ).stdout
    # "User HUB may run the following commands on HOST:", then one line per rule.
    after = listed.split(" may run the following commands on ", 1)[1]
    rules = [line.strip() for line in after.splitlines()[1:]]
    assert [r for r in rules if r] == [
        f"({'%'}{layout.users_group}) NOPASSWD: {BIN}/sudospawner --logging\\=INFO, "
        f'{BIN}/dshare-write-home ""',
        f"(root) NOPASSWD: {BIN}/dshare-ensure-account {layout.accounts_config} *",
    ]


async def test_the_hub_cannot_sudo_to_anything_else(deployment):
    layout = deployment.layout
    scientist = os_username(layout.user_template, "uis-scientist")
    attempts = {
        "a shell as root": ["sudo", "-n", "-u", "root", "/bin/sh", "-c", "id"],
        "the mediator as root": [
            "sudo", "-n", "-u", "root", f"{BIN}/sudospawner", "--logging=INFO",
        ],
        "a shell as a scientist": ["sudo", "-n", "-u", scientist, "/bin/sh", "-c", "id"],
        "python as a scientist": ["sudo", "-n", "-u", scientist, f"{BIN}/python", "-c", "1"],
        "the mediator as a broker": [
            "sudo", "-n", "-u", layout.broker_user("UiS"), f"{BIN}/sudospawner", "--logging=INFO",
        ],
        "the mediator with other options": [
            "sudo", "-n", "-u", scientist, f"{BIN}/sudospawner", "--log_file_prefix=/tmp/x",
        ],
        "the home writer with an argument": [
            "sudo", "-n", "-u", scientist, f"{BIN}/dshare-write-home", "x",
        ],
        "the account helper with another config": [
            "sudo", "-n", f"{BIN}/dshare-ensure-account", "/tmp/mine.json", "alice",
        ],
    }  # fmt: skip
    outcome = {what: _as_hub(layout, argv) for what, argv in attempts.items()}
    refused = {what: (d.returncode, d.stderr.strip()) for what, d in outcome.items()}
    assert refused == dict.fromkeys(attempts, (1, "sudo: a password is required"))


async def test_the_account_helper_refuses_what_is_not_a_deployment_user(deployment):
    layout = deployment.layout
    helper = ["sudo", "-n", f"{BIN}/dshare-ensure-account", str(layout.accounts_config)]
    cases = {
        "root": "dshare-ensure-account: 'root' is not a user of this deployment (with an "
        "organization)",
        "../etc": "dshare-ensure-account: HUBUSER: ",
        "ghost": "dshare-ensure-account: 'ghost' is not a user of this deployment (with an "
        "organization)",
    }
    for name, message in cases.items():
        done = _as_hub(layout, [*helper, name])
        assert (done.returncode, done.stderr.startswith(message)) == (1, True), done.stderr
    extra = _as_hub(layout, [*helper, "uis-scientist", "more"])
    assert extra.returncode == 2
    assert extra.stderr.startswith("usage: dshare-ensure-account CONFIG HUBUSER")
    assert lookup(os_username(layout.user_template, "ghost")) is None


async def test_a_user_added_while_the_hub_runs_gets_an_account_at_first_spawn(deployment):
    layout = deployment.layout
    with edit_directory(layout.user_directory) as users:
        users["newcomer"] = DirectoryUser(
            name="newcomer",
            org="UiB",
            roles=("scientist",),
            password_hash=hash_password("pw-newcomer-1"),
        )
    name = os_username(layout.user_template, "newcomer")
    assert lookup(name) is None
    session = HubSession(layout.public_url)
    response = await session.login("newcomer", "pw-newcomer-1")
    assert response.code == 302, response.body
    await session.start_server()
    out, errors = await session.run_code("import os; print(os.getuid(), os.getcwd())")
    assert not errors, (out, errors)
    pw = lookup(name)
    assert pw is not None and pw.pw_uid >= 1000
    assert in_group(name, layout.users_group)
    assert out.split() == [str(pw.pw_uid), str(layout.homes / "newcomer")]


async def test_a_broker_that_dies_is_restarted_by_the_launcher(deployment, logins):
    """JupyterHub restarted the managed services it ran; the launcher does that now."""
    before = deployment.services.pids()["dshare-uib"]
    os.kill(before, signal.SIGKILL)
    for _ in range(60):
        await asyncio.sleep(0.5)
        after = deployment.services.pids().get("dshare-uib")
        if after and after != before:
            break
    else:
        raise AssertionError("UiB's broker was not restarted")
    assert _status(after)["Uid"][0] == str(
        pwd.getpwnam(deployment.layout.broker_user("UiB")).pw_uid
    )
    # It answers again where the hub's proxy sends its callers.
    url = f"{deployment.layout.public_url}services/dshare-uib/"
    for _ in range(30):
        try:
            code = urllib.request.urlopen(url, timeout=5).status
        except OSError:
            code = 0
        if code == 200:
            break
        await asyncio.sleep(1)
    assert code == 200, url

"""The non-root hub's privileged pieces, without a hub: the account helper's refusals, the
sudo rule as visudo reads it, and DShareSudoSpawner's messages when sudo says no.

Every account made here carries this module's own prefix and is removed at the end."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dshare_hub.auth.directory import DirectoryUser, edit_directory
from dshare_hub.auth.passwords import hash_password
from dshare_hub.demo import sudoers
from dshare_hub.demo.layout import DemoLayout
from dshare_hub.spawner import account_helper, sudo, system_users
from dshare_hub.spawner.base import DShareSpawnError

from .conftest import TOKEN, make_hub, make_user

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates OS users: needs root")

PREFIX = f"tu{secrets.token_hex(2)}-"


@pytest.fixture
def world() -> Iterator[dict[str, Path]]:
    top = Path(tempfile.mkdtemp(prefix="dshare-sudo-", dir="/tmp"))
    top.chmod(0o711)
    homes = top / "homes"
    homes.mkdir(mode=0o711)
    directory = top / "users.yaml"
    with edit_directory(directory) as users:
        users["ann"] = DirectoryUser("ann", "UiO", ("scientist",), hash_password("pw-ann-123"))
    config = top / "accounts.json"
    system_users.ensure_group(PREFIX + "users")
    account_helper.write_config(
        config,
        template=PREFIX + "{username}",
        home_root=homes,
        group=PREFIX + "users",
        directory=directory,
    )
    yield {"top": top, "homes": homes, "config": config, "directory": directory}
    for name in system_users.users_with_prefix(PREFIX):
        system_users.remove_user(name)
    system_users.remove_group(PREFIX + "users")
    shutil.rmtree(top, ignore_errors=True)


def test_helper_makes_a_directory_user_account_in_the_group(world, capsys) -> None:
    assert account_helper.main([str(world["config"]), "ann"]) == 0
    answer = json.loads(capsys.readouterr().out)
    pw = system_users.lookup(PREFIX + "ann")
    assert pw is not None and answer == {
        "name": pw.pw_name,
        "uid": pw.pw_uid,
        "home": str(world["homes"] / "ann"),
    }
    assert pw.pw_shell == system_users.NOLOGIN and pw.pw_uid >= system_users.uid_min()
    assert system_users.in_group(pw.pw_name, PREFIX + "users")
    assert (world["homes"] / "ann").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], 2, "usage: dshare-ensure-account CONFIG HUBUSER"),
        (["CONFIG", "ann", "more"], 2, "usage: dshare-ensure-account CONFIG HUBUSER"),
        (["CONFIG", "root"], 1, "'root' is not a user of this deployment"),
        (["CONFIG", "ghost"], 1, "'ghost' is not a user of this deployment"),
        (["CONFIG", "Ann/../x"], 1, "HUBUSER: "),
        (["relative.json", "ann"], 1, "CONFIG must be an absolute path"),
    ],
)
def test_helper_refuses(world, capsys, args, code, message) -> None:
    args = [str(world["config"]) if a == "CONFIG" else a for a in args]
    assert account_helper.main(args) == code
    assert message in capsys.readouterr().err
    assert system_users.users_with_prefix(PREFIX) == []


def test_helper_refuses_a_config_someone_else_could_change(world, capsys) -> None:
    os.chmod(world["config"], 0o666)
    assert account_helper.main([str(world["config"]), "ann"]) == 1
    assert "must be root's and writable by no one else" in capsys.readouterr().err
    assert system_users.lookup(PREFIX + "ann") is None


def test_the_sudo_rule_parses_and_names_only_the_three_commands(tmp_path) -> None:
    layout = DemoLayout(root=tmp_path / "data", account_prefix=PREFIX)
    text = sudoers.render(layout)
    draft = tmp_path / "rule"
    draft.write_text(text)
    checked = subprocess.run(["visudo", "-c", "-f", str(draft)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = [line for line in text.splitlines() if line and not line.startswith(("#", "Def"))]
    bin_dir = sudoers.venv_bin()
    assert rules == [
        f"{PREFIX}dshare-hub ALL=(%{PREFIX}dshare-users) NOPASSWD: "
        f'{bin_dir}/sudospawner --logging=INFO, {bin_dir}/dshare-write-home ""',
        f"{PREFIX}dshare-hub ALL=(root) NOPASSWD: {bin_dir}/dshare-ensure-account "
        f"{layout.accounts_config} *",
    ]


def _spawner(world, **kw):
    return sudo.DShareSudoSpawner(
        user=make_user("ann"),
        hub=make_hub(),
        api_token=TOKEN,
        hub_url="http://127.0.0.1:9/",
        system_username_template=PREFIX + "{username}",
        home_root=str(world["homes"]),
        users_group=PREFIX + "users",
        account_helper_config=str(world["config"]),
        **kw,
    )


def test_spawner_says_what_sudo_answered(world) -> None:
    """A helper that is not there: sudo's own words reach the message."""
    spawner = _spawner(world, account_helper_path="/nonexistent/dshare-ensure-account")
    with pytest.raises(DShareSpawnError) as e:
        spawner.dshare_ensure_account()
    assert e.value.jupyterhub_message.startswith(
        "dshare could not prepare the OS account of your server (exit code 1: sudo: "
    )
    assert "/nonexistent/dshare-ensure-account" in e.value.jupyterhub_message


def test_spawner_without_helper_refuses_a_user_without_account(world) -> None:
    spawner = _spawner(world, create_system_users=False)
    with pytest.raises(DShareSpawnError) as e:
        spawner.dshare_ensure_account()
    assert f"There is no OS user {PREFIX}ann for your account (ann)" in e.value.jupyterhub_message


def test_spawner_refuses_an_account_outside_the_group(world) -> None:
    system_users.ensure_user(PREFIX + "ann", world["homes"] / "ann")
    spawner = _spawner(world, create_system_users=False)
    with pytest.raises(DShareSpawnError) as e:
        spawner.dshare_ensure_account()
    assert f"is not in the group {PREFIX}users" in e.value.jupyterhub_message

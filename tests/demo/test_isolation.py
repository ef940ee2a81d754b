"""Provisioning isolates an existing data directory too, refuses to run where it could not,
and removes the accounts it made (no hub is started here)."""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from dshare_hub.demo import isolation
from dshare_hub.demo.content import ORGS
from dshare_hub.demo.layout import DemoLayout
from dshare_hub.demo.provision import provision
from dshare_hub.spawner import system_users

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates OS users: needs root")


@pytest.fixture
def layout() -> Iterator[DemoLayout]:
    top = Path(tempfile.mkdtemp(prefix="dshare-provision-", dir="/tmp"))
    top.chmod(0o711)
    layout = DemoLayout(root=top / "data", account_prefix=f"dp{secrets.token_hex(2)}-")
    yield layout
    isolation.remove_accounts(layout)
    shutil.rmtree(top, ignore_errors=True)


def _owner_mode(path: Path) -> tuple[str, str, int]:
    info = path.lstat()
    return (
        pwd.getpwuid(info.st_uid).pw_name,
        grp.getgrgid(info.st_gid).gr_name,
        stat.S_IMODE(info.st_mode),
    )


def _assert_isolated(layout: DemoLayout) -> None:
    assert _owner_mode(layout.root) == ("root", "root", 0o711)
    hub = layout.hub_user
    assert _owner_mode(layout.user_directory.parent) == ("root", hub, 0o750)
    assert _owner_mode(layout.user_directory) == ("root", hub, 0o640)
    assert _owner_mode(layout.root / "secrets") == ("root", hub, 0o750)
    assert _owner_mode(layout.service_token_file("dshare-uis")) == ("root", hub, 0o640)
    assert _owner_mode(layout.accounts_config) == ("root", "root", 0o600)
    assert _owner_mode(layout.hub_dir) == (hub, hub, 0o700)
    assert _owner_mode(layout.logins_file) == ("root", "root", 0o600)
    assert _owner_mode(layout.ledger_db.parent) == ("root", layout.ledger_group, 0o2770)
    for path in layout.ledger_db.parent.iterdir():
        assert _owner_mode(path) == ("root", layout.ledger_group, 0o660), path
    for org in ORGS:
        broker = layout.broker_user(org)
        for top, dirs, files, group in (
            (layout.org_dir(org), 0o700, 0o600, broker),
            (layout.identities / org, 0o700, 0o600, broker),
            (layout.data / org.lower(), 0o2750, 0o640, layout.data_group(org)),
        ):
            for path in [top, *top.rglob("*")]:
                want = dirs if path.is_dir() else files
                assert _owner_mode(path) == (broker, group, want), path
        # Interactive views: traversable, never listable; only the broker makes them.
        views_group = grp.getgrgid(pwd.getpwnam(broker).pw_gid).gr_name
        assert _owner_mode(layout.views_dir(org)) == (broker, views_group, 0o711)
    assert _owner_mode(layout.views) == ("root", "root", 0o711)
    for user in ("uis-scientist", "uib-admin"):
        name = system_users.os_username(layout.user_template, user)
        assert _owner_mode(layout.homes / user) == (name, name, 0o700)


def test_rerun_isolates_a_data_dir_an_older_dshare_left_open(layout: DemoLayout) -> None:
    created = provision(layout)
    scientist = pwd.getpwnam(system_users.os_username(layout.user_template, "uis-scientist"))
    experiment = layout.homes / "uis-scientist" / "experiment.ipynb"
    assert experiment.lstat().st_uid == scientist.pw_uid, "root wrote into the home"
    assert sorted(created) == sorted(
        f"{org.lower()}-{role}" for org in ORGS for role in ("admin", "scientist")
    )
    _assert_isolated(layout)

    # What an older dshare left: root's everything, world-readable, the identities in the
    # brokers' shared ledger dir, users.yaml beside the logins.
    layout.old_identities.parent.mkdir(exist_ok=True)
    layout.identities.rename(layout.old_identities)
    layout.user_directory.rename(layout.old_user_directory)
    shutil.rmtree(layout.user_directory.parent)
    for top, dirs, files in os.walk(layout.root):
        for name in dirs + files:
            os.chown(Path(top, name), 0, 0, follow_symlinks=False)
            os.chmod(Path(top, name), 0o777 if name in dirs else 0o666)

    assert provision(layout) == {}, "a re-run made new logins"
    assert not layout.old_identities.exists()
    assert not layout.old_user_directory.exists()
    _assert_isolated(layout)


def test_experiment_files_are_written_as_the_user_not_through_a_planted_link(
    layout: DemoLayout,
) -> None:
    provision(layout)
    victim = Path(tempfile.mkdtemp(prefix="dshare-victim-", dir="/tmp"))
    try:
        victim.chmod(0o755)
        home = layout.homes / "uio-scientist"
        (home / "workflow.yaml").unlink()
        os.symlink(victim / "planted", home / "workflow.yaml")
        provision(layout)
        assert list(victim.iterdir()) == [], "root followed the user's symlink"
    finally:
        shutil.rmtree(victim)


def test_refuses_to_run_without_root(layout: DemoLayout) -> None:
    with mock.patch.object(os, "geteuid", return_value=1000), pytest.raises(RuntimeError) as e:
        provision(layout)
    assert str(e.value).startswith("dshare demo must run as root: it creates an OS user")
    assert not layout.root.exists()


def test_interpreter_others_cannot_run_is_refused_with_what_to_do(tmp_path: Path) -> None:
    private = Path(tempfile.mkdtemp(prefix="dshare-private-", dir="/tmp"))
    try:
        private.chmod(0o700)
        (private / "python").symlink_to(sys.executable)
        with (
            mock.patch.object(sys, "executable", str(private / "python")),
            pytest.raises(system_users.AccountError) as e,
        ):
            system_users.check_interpreter_usable()
    finally:
        shutil.rmtree(private)
    message = str(e.value)
    assert f"({private} is not searchable by other users)" in message
    assert "create the venv from a Python outside a private directory" in message


def test_remove_accounts_leaves_nothing(layout: DemoLayout) -> None:
    provision(layout)
    removed = isolation.remove_accounts(layout)
    assert layout.broker_user("UiS") in removed and layout.ledger_group in removed
    assert layout.hub_user in removed and str(layout.sudoers_file) in removed
    assert not layout.sudoers_file.exists()
    assert system_users.users_with_prefix(layout.account_prefix) == []
    groups = [layout.users_group, layout.ledger_group, *(layout.data_group(o) for o in ORGS)]
    for group in groups:
        assert not system_users.group_exists(group)

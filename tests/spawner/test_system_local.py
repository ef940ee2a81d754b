"""DShareSystemLocalSpawner as root: one real OS user per hub user, and nothing written as
root into a home the user controls (planted symlinks lead nowhere).

Every account made here carries this module's own prefix and is removed at the end."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dshare_hub.spawner import local, system_users
from dshare_hub.spawner.base import DShareSpawnError

from .conftest import TOKEN, BrokerDouble, make_hub, make_user

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(os.geteuid() != 0, reason="creates OS users: needs root"),
]

PREFIX = f"ts{secrets.token_hex(2)}-"


@pytest.fixture(scope="module")
def home_root() -> Iterator[Path]:
    # Under /tmp, traversable: pytest's own tmp dir is 0700 and no user could enter it.
    top = Path(tempfile.mkdtemp(prefix="dshare-spawner-", dir="/tmp"))
    top.chmod(0o711)
    homes = top / "homes"
    homes.mkdir(mode=0o711)
    yield homes
    for name in system_users.users_with_prefix(PREFIX):
        system_users.remove_user(name)
    shutil.rmtree(top, ignore_errors=True)


def _spawner(broker: BrokerDouble, home_root: Path, user: str = "ann", **kw: Any):
    return local.DShareSystemLocalSpawner(
        user=make_user(user),
        hub=make_hub(),
        api_token=TOKEN,
        hub_url=broker.url,
        system_username_template=PREFIX + "{username}",
        home_root=str(home_root),
        **kw,
    )


@pytest.fixture
def victim() -> Iterator[Path]:
    """A root-owned directory standing for /etc: what a planted symlink points at."""
    path = Path(tempfile.mkdtemp(prefix="dshare-victim-", dir="/tmp"))
    path.chmod(0o755)
    (path / "passwd").write_text("root:x:0:0::/root:/bin/bash\n")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _untouched(victim: Path) -> None:
    assert sorted(p.name for p in victim.iterdir()) == ["passwd"], "something was written"
    for path in (victim, victim / "passwd"):
        info = path.lstat()
        assert (info.st_uid, info.st_gid) == (0, 0), f"{path} was chowned"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o755


async def test_first_spawn_creates_the_os_user(seeded: BrokerDouble, home_root: Path) -> None:
    spawner = _spawner(seeded, home_root, user="newcomer")
    name = PREFIX + "newcomer"
    assert system_users.lookup(name) is None
    pw = spawner.dshare_ensure_account()
    assert pw.pw_name == name
    assert pw.pw_uid >= system_users.uid_min()
    assert pw.pw_shell == "/usr/sbin/nologin"
    assert pw.pw_dir == str(home_root / "newcomer")
    home = Path(pw.pw_dir).lstat()
    assert (home.st_uid, home.st_gid, stat.S_IMODE(home.st_mode)) == (
        pw.pw_uid,
        pw.pw_gid,
        0o700,
    )
    assert os.getgrouplist(name, pw.pw_gid) == [pw.pw_gid], "the user has other groups"
    shadow = next(
        line for line in Path("/etc/shadow").read_text().splitlines() if line.startswith(name)
    )
    assert shadow.split(":")[1] in ("!", "!*", "*"), "the account has a password"
    # Idempotent: the second spawn finds it and changes nothing.
    assert spawner.dshare_ensure_account() == pw


async def test_server_runs_as_the_os_user_with_its_environment(
    seeded: BrokerDouble, home_root: Path
) -> None:
    spawner = _spawner(seeded, home_root)
    pw = spawner.dshare_ensure_account()
    env = spawner.user_env({})
    assert env == {"USER": pw.pw_name, "HOME": pw.pw_dir, "SHELL": "/bin/bash"}
    out = subprocess.run(
        ["sh", "-c", "id -u; id -G; pwd"],
        preexec_fn=spawner.make_preexec_fn("ann"),  # the hub user's name: mapped anyway
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == [str(pw.pw_uid), str(pw.pw_gid), pw.pw_dir]
    assert spawner.dshare_runs_as_root() is False
    assert "--ServerApp.allow_root=True" not in spawner.get_args()


async def test_skeletons_and_magic_are_written_as_the_user(
    seeded: BrokerDouble, home_root: Path
) -> None:
    spawner = _spawner(seeded, home_root, user="bea")
    pw = spawner.dshare_ensure_account()
    await spawner.dshare_prepare()
    home = Path(pw.pw_dir)
    written = [home / "datasets", home / "datasets/Weather/2020/jan.csv", home / ".ipython"]
    written.append(home / local.MAGIC_STARTUP)
    for path in written:
        info = path.lstat()
        assert (info.st_uid, info.st_gid) == (pw.pw_uid, pw.pw_gid), path


async def test_planted_symlinks_lead_nowhere(
    seeded: BrokerDouble, home_root: Path, victim: Path
) -> None:
    """The user points ~/.ipython at an /etc-like dir and ~/datasets at another root-owned
    dir: the spawn writes and chowns nothing there."""
    spawner = _spawner(seeded, home_root, user="mallory")
    pw = spawner.dshare_ensure_account()
    home = Path(pw.pw_dir)
    etc_like = victim / "etc"
    etc_like.mkdir(mode=0o755)
    (etc_like / "profile_default").mkdir(mode=0o755)
    for link, target in ((".ipython", etc_like), ("datasets", victim)):
        os.symlink(target, home / link)
        os.chown(home / link, pw.pw_uid, pw.pw_gid, follow_symlinks=False)

    with pytest.raises(DShareSpawnError) as err:
        await spawner.dshare_prepare()
    assert "~/datasets" in err.value.jupyterhub_message

    # Only ~/.ipython planted: the server still starts, without the magic's startup file.
    (home / "datasets").unlink()
    await spawner.dshare_prepare()
    assert (home / "datasets/Weather/2020/jan.csv").exists()

    assert sorted(p.name for p in etc_like.iterdir()) == ["profile_default"]
    assert list((etc_like / "profile_default").iterdir()) == []
    for path in (etc_like, etc_like / "profile_default"):
        assert (path.lstat().st_uid, path.lstat().st_gid) == (0, 0)
    (etc_like / "profile_default").rmdir()
    etc_like.rmdir()
    _untouched(victim)


async def test_hub_user_mapped_onto_root_or_a_system_account_is_refused(
    seeded: BrokerDouble, home_root: Path
) -> None:
    for user in ("root", "daemon"):
        spawner = local.DShareSystemLocalSpawner(
            user=make_user(user),
            hub=make_hub(),
            api_token=TOKEN,
            hub_url=seeded.url,
            system_username_template="{username}",
            home_root=str(home_root),
        )
        with pytest.raises(DShareSpawnError) as err:
            spawner.dshare_ensure_account()
        assert "is root or a system account" in err.value.jupyterhub_message
    assert pwd.getpwnam("daemon").pw_dir != str(home_root / "daemon")


async def test_names_past_32_characters_get_a_hash(seeded: BrokerDouble) -> None:
    long = "a" * 40
    name = system_users.os_username("jupyter-{username}", long)
    assert len(name) == 32
    assert name != system_users.os_username("jupyter-{username}", long + "b")
    with pytest.raises(system_users.AccountError, match="does not accept"):
        system_users.os_username("jupyter-{username}", "ann smith")
    with pytest.raises(system_users.AccountError, match="may use only"):
        system_users.os_username("jupyter-{user}", "ann")


async def test_without_create_a_missing_user_is_refused_with_a_reason(
    seeded: BrokerDouble, home_root: Path
) -> None:
    spawner = _spawner(seeded, home_root, user="ghost", create_system_users=False)
    with pytest.raises(DShareSpawnError) as err:
        spawner.dshare_ensure_account()
    assert err.value.jupyterhub_message.startswith(
        f"There is no OS user {PREFIX}ghost for your account (ghost)"
    )
    assert system_users.lookup(PREFIX + "ghost") is None

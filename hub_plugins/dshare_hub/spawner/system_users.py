"""OS accounts for one-machine deployments: users, service users, groups, and running a
step as a user.

Accounts are made with the distribution's own tools (useradd, groupadd, usermod), so
shadow entries, private groups and nscd caches stay consistent. Every function here is
idempotent: it checks what exists and adds only what is missing, because the spawner and
the provisioning both call it on every start.
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import os
import pwd
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

NOLOGIN = "/usr/sbin/nologin"
# What Debian's useradd accepts without --badname, and at most 32 characters (utmp).
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_MAX_NAME = 32


class AccountError(RuntimeError):
    """An OS account that cannot be made or used; the message says what to do."""


def uid_min() -> int:
    """The first uid of a person's account (UID_MIN in /etc/login.defs, else 1000)."""
    try:
        for line in Path("/etc/login.defs").read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "UID_MIN":
                return int(parts[1])
    except (OSError, ValueError):
        pass
    return 1000


def os_username(template: str, username: str) -> str:
    """The OS account name for hub user `username` under `template` ("jupyter-{username}").

    Lower-cased, and shortened with a hash suffix past 32 characters as The Littlest
    JupyterHub does, so two long hub names never share an account.
    """
    try:
        name = template.format(username=username).lower()
    except (KeyError, IndexError, ValueError) as e:
        raise AccountError(
            f"the system username template {template!r} is not valid ({e}); it may use "
            "only {username}, e.g. 'jupyter-{username}'"
        ) from None
    if len(name) > _MAX_NAME:
        digest = hashlib.sha256(name.encode()).hexdigest()[:5]
        name = f"{name[: _MAX_NAME - 6]}-{digest}"
    if not _NAME_RE.match(name):
        raise AccountError(
            f"the hub user {username!r} gives the OS user name {name!r}, which the system "
            "does not accept (lower-case letters, digits, '-' and '_', starting with a "
            "letter). Rename the hub user or change the system username template."
        )
    return name


def lookup(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def _run(argv: Sequence[str], what: str) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise AccountError(
            f"cannot {what}: {argv[0]} is not installed (it comes with Debian's 'passwd' package)"
        ) from None
    if done.returncode != 0:
        hint = " (this needs root: run as root)" if os.geteuid() != 0 else ""
        raise AccountError(
            f"cannot {what}: {' '.join(argv)} failed with exit code {done.returncode}: "
            f"{done.stderr.strip()}{hint}"
        )
    return done


def ensure_group(name: str) -> int:
    """A system group `name` (created if missing); returns its gid."""
    if not group_exists(name):
        try:
            _run(["groupadd", "--system", name], f"create the group {name}")
        except AccountError:
            if not group_exists(name):  # another process may have made it meanwhile
                raise
    return grp.getgrnam(name).gr_gid


def ensure_service_user(name: str, groups: Iterable[str] = ()) -> pwd.struct_passwd:
    """A system account that cannot log in and has no home, member of `groups`."""
    pw = lookup(name)
    if pw is None:
        try:
            _run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    NOLOGIN,
                    "--user-group",
                    "--comment",
                    "dshare service",
                    name,
                ],
                f"create the service user {name}",
            )
        except AccountError:
            if lookup(name) is None:
                raise
        pw = pwd.getpwnam(name)
    elif pw.pw_uid == 0 or pw.pw_uid >= uid_min():
        raise AccountError(
            f"the OS user {name} exists and is not a system account (uid {pw.pw_uid}); "
            "dshare runs a broker only as a service user of its own. Remove or rename "
            f"that account, or give this deployment another account prefix."
        )
    add_to_groups(name, groups)
    return pw


def in_group(name: str, group: str) -> bool:
    """Whether the account `name` is a member of `group` (listed, or its primary group)."""
    try:
        info = grp.getgrnam(group)
    except KeyError:
        return False
    pw = lookup(name)
    return name in info.gr_mem or (pw is not None and pw.pw_gid == info.gr_gid)


def add_to_groups(name: str, groups: Iterable[str]) -> None:
    for group in groups:
        if not in_group(name, group):
            _run(["usermod", "--append", "--groups", group, name], f"add {name} to {group}")


def ensure_user(name: str, home: Path, groups: Iterable[str] = ()) -> pwd.struct_passwd:
    """A person's account `name` (no password, no login shell) with `home` 0700 its own,
    member of `groups` (the embedded deployment's group of dshare users, which is what the
    non-root hub's sudo rule names).

    An existing account is used as it is, unless it is root or a system account: mapping a
    hub user onto one of those would hand it that account's files.
    """
    pw = lookup(name)
    if pw is None:
        try:
            _run(
                [
                    "useradd",
                    "--no-create-home",
                    "--home-dir",
                    str(home),
                    "--shell",
                    NOLOGIN,
                    "--user-group",
                    "--comment",
                    "dshare user",
                    name,
                ],
                f"create the OS user {name}",
            )
        except AccountError:
            if lookup(name) is None:
                raise
        pw = pwd.getpwnam(name)
    if pw.pw_uid < uid_min():
        raise AccountError(
            f"the OS user {name} is root or a system account (uid {pw.pw_uid}); dshare does "
            "not run a user's server as one. Rename the hub user or change the system "
            "username template."
        )
    ensure_private_dir(Path(pw.pw_dir), pw.pw_uid, pw.pw_gid)
    add_to_groups(name, groups)
    return pw


def ensure_private_dir(path: Path, uid: int, gid: int) -> None:
    """`path` a real directory (not a symlink), 0700 and owned by uid:gid.

    Its parent must be root's: the check-then-chown below is safe only where no user can
    swap the entry in between.
    """
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise AccountError(f"{path} must be a directory, not a symlink or a file")
    if (info.st_uid, info.st_gid) != (uid, gid):
        os.chown(path, uid, gid, follow_symlinks=False)
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)  # lstat said: a directory


def processes_of(uid: int) -> list[int]:
    """Pids of the processes whose real uid is `uid`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("Uid:"):
                    if int(line.split()[1]) == uid:
                        pids.append(int(entry.name))
                    break
        except (OSError, ValueError):
            continue
    return pids


def remove_user(name: str) -> None:
    """Delete the account (not its home, which its deployment's data dir holds), ending
    what still runs as it first: userdel refuses an account in use."""
    pw = lookup(name)
    if pw is None:
        return
    if pw.pw_uid != 0:
        _end_processes(pw.pw_uid)
    _run(["userdel", name], f"remove the OS user {name}")


def _end_processes(uid: int, wait_s: float = 10.0) -> None:
    """SIGKILL what runs as `uid` and wait until /proc shows none of it: a killed process
    stays listed until its parent reaps it, and userdel refuses while it is listed."""
    deadline = time.monotonic() + wait_s
    while pids := processes_of(uid):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            return  # userdel then says which process holds the account
        time.sleep(0.1)


def remove_group(name: str) -> None:
    if group_exists(name):
        _run(["groupdel", name], f"remove the group {name}")


def users_with_prefix(prefix: str) -> list[str]:
    """OS account names that start with `prefix` (refuses an empty prefix)."""
    if not prefix:
        raise AccountError("refusing to list every account: give a non-empty prefix")
    return sorted(p.pw_name for p in pwd.getpwall() if p.pw_name.startswith(prefix))


def run_as(
    pw: pwd.struct_passwd, argv: Sequence[str], *, input: str = "", cwd: str | None = None
) -> str:
    """Run `argv` as `pw` (its own uid and group, no other groups) and return its stdout.

    Used for every write into a directory the user controls: the kernel then checks the
    user's own permissions, so a symlink they planted leads nowhere they could not write.
    """
    done = subprocess.run(
        list(argv),
        input=input,
        capture_output=True,
        text=True,
        user=pw.pw_uid,
        group=pw.pw_gid,
        extra_groups=[],
        cwd=cwd or "/",
        env={"PATH": os.defpath, "HOME": pw.pw_dir, "LANG": "C.UTF-8"},
        check=False,
    )
    if done.returncode != 0:
        raise AccountError(
            f"{argv[0]} as {pw.pw_name} failed with exit code {done.returncode}: "
            f"{done.stderr.strip()[-2000:]}"
        )
    return done.stdout


def check_interpreter_usable(uid: int = 65534, gid: int = 65534) -> None:
    """Refuse to start when an unprivileged user cannot run this Python and import dshare:
    every user's server and every broker would otherwise fail with a bare EACCES."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", "import dshare_hub, jupyterhub"],
            capture_output=True,
            text=True,
            user=uid,
            group=gid,
            extra_groups=[],
            cwd="/",
            env={"PATH": os.defpath},
            check=False,
            timeout=60,
        )
        failed = done.returncode != 0
        detail = done.stderr.strip().splitlines()[-1:] if failed else []
    except PermissionError as e:
        failed, detail = True, [str(e)]
    if failed:
        blocked = _first_blocked_dir(Path(sys.executable))
        where = f" ({blocked} is not searchable by other users)" if blocked else ""
        raise AccountError(
            f"the Python interpreter {sys.executable} or the dshare checkout cannot be used "
            f"by unprivileged users{where}: {' '.join(detail)}. Every user's server and "
            "every broker runs as its own OS user, so the virtualenv, the interpreter it "
            "was made from and the checkout must be readable by all: create the venv from "
            "a Python outside a private directory (e.g. `make demo PYTHON=/usr/bin/python3` "
            "after `rm -rf .venv`), and keep the checkout where others can read it "
            "(`chmod o+rx` on each parent directory)."
        )


def _first_blocked_dir(path: Path) -> Path | None:
    """The first directory on the way to `path` (symlinks followed) others cannot enter."""
    seen: list[Path] = [path]
    with contextlib.suppress(OSError):
        seen.append(path.resolve())
    for candidate in seen:
        for parent in reversed(candidate.parents):
            try:
                if not parent.stat().st_mode & stat.S_IXOTH:
                    return parent
            except OSError:
                return parent
    return None

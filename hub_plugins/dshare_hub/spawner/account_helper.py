"""`dshare-ensure-account CONFIG HUBUSER`: make one hub user's OS account, as root.

The embedded deployment's hub runs as a service user, not root. A person added to the
user directory while the hub runs (`dshare users add`) has no OS account until their first
spawn; the hub then runs this helper through sudo. The sudo rule fixes the helper's path
and CONFIG (a root-owned JSON file written by provisioning); the only thing the hub
chooses is HUBUSER, and this refuses anything but:

- exactly two arguments, run as root (through sudo, never setuid);
- CONFIG owned by root and writable by no one else, as is every directory above it
  (or sticky, as /tmp);
- HUBUSER a valid hub user name that is in the user directory, with an organization;
- an account name made by CONFIG's template, which ensure_user refuses to map onto root
  or a system account.

It creates the account (no password, no login shell, home 0700 under CONFIG's home root)
and adds it to the group of dshare users, which is what the hub's other sudo rule lets it
switch to. Nothing else: a compromised hub can make accounts for the people it already
serves, which it could log in as anyway.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

from ..auth.directory import DirectoryError, load_directory, username_problem
from . import system_users

USAGE = "usage: dshare-ensure-account CONFIG HUBUSER (run by the hub through sudo)"
CONFIG_KEYS = ("template", "home_root", "group", "directory")


class HelperError(RuntimeError):
    pass


def write_config(
    path: Path, *, template: str, home_root: Path, group: str, directory: Path
) -> None:
    """Provisioning's half: the config this helper trusts (root's, 0600)."""
    body = json.dumps(
        {
            "template": template,
            "home_root": str(home_root),
            "group": group,
            "directory": str(directory),
        },
        indent=1,
    )
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(body + "\n")
    os.replace(tmp, path)


def _check_root_owned(path: Path) -> None:
    for part in [path, *path.parents]:
        info = part.lstat()
        if stat.S_ISLNK(info.st_mode):
            raise HelperError(f"{part} is a symlink; the helper's config must be a real path")
        # A sticky directory (/tmp) is fine: no one else can rename root's entries in it.
        sticky_dir = part != path and info.st_mode & stat.S_ISVTX
        if info.st_uid != 0 or (info.st_mode & 0o022 and not sticky_dir):
            raise HelperError(f"{part} must be root's and writable by no one else")


def load_config(path: Path) -> dict[str, str]:
    if not path.is_absolute():
        raise HelperError(f"CONFIG must be an absolute path, not {path}")
    _check_root_owned(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise HelperError(f"cannot read {path}: {e}") from None
    if not isinstance(raw, dict) or sorted(raw) != sorted(CONFIG_KEYS):
        raise HelperError(f"{path} must hold exactly {', '.join(CONFIG_KEYS)}")
    return {key: str(raw[key]) for key in CONFIG_KEYS}


def ensure_account(config_path: Path, hub_user: str) -> dict[str, object]:
    problem = username_problem(hub_user)
    if problem:
        raise HelperError(f"HUBUSER: {problem}")
    config = load_config(config_path)
    try:
        users = load_directory(Path(config["directory"]))
    except DirectoryError as e:
        raise HelperError(str(e)) from None
    entry = users.get(hub_user)
    if entry is None or not entry.org:
        raise HelperError(f"{hub_user!r} is not a user of this deployment (with an organization)")
    name = system_users.os_username(config["template"], hub_user)
    home = Path(config["home_root"]) / hub_user
    pw = system_users.ensure_user(name, home, groups=[config["group"]])
    return {"name": pw.pw_name, "uid": pw.pw_uid, "home": pw.pw_dir}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(USAGE, file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("dshare-ensure-account: must run as root (through sudo)", file=sys.stderr)
        return 2
    umask = os.umask(0o077)
    try:
        answer = ensure_account(Path(args[0]), args[1])
    except (HelperError, system_users.AccountError) as e:
        print(f"dshare-ensure-account: {e}", file=sys.stderr)
        return 1
    finally:
        os.umask(umask)  # main() may be called in a process that goes on (tests)
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

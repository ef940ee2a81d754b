"""Who owns what in the embedded deployment, applied at every provisioning.

| path                               | owner:group               | modes (dirs / files) |
|------------------------------------|---------------------------|----------------------|
| <root>, homes/, storage/, orgs/, identities/, views/ | root:root | 0711               |
| hub/ (hub database, cookie secret, proxy token) | hub:hub      | 0700 / 0600          |
| secrets/ (service tokens)          | root:hub                  | 0750 / 0640          |
| secrets/accounts.json (the account helper's config) | root:root | 0600                |
| users/ (users.yaml: password hashes) | root:hub                | 0750 / 0640          |
| demo-logins.txt                    | root:root                 | 0600                 |
| orgs/<org>/ (KEK, key store, broker config and state) | broker:broker | 0700 / 0600  |
| identities/<Org>/ (key.pem, ca-key.pem, certs) | broker:broker | 0700 / 0600          |
| trust/<Org>-ca.pem (the CAs every broker checks the ledger against) | root:root | 0755 / 0644 |
| ledger/ (database, WAL, inbox, locks) | root:dshare-ledger     | 2770 / 0660          |
| storage/<org>/ (raw data)          | broker:dshare-<org>-data  | 2750 / 0640          |
| views/<org>/ (interactive views)   | broker:broker             | 0711 (views: 0700 + ACL) |
| homes/<user>/                      | the user's own account    | 0700                 |

"hub" is the hub's service user (`dshare-hub`): the hub reads the users' password hashes
and the services' tokens through its group, and owns nothing but its own state.

Fixing runs over what exists, so a data directory made by an older dshare (everything
root's) ends up the same as a new one. Nothing here follows a symlink.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from ..spawner import system_users
from . import sudoers
from .content import ORGS, demo_users
from .layout import DemoLayout
from .services import service_names

log = logging.getLogger(__name__)


def fix_tree(path: Path, uid: int, gid: int, dir_mode: int, file_mode: int) -> None:
    """Give everything under `path` (itself included) uid:gid and these modes.

    The tree may belong to a less trusted account (a broker's state, a data dir), so it is
    walked by directory descriptors and every change is made on an open descriptor: a
    directory swapped for a symlink meanwhile leads nowhere. Symlinks get the owner only.
    """
    _fix(os.fspath(path), uid, gid, dir_mode, file_mode, None)
    if not path.is_dir() or path.is_symlink():
        return
    for _top, dirs, files, dir_fd in os.fwalk(path, follow_symlinks=False):
        for name in dirs + files:
            _fix(name, uid, gid, dir_mode, file_mode, dir_fd)


def _fix(name: str, uid: int, gid: int, dir_mode: int, file_mode: int, dir_fd: int | None) -> None:
    info = os.lstat(name, dir_fd=dir_fd)
    if stat.S_ISLNK(info.st_mode):
        if (info.st_uid, info.st_gid) != (uid, gid):
            os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
        return
    if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
        log.warning("leaving %s alone: neither a file nor a directory", name)
        return
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as e:  # swapped for a symlink since the lstat, or gone
        log.warning("leaving %s alone: %s", name, e)
        return
    try:
        now = os.fstat(fd)
        if stat.S_ISREG(now.st_mode) and now.st_nlink > 1:
            # A hard link may be to a file elsewhere (someone else's); never re-own it.
            log.warning("leaving %s alone: it has %d hard links", name, now.st_nlink)
            return
        if (now.st_uid, now.st_gid) != (uid, gid):
            os.fchown(fd, uid, gid)
        mode = dir_mode if stat.S_ISDIR(now.st_mode) else file_mode
        # Always set: chown clears setgid bits.
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def _root_dir(path: Path, mode: int, uid: int = 0, gid: int = 0) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise RuntimeError(f"{path} must be a directory, not a symlink or a file; remove it")
    _fix(os.fspath(path), uid, gid, mode, mode, None)


def make_layout_dirs(layout: DemoLayout) -> None:
    """The directories root keeps, with their modes, before anything is written in them.

    The accounts (ensure_accounts) exist by then: the hub's own directories are its."""
    hub = system_users.pwd.getpwnam(layout.hub_user)
    _root_dir(layout.root, 0o711)
    for path in (
        layout.homes,
        layout.data,
        layout.root / "orgs",
        layout.identities,
        layout.views,
    ):
        _root_dir(path, 0o711)
    _root_dir(layout.trusted_ca(ORGS[0]).parent, 0o755)
    for path in (layout.root / "secrets", layout.user_directory.parent):
        _root_dir(path, 0o750, gid=hub.pw_gid)
    _root_dir(layout.hub_dir, 0o700, hub.pw_uid, hub.pw_gid)
    ledger_gid = system_users.ensure_group(layout.ledger_group)
    ledger = layout.ledger_db.parent
    ledger.mkdir(parents=True, exist_ok=True)
    # setgid: files SQLite creates there (WAL, shared memory) get the ledger group.
    _fix(os.fspath(ledger), 0, ledger_gid, 0o2770, 0o2770, None)


def migrate_old_paths(layout: DemoLayout) -> None:
    """Move what data directories of older dshare versions kept where others could reach."""
    old, new = layout.old_identities, layout.identities
    if old.is_dir() and not old.is_symlink():
        for entry in old.iterdir():
            if not (new / entry.name).exists():
                log.info("moving the ledger identity %s to %s", entry.name, new)
                entry.rename(new / entry.name)
        if not any(old.iterdir()):
            old.rmdir()
    # Tokens of older versions: the proxy's is the hub's own now (hub/), the seeder's renamed.
    for name in ("proxy-token", "seeder-token"):
        (layout.root / "secrets" / name).unlink(missing_ok=True)
    old_users = layout.old_user_directory
    if old_users.is_file() and not layout.user_directory.exists():
        old_users.rename(layout.user_directory)
        old_users.with_name(old_users.name + ".lock").unlink(missing_ok=True)


def ensure_accounts(layout: DemoLayout) -> None:
    """The hub's and the brokers' service users and the groups; each broker is in the
    ledger group only, the hub in no group but its own."""
    system_users.ensure_service_user(layout.hub_user)
    system_users.ensure_group(layout.users_group)
    system_users.ensure_group(layout.ledger_group)
    for org in ORGS:
        system_users.ensure_group(layout.data_group(org))
        system_users.ensure_service_user(layout.broker_user(org), groups=[layout.ledger_group])


def ensure_homes(layout: DemoLayout) -> dict[str, system_users.pwd.struct_passwd]:
    """Each demo user's OS account and home (the spawner makes the others' on first spawn)."""
    accounts = {}
    for user in demo_users():
        name = system_users.os_username(layout.user_template, user.name)
        accounts[user.name] = system_users.ensure_user(
            name, layout.homes / user.name, groups=[layout.users_group]
        )
    return accounts


def secure(layout: DemoLayout) -> None:
    """Owners and modes of everything provisioning made (see the table above)."""
    hub = system_users.pwd.getpwnam(layout.hub_user)
    fix_tree(layout.hub_dir, hub.pw_uid, hub.pw_gid, 0o700, 0o600)
    # Read by the hub through its group: the tokens, the password hashes (and their lock).
    hub_reads = {
        *(layout.service_token_file(name) for name in service_names()),
        layout.user_directory,
        layout.user_directory.with_name(layout.user_directory.name + ".lock"),
    }
    for folder in (layout.root / "secrets", layout.user_directory.parent):
        _fix(os.fspath(folder), 0, hub.pw_gid, 0o750, 0o750, None)
        for entry in folder.iterdir():
            if entry in hub_reads:
                fix_tree(entry, 0, hub.pw_gid, 0o750, 0o640)
            else:
                fix_tree(entry, 0, 0, 0o700, 0o600)
    for path in (layout.logins_file, layout.seeded_marker):
        if path.exists():
            _fix(os.fspath(path), 0, 0, 0o600, 0o600, None)
    for org in ORGS:
        if layout.trusted_ca(org).exists():
            _fix(os.fspath(layout.trusted_ca(org)), 0, 0, 0o644, 0o644, None)
    ledger_gid = system_users.grp.getgrnam(layout.ledger_group).gr_gid
    ledger = layout.ledger_db.parent
    for entry in ledger.iterdir():
        fix_tree(entry, 0, ledger_gid, 0o2770, 0o660)
    for org in ORGS:
        broker = system_users.pwd.getpwnam(layout.broker_user(org))
        own = (broker.pw_uid, broker.pw_gid)
        fix_tree(layout.org_dir(org), *own, 0o700, 0o600)
        if (layout.identities / org).exists():
            fix_tree(layout.identities / org, *own, 0o700, 0o600)
        data = layout.data / org.lower()
        if data.exists():
            data_gid = system_users.grp.getgrnam(layout.data_group(org)).gr_gid
            fix_tree(data, broker.pw_uid, data_gid, 0o2750, 0o640)
        views = layout.views_dir(org)
        views.mkdir(exist_ok=True, mode=0o711)
        # The directory only: the views in it are the broker's to make and remove (its
        # reaper takes their ACL entries away), never re-owned or re-moded here.
        _fix(os.fspath(views), broker.pw_uid, broker.pw_gid, 0o711, 0o711, None)
    for path in layout.homes.iterdir():
        # Homes are their users'; root only checks they are real directories kept 0700.
        info = path.lstat()
        if stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) != 0o700:
            os.chmod(path, 0o700)  # lstat said: a directory


def remove_accounts(layout: DemoLayout) -> list[str]:
    """Delete the OS users and groups this deployment's names cover; returns what went.

    With an account prefix (tests) that includes every user the spawner made; without one
    (the demo) only the demo users, the brokers and the groups, never other `jupyter-*`s.
    """
    users = [layout.hub_user, *(layout.broker_user(org) for org in ORGS)]
    if layout.account_prefix:
        users += system_users.users_with_prefix(layout.account_prefix)
    else:
        users += [system_users.os_username(layout.user_template, u.name) for u in demo_users()]
    removed = [str(layout.sudoers_file)] if sudoers.remove(layout) else []
    for name in dict.fromkeys(users):
        if system_users.lookup(name) is not None:
            system_users.remove_user(name)
            removed.append(name)
    groups = [layout.users_group, layout.ledger_group, *(layout.data_group(o) for o in ORGS)]
    for group in groups:
        if system_users.group_exists(group):
            system_users.remove_group(group)
            removed.append(group)
    return removed

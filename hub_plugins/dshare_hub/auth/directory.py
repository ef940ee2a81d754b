"""The embedded mode's user directory: a YAML file of users, organizations and hashes.

    users:
      - name: alice
        org: UiS
        roles: [scientist]
        password_hash: "$argon2id$v=19$m=65536,t=3,p=4$..."

A user without `org` may stay in the file (say, while waiting for an organization) but
cannot log in. The file holds password hashes, so it is written with mode 0600, and
always whole: a temporary file in the same folder, flushed to disk, then renamed over the
old one, so a crash leaves either the old or the new directory, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .identity import ROLES, org_name_problem
from .passwords import hash_format_problem

log = logging.getLogger(__name__)

FIELDS = ("name", "org", "roles", "password_hash")
FILE_MODE = 0o600
DIRECTORY_ENV = "DSHARE_USER_DIRECTORY"
DEFAULT_FILENAME = "dshare_users.yaml"

# JupyterHub lower-cases names at login, so a stored upper-case name could never match.
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@+-]{0,127}$")


class DirectoryError(ValueError):
    """The user directory cannot be read or an entry in it is wrong."""


@dataclass(frozen=True)
class DirectoryUser:
    name: str
    org: str | None
    roles: tuple[str, ...]
    password_hash: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "org": self.org,
            "roles": list(self.roles),
            "password_hash": self.password_hash,
        }


def default_directory_path() -> Path:
    """$DSHARE_USER_DIRECTORY, else dshare_users.yaml in the working directory (where
    JupyterHub also keeps its own database by default)."""
    return Path(os.environ.get(DIRECTORY_ENV) or DEFAULT_FILENAME)


def username_problem(name: object) -> str | None:
    if not isinstance(name, str) or not name:
        return "must be a non-empty string"
    if not _NAME_RE.match(name):
        return (
            f"{name!r} is not a valid user name: use lower-case letters, digits and . _ @ + -, "
            "starting with a letter or digit (JupyterHub lower-cases names at login)"
        )
    return None


def check_entry(raw: object, *, where: str) -> DirectoryUser:
    """Validate one entry, raising `DirectoryError` naming the user and field."""
    if not isinstance(raw, dict):
        raise DirectoryError(f"{where}: must be a mapping with keys {', '.join(FIELDS)}")
    name = raw.get("name")
    problem = username_problem(name)
    if problem is not None:
        raise DirectoryError(f"{where}, field 'name': {problem}")
    who = f"{where} (user {name!r})"
    unknown = sorted(str(k) for k in raw if k not in FIELDS)
    if unknown:
        raise DirectoryError(
            f"{who}: unknown field(s) {', '.join(map(repr, unknown))}; "
            f"allowed fields are {', '.join(FIELDS)}"
        )
    org = raw.get("org")
    if org is not None:
        problem = org_name_problem(org)
        if problem is not None:
            raise DirectoryError(f"{who}, field 'org': {problem}")
    roles = raw.get("roles", [])
    if roles is None:
        roles = []
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise DirectoryError(f"{who}, field 'roles': must be a list such as [scientist]")
    for role in roles:
        if role not in ROLES:
            raise DirectoryError(
                f"{who}, field 'roles': unknown role {role!r}; use {' or '.join(map(repr, ROLES))}"
            )
    if "password_hash" not in raw:
        raise DirectoryError(
            f"{who}, field 'password_hash': missing; set one with `dshare users passwd {name}`"
        )
    problem = hash_format_problem(raw["password_hash"])
    if problem is not None:
        raise DirectoryError(f"{who}, field 'password_hash': {problem}")
    assert isinstance(name, str)
    return DirectoryUser(
        name=name,
        org=org,
        roles=tuple(sorted(set(roles), key=ROLES.index)),
        password_hash=raw["password_hash"],
    )


def parse_directory(text: str, source: str) -> dict[str, DirectoryUser]:
    """Parse a directory's YAML text; `source` names it in error messages."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise DirectoryError(f"{source}: not valid YAML{at}") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or set(data) - {"users"}:
        raise DirectoryError(f"{source}: expected a mapping with a single key 'users'")
    entries = data.get("users") or []
    if not isinstance(entries, list):
        raise DirectoryError(f"{source}, 'users': must be a list of entries")
    users: dict[str, DirectoryUser] = {}
    for index, raw in enumerate(entries, start=1):
        user = check_entry(raw, where=f"{source}: users entry {index}")
        if user.name in users:
            raise DirectoryError(
                f"{source}: users entry {index} (user {user.name!r}), field 'name': "
                "duplicate; each user may appear only once"
            )
        users[user.name] = user
    return users


def load_directory(path: Path, *, missing_ok: bool = False) -> dict[str, DirectoryUser]:
    """Read and validate the directory at `path`.

    A missing file is an empty directory when `missing_ok` (the CLI creating the first
    user), an error otherwise (a hub pointed at the wrong file should not start empty).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise DirectoryError(
            f"user directory {path} does not exist; create it with "
            f"`dshare users add NAME --org ORG --role scientist --directory {path}`"
        ) from None
    except OSError as exc:
        raise DirectoryError(f"user directory {path}: cannot read it ({exc.strerror})") from None
    _warn_if_readable_by_others(path)
    return parse_directory(text, str(path))


def dump_directory(users: dict[str, DirectoryUser]) -> str:
    body = {"users": [users[name].to_dict() for name in sorted(users)]}
    return yaml.safe_dump(body, sort_keys=False, default_flow_style=False)


def save_directory(path: Path, users: dict[str, DirectoryUser]) -> None:
    """Replace the directory at `path` atomically, readable only by its owner."""
    text = dump_directory(users)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        # mkstemp already creates the file 0600; chmod guards against odd umask handling.
        # A group the file was given (the embedded deployment's hub user, which reads it
        # to log people in) is kept, with its read bit; others never read it.
        mode, gid = FILE_MODE, -1
        with contextlib.suppress(FileNotFoundError):
            old = os.stat(path)
            mode |= stat.S_IMODE(old.st_mode) & 0o040
            gid = old.st_gid
        if gid not in (-1, os.getegid()):
            with contextlib.suppress(PermissionError):
                os.fchown(fd, -1, gid)
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def edit_directory(path: Path) -> Iterator[dict[str, DirectoryUser]]:
    """Read-modify-write the directory under an exclusive lock.

    Yields the users as a dict to change in place; it is saved when the block ends
    without an exception, and left untouched otherwise.
    """
    lock_path = path.with_name(path.name + ".lock")
    lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        users = load_directory(path, missing_ok=True)
        yield users
        save_directory(path, users)
    finally:
        os.close(lock_fd)


def _warn_if_readable_by_others(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    # Group read is how the embedded deployment lets its non-root hub read the hashes.
    if mode & 0o037:
        log.warning(
            "user directory %s has mode %o: other users can read its password hashes; "
            "run `chmod 600 %s`",
            path,
            mode,
            path,
        )

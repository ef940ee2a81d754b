"""`dshare users add|list|remove|passwd`: manage the embedded mode's user directory."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from .directory import (
    DIRECTORY_ENV,
    DirectoryError,
    DirectoryUser,
    default_directory_path,
    edit_directory,
    load_directory,
    username_problem,
)
from .identity import ROLES, org_name_problem
from .passwords import hash_password

MIN_PASSWORD_LENGTH = 8


class UsageError(Exception):
    """A refused command; the message says what to do instead."""


def add_users_commands(subparsers: argparse._SubParsersAction) -> None:
    users = subparsers.add_parser(
        "users",
        help="manage the embedded mode's user directory",
        description=(
            "Add, list, remove users of the embedded mode and set their passwords. "
            f"The directory file is --directory, else ${DIRECTORY_ENV}, else "
            "./dshare_users.yaml."
        ),
    )
    users.set_defaults(func=lambda args: _fail(users.format_usage().strip()))
    sub = users.add_subparsers(title="user commands", metavar="ACTION", dest="users_action")

    def with_directory(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--directory", type=Path, help="path of the user directory file")
        return parser

    add = with_directory(sub.add_parser("add", help="add a user"))
    add.add_argument("name", help="user name as typed at login (lower-case)")
    add.add_argument("--org", required=True, help="the user's organization, e.g. UiS")
    add.add_argument(
        "--role",
        dest="roles",
        action="append",
        required=True,
        choices=ROLES,
        help="a dshare role; repeat for several",
    )
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input instead of prompting",
    )
    add.set_defaults(func=_run(cmd_add))

    lst = with_directory(sub.add_parser("list", help="list users (never their hashes)"))
    lst.set_defaults(func=_run(cmd_list))

    remove = with_directory(sub.add_parser("remove", help="remove a user"))
    remove.add_argument("name")
    remove.set_defaults(func=_run(cmd_remove))

    passwd = with_directory(sub.add_parser("passwd", help="set a user's password"))
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true")
    passwd.set_defaults(func=_run(cmd_passwd))


def cmd_add(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> None:
    problem = username_problem(args.name)
    if problem is not None:
        raise UsageError(f"NAME: {problem}")
    problem = org_name_problem(args.org)
    if problem is not None:
        raise UsageError(f"--org: {problem}")
    path = _path(args)
    # check before asking for a password, then again under the lock
    if args.name in load_directory(path, missing_ok=True):
        raise _exists(args.name, path)
    password = _read_password(args, stdin)
    password_hash = hash_password(password)
    with edit_directory(path) as users:
        if args.name in users:
            raise _exists(args.name, path)
        users[args.name] = DirectoryUser(
            name=args.name,
            org=args.org,
            roles=tuple(r for r in ROLES if r in args.roles),
            password_hash=password_hash,
        )
    out.write(f"added {args.name} ({args.org}: {', '.join(users[args.name].roles)}) to {path}\n")


def cmd_list(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> None:
    users = load_directory(_path(args))
    rows = [("NAME", "ORG", "ROLES")] + [
        (u.name, u.org or "-", ",".join(u.roles) or "-") for u in sorted(users.values(), key=_key)
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")


def cmd_remove(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> None:
    path = _path(args)
    with edit_directory(path) as users:
        if args.name not in users:
            raise _missing(args.name, path)
        del users[args.name]
    out.write(f"removed {args.name} from {path}\n")


def cmd_passwd(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> None:
    path = _path(args)
    if args.name not in load_directory(path):
        raise _missing(args.name, path)
    password_hash = hash_password(_read_password(args, stdin))
    with edit_directory(path) as users:
        user = users.get(args.name)
        if user is None:
            raise _missing(args.name, path)
        users[args.name] = DirectoryUser(user.name, user.org, user.roles, password_hash)
    out.write(f"changed the password of {args.name} in {path}\n")


def _read_password(args: argparse.Namespace, stdin: TextIO) -> str:
    if args.password_stdin:
        password = stdin.readline().rstrip("\r\n")
    elif stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise UsageError("the two passwords differ; nothing was changed")
    else:
        raise UsageError(
            "standard input is not a terminal: pass --password-stdin and write the "
            "password on standard input"
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UsageError(
            f"password too short: use at least {MIN_PASSWORD_LENGTH} characters; "
            "nothing was changed"
        )
    return password


def _path(args: argparse.Namespace) -> Path:
    return args.directory if args.directory is not None else default_directory_path()


def _exists(name: str, path: Path) -> UsageError:
    return UsageError(
        f"user {name!r} already exists in {path}; use `dshare users passwd {name}` to change "
        f"the password, or `dshare users remove {name}` first to change the organization"
    )


def _missing(name: str, path: Path) -> UsageError:
    return UsageError(f"no user {name!r} in {path}; see `dshare users list`")


def _key(user: DirectoryUser) -> tuple[str, str]:
    return (user.org or "", user.name)


def _fail(message: str) -> int:
    sys.stderr.write(message + "\n")
    return 2


Command = Callable[[argparse.Namespace, TextIO, TextIO], None]


def _run(command: Command) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        try:
            command(args, sys.stdin, sys.stdout)
        except (UsageError, DirectoryError) as exc:
            sys.stderr.write(f"dshare users {args.users_action}: {exc}\n")
            return 1
        return 0

    return handler

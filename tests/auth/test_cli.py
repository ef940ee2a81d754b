"""`dshare users ...` as the lead wires it: a subparser added to the dshare parser."""

from __future__ import annotations

import argparse
import io
import stat
from pathlib import Path

import pytest

from dshare_hub.auth.cli import add_users_commands
from dshare_hub.auth.directory import load_directory
from dshare_hub.auth.passwords import verify_password


def run(
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stdin: str = "",
) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="dshare")
    add_users_commands(parser.add_subparsers())
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    args = parser.parse_args(argv)
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "users.yaml"


def test_add_list_passwd_remove(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    d = ["--directory", str(path)]
    code, out, err = run(
        ["users", "add", "alice", "--org", "UiS", "--role", "scientist", "--password-stdin", *d],
        monkeypatch,
        capsys,
        stdin="first-password\n",
    )
    assert (code, out, err) == (0, f"added alice (UiS: scientist) to {path}\n", "")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "first-password" not in path.read_text()
    run(
        [
            "users",
            "add",
            "bob",
            "--org",
            "UiO",
            "--role",
            "admin",
            "--role",
            "scientist",
            "--password-stdin",
            *d,
        ],
        monkeypatch,
        capsys,
        stdin="second-password",
    )
    code, out, _ = run(["users", "list", *d], monkeypatch, capsys)
    assert code == 0
    assert out == (
        # grouped by organization, then by name
        "NAME   ORG  ROLES\nbob    UiO  scientist,admin\nalice  UiS  scientist\n"
    )
    code, out, _ = run(
        ["users", "passwd", "alice", "--password-stdin", *d],
        monkeypatch,
        capsys,
        stdin="changed-password\n",
    )
    assert (code, out) == (0, f"changed the password of alice in {path}\n")
    alice = load_directory(path)["alice"]
    assert verify_password(alice.password_hash, "changed-password")
    assert (alice.org, alice.roles) == ("UiS", ("scientist",))
    code, out, _ = run(["users", "remove", "alice", *d], monkeypatch, capsys)
    assert (code, out) == (0, f"removed alice from {path}\n")
    assert list(load_directory(path)) == ["bob"]


def test_directory_from_the_environment(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DSHARE_USER_DIRECTORY", str(path))
    code, _, _ = run(
        ["users", "add", "erin", "--org", "UiB", "--role", "admin", "--password-stdin"],
        monkeypatch,
        capsys,
        stdin="long-enough\n",
    )
    assert code == 0
    assert load_directory(path)["erin"].roles == ("admin",)


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (
            ["add", "Alice", "--org", "UiS", "--role", "scientist", "--password-stdin"],
            "long-enough",
            "dshare users add: NAME: 'Alice' is not a valid user name: use lower-case letters, "
            "digits and . _ @ + -, starting with a letter or digit (JupyterHub lower-cases names "
            "at login)",
        ),
        (
            ["add", "erin", "--org", "U S", "--role", "scientist", "--password-stdin"],
            "long-enough",
            "dshare users add: --org: 'U S' is not a valid organization name: use 1-63 letters, "
            "digits, '-' or '_', starting with a letter (e.g. 'UiS')",
        ),
        (
            ["add", "erin", "--org", "UiS", "--role", "scientist", "--password-stdin"],
            "short\n",
            "dshare users add: password too short: use at least 8 characters; nothing was changed",
        ),
        (
            ["add", "erin", "--org", "UiS", "--role", "scientist"],
            "",
            "dshare users add: standard input is not a terminal: pass --password-stdin and "
            "write the password on standard input",
        ),
        (
            ["add", "bob", "--org", "UiS", "--role", "scientist", "--password-stdin"],
            "long-enough",
            "dshare users add: user 'bob' already exists in {path}; use `dshare users passwd "
            "bob` to change the password, or `dshare users remove bob` first to change the "
            "organization",
        ),
        (
            ["remove", "nobody"],
            "",
            "dshare users remove: no user 'nobody' in {path}; see `dshare users list`",
        ),
        (
            ["passwd", "nobody", "--password-stdin"],
            "long-enough",
            "dshare users passwd: no user 'nobody' in {path}; see `dshare users list`",
        ),
    ],
)
def test_refusals_explain_and_change_nothing(
    path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    stdin: str,
    message: str,
) -> None:
    run(
        [
            "users",
            "add",
            "bob",
            "--org",
            "UiO",
            "--role",
            "admin",
            "--password-stdin",
            "--directory",
            str(path),
        ],
        monkeypatch,
        capsys,
        stdin="bobs-password",
    )
    before = path.read_bytes()
    code, out, err = run(
        ["users", *argv, "--directory", str(path)], monkeypatch, capsys, stdin=stdin
    )
    assert (code, out, err) == (1, "", message.format(path=path) + "\n")
    assert path.read_bytes() == before


def test_list_of_a_missing_directory_says_how_to_create_it(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["users", "list", "--directory", str(path)], monkeypatch, capsys)
    assert (code, out) == (1, "")
    assert err == (
        f"dshare users list: user directory {path} does not exist; create it with `dshare users "
        f"add NAME --org ORG --role scientist --directory {path}`\n"
    )


def test_list_shows_users_without_org(
    directory_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["users", "list", "--directory", str(directory_file)], monkeypatch, capsys)
    assert code == 0
    assert out == (
        "NAME   ORG  ROLES\n"
        "carol  -    -\n"
        "bob    UiO  admin\n"
        "alice  UiS  scientist\n"
        "dave   UiS  scientist,admin\n"
    )
    assert "argon2" not in out


def test_unknown_role_is_refused_by_argparse(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as excinfo:
        run(
            ["users", "add", "x", "--org", "UiS", "--role", "boss", "--directory", str(path)],
            monkeypatch,
            capsys,
        )
    assert excinfo.value.code == 2
    assert "argument --role: invalid choice: 'boss' (choose from 'scientist', 'admin')" in (
        capsys.readouterr().err
    )
    assert not path.exists()


def test_users_without_an_action_prints_usage(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["users"], monkeypatch, capsys)
    assert (code, out) == (2, "")
    assert err.startswith("usage: dshare users [-h] ACTION ...")

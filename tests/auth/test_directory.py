from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
import yaml

from dshare_hub.auth.directory import (
    DirectoryError,
    DirectoryUser,
    edit_directory,
    load_directory,
    parse_directory,
    save_directory,
)
from dshare_hub.auth.passwords import (
    HashFormatError,
    dummy_hash,
    hash_format_problem,
    hash_password,
    verify_password,
)


@pytest.mark.parametrize("scheme", ["argon2", "scrypt"])
def test_hash_and_verify(scheme: str) -> None:
    stored = hash_password("correct horse", scheme)
    assert hash_format_problem(stored) is None
    assert verify_password(stored, "correct horse")
    assert not verify_password(stored, "correct horsE")
    assert "correct horse" not in stored
    # salted: the same password never hashes the same twice
    assert hash_password("correct horse", scheme) != stored


def test_unknown_scheme_and_hash_formats() -> None:
    with pytest.raises(ValueError) as excinfo:
        hash_password("x", "md5")
    assert str(excinfo.value) == "unknown password hash scheme 'md5'; use one of argon2, scrypt"
    with pytest.raises(HashFormatError):
        verify_password("plaintext", "plaintext")
    assert hash_format_problem("plaintext") == (
        "is neither an argon2 ('$argon2id$...') nor a scrypt ('scrypt$...') hash"
    )
    assert hash_format_problem("$argon2id$garbage") == "is not a valid argon2 hash"
    assert hash_format_problem("scrypt$1$2") == (
        "is not a valid scrypt hash: expected scrypt$N$r$p$salt$hash"
    )
    assert hash_format_problem("scrypt$3$8$1$AAAAAAAAAAA=$AAAA") == (
        "is not a valid scrypt hash: parameters out of range"
    )


def test_dummy_hash_matches_nothing_typed() -> None:
    assert dummy_hash() == dummy_hash()
    assert not verify_password(dummy_hash(), "")
    assert not verify_password(dummy_hash(), "password")


def test_load_reads_all_fields(directory_file: Path, hashes: dict[str, str]) -> None:
    users = load_directory(directory_file)
    assert users == {
        "alice": DirectoryUser("alice", "UiS", ("scientist",), hashes["alice"]),
        "bob": DirectoryUser("bob", "UiO", ("admin",), hashes["bob"]),
        "carol": DirectoryUser("carol", None, (), hashes["carol"]),
        "dave": DirectoryUser("dave", "UiS", ("scientist", "admin"), hashes["dave"]),
    }


def _entry(hashes: dict[str, str], **fields: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "name": "erin",
        "org": "UiB",
        "roles": ["scientist"],
        "password_hash": hashes["alice"],
    }
    entry.update(fields)
    return {k: v for k, v in entry.items() if v is not ...}


BAD_ENTRIES = [
    (
        {"org": "U B"},
        "src: users entry 1 (user 'erin'), field 'org': 'U B' is not a valid organization "
        "name: use 1-63 letters, digits, '-' or '_', starting with a letter (e.g. 'UiS')",
    ),
    ({"org": 7}, "src: users entry 1 (user 'erin'), field 'org': must be a string, got int"),
    (
        {"roles": ["boss"]},
        "src: users entry 1 (user 'erin'), field 'roles': unknown role 'boss'; use "
        "'scientist' or 'admin'",
    ),
    (
        {"roles": "admin"},
        "src: users entry 1 (user 'erin'), field 'roles': must be a list such as [scientist]",
    ),
    (
        {"password_hash": ...},
        "src: users entry 1 (user 'erin'), field 'password_hash': missing; set one with "
        "`dshare users passwd erin`",
    ),
    (
        {"password_hash": "hunter2"},
        "src: users entry 1 (user 'erin'), field 'password_hash': is neither an argon2 "
        "('$argon2id$...') nor a scrypt ('scrypt$...') hash",
    ),
    (
        {"pasword_hash": "x"},
        "src: users entry 1 (user 'erin'): unknown field(s) 'pasword_hash'; allowed fields "
        "are name, org, roles, password_hash",
    ),
    (
        {"name": "Erin"},
        "src: users entry 1, field 'name': 'Erin' is not a valid user name: use lower-case "
        "letters, digits and . _ @ + -, starting with a letter or digit (JupyterHub "
        "lower-cases names at login)",
    ),
    ({"name": ...}, "src: users entry 1, field 'name': must be a non-empty string"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_ENTRIES)
def test_bad_entries_name_the_user_and_field(
    hashes: dict[str, str], fields: dict[str, object], message: str
) -> None:
    text = yaml.safe_dump({"users": [_entry(hashes, **fields)]})
    with pytest.raises(DirectoryError) as excinfo:
        parse_directory(text, "src")
    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("users: [\n  {name: a\n", "src: not valid YAML at line 3, column 1"),
        ("- a\n- b\n", "src: expected a mapping with a single key 'users'"),
        ("users: {a: 1}\n", "src, 'users': must be a list of entries"),
        (
            "users: [7]\n",
            "src: users entry 1: must be a mapping with keys name, org, roles, password_hash",
        ),
    ],
)
def test_bad_files_say_where(text: str, message: str) -> None:
    with pytest.raises(DirectoryError) as excinfo:
        parse_directory(text, "src")
    assert str(excinfo.value) == message


def test_duplicate_names_are_refused(hashes: dict[str, str]) -> None:
    text = yaml.safe_dump({"users": [_entry(hashes), _entry(hashes, org="UiS")]})
    with pytest.raises(DirectoryError) as excinfo:
        parse_directory(text, "src")
    assert str(excinfo.value) == (
        "src: users entry 2 (user 'erin'), field 'name': duplicate; each user may appear only once"
    )


def test_empty_file_is_an_empty_directory() -> None:
    assert parse_directory("", "src") == {}
    assert parse_directory("users:\n", "src") == {}


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert load_directory(path, missing_ok=True) == {}
    with pytest.raises(DirectoryError) as excinfo:
        load_directory(path)
    assert str(excinfo.value) == (
        f"user directory {path} does not exist; create it with `dshare users add NAME --org "
        f"ORG --role scientist --directory {path}`"
    )


def test_save_is_0600_and_round_trips(tmp_path: Path, hashes: dict[str, str]) -> None:
    path = tmp_path / "users.yaml"
    users = {"erin": DirectoryUser("erin", "UiB", ("admin",), hashes["alice"])}
    save_directory(path, users)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_directory(path) == users
    # nothing left behind by the temp-and-rename write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["users.yaml"]


def test_a_failed_write_leaves_the_old_file(
    tmp_path: Path, hashes: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "users.yaml"
    old = {"erin": DirectoryUser("erin", "UiB", ("admin",), hashes["alice"])}
    save_directory(path, old)

    def crash(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        save_directory(path, {})
    monkeypatch.undo()
    assert load_directory(path) == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["users.yaml"]


def test_edit_saves_on_success_and_not_on_error(tmp_path: Path, hashes: dict[str, str]) -> None:
    path = tmp_path / "users.yaml"
    with edit_directory(path) as users:
        users["erin"] = DirectoryUser("erin", "UiB", ("scientist",), hashes["alice"])
    assert list(load_directory(path)) == ["erin"]
    with pytest.raises(RuntimeError), edit_directory(path) as users:
        del users["erin"]
        raise RuntimeError("changed my mind")
    assert list(load_directory(path)) == ["erin"]


def test_world_readable_directory_is_warned_about(
    directory_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory_file.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        load_directory(directory_file)
    assert (
        f"user directory {directory_file} has mode 644: other users can read its password "
        f"hashes; run `chmod 600 {directory_file}`"
    ) in caplog.messages


@pytest.mark.skipif(os.geteuid() != 0, reason="gives the file another group: needs root")
def test_a_rewrite_keeps_the_group_that_reads_it_and_nothing_more(
    tmp_path: Path, hashes: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The embedded deployment's hub reads users.yaml through its group: `dshare users add`
    (root) must not take that away, nor give more than group read."""
    path = tmp_path / "users.yaml"
    with edit_directory(path) as users:
        users["erin"] = DirectoryUser("erin", "UiB", ("scientist",), hashes["alice"])
    os.chown(path, 0, 65534)
    path.chmod(0o640)
    with caplog.at_level(logging.WARNING), edit_directory(path) as users:
        users["finn"] = DirectoryUser("finn", "UiB", ("scientist",), hashes["alice"])
    info = path.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 65534, 0o640)
    assert caplog.messages == []
    assert sorted(load_directory(path)) == ["erin", "finn"]

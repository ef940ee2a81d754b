"""Shared fixtures: password hashes are made once per session (argon2 is slow on purpose)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import yaml

from dshare_hub.auth.passwords import hash_password


@pytest.fixture(scope="session")
def passwords() -> dict[str, str]:
    # generated at test time: no password or hash is committed
    return {name: secrets.token_urlsafe(12) for name in ("alice", "bob", "carol", "dave")}


@pytest.fixture(scope="session")
def hashes(passwords: dict[str, str]) -> dict[str, str]:
    return {name: hash_password(pw) for name, pw in passwords.items()}


@pytest.fixture
def directory_file(tmp_path: Path, hashes: dict[str, str]) -> Path:
    """alice: UiS scientist, bob: UiO admin, carol: no organization, dave: UiS both."""
    path = tmp_path / "users.yaml"
    users = [
        {"name": "alice", "org": "UiS", "roles": ["scientist"], "password_hash": hashes["alice"]},
        {"name": "bob", "org": "UiO", "roles": ["admin"], "password_hash": hashes["bob"]},
        {"name": "carol", "password_hash": hashes["carol"]},
        {
            "name": "dave",
            "org": "UiS",
            "roles": ["scientist", "admin"],
            "password_hash": hashes["dave"],
        },
    ]
    path.write_text(yaml.safe_dump({"users": users}))
    path.chmod(0o600)
    return path

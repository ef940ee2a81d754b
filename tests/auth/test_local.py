"""DShareLocalAuthenticator against a generated user directory, through
get_authenticated_user as JupyterHub's login handler calls it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from tornado import web

from dshare_hub.auth.base import SettingsError
from dshare_hub.auth.directory import DirectoryUser, save_directory
from dshare_hub.auth.local import DShareLocalAuthenticator
from dshare_hub.auth.lockout import FailureTracker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(directory_file: Path, **config: Any) -> DShareLocalAuthenticator:
    auth = DShareLocalAuthenticator(directory_path=str(directory_file), **config)
    auth.failure_tracker.clock = FakeClock()
    return auth


async def login(auth: DShareLocalAuthenticator, name: str, password: str) -> Any:
    return await auth.get_authenticated_user(None, {"username": name, "password": password})


@pytest.mark.asyncio
async def test_right_password_logs_in_with_groups(
    directory_file: Path, passwords: dict[str, str]
) -> None:
    auth = make(directory_file)
    model = await login(auth, "alice", passwords["alice"])
    assert model["name"] == "alice"
    assert model["groups"] == ["org:UiS", "role:scientist"]
    model = await login(auth, "Dave", passwords["dave"])
    assert (model["name"], model["groups"]) == ("dave", ["org:UiS", "role:admin", "role:scientist"])


@pytest.mark.asyncio
async def test_wrong_password_and_unknown_user_fail_alike(
    directory_file: Path, passwords: dict[str, str]
) -> None:
    auth = make(directory_file)
    assert await login(auth, "alice", passwords["bob"]) is None
    assert await login(auth, "nobody", passwords["alice"]) is None
    assert await login(auth, "alice", "") is None


@pytest.mark.asyncio
async def test_user_without_org_is_refused_after_the_password_check(
    directory_file: Path, passwords: dict[str, str]
) -> None:
    auth = make(directory_file)
    # a wrong password does not reveal that the account has no organization
    assert await login(auth, "carol", "wrong-password") is None
    with pytest.raises(web.HTTPError) as excinfo:
        await login(auth, "carol", passwords["carol"])
    assert excinfo.value.status_code == 403
    assert excinfo.value.log_message == (
        "User 'carol' has no organization in the dshare user directory, so this hub cannot let "
        "them in. Ask your dshare administrator to run "
        "`dshare users add carol --org ORG --role scientist`."
    )


@pytest.mark.asyncio
async def test_lockout_after_max_failures_then_release(
    directory_file: Path, passwords: dict[str, str]
) -> None:
    auth = make(directory_file, max_failures=3, lockout_seconds=60)
    clock = cast(FakeClock, auth.failure_tracker.clock)
    for _ in range(3):
        assert await login(auth, "alice", "wrong-password") is None
    with pytest.raises(web.HTTPError) as excinfo:
        await login(auth, "alice", passwords["alice"])
    assert excinfo.value.status_code == 403
    assert excinfo.value.log_message == (
        "Too many failed logins for 'alice': the account is locked for another 60 seconds. "
        "Wait, then try again."
    )
    clock.now += 59.5
    with pytest.raises(web.HTTPError) as excinfo:
        await login(auth, "alice", passwords["alice"])
    assert "locked for another 1 seconds" in str(excinfo.value.log_message)
    # other users are not affected
    assert (await login(auth, "bob", passwords["bob"]))["name"] == "bob"
    clock.now += 1
    assert (await login(auth, "alice", passwords["alice"]))["name"] == "alice"


@pytest.mark.asyncio
async def test_success_resets_the_failure_count(
    directory_file: Path, passwords: dict[str, str]
) -> None:
    auth = make(directory_file, max_failures=2)
    assert await login(auth, "alice", "wrong-password") is None
    assert await login(auth, "alice", passwords["alice"]) is not None
    assert await login(auth, "alice", "wrong-password") is None
    assert await login(auth, "alice", passwords["alice"]) is not None


@pytest.mark.asyncio
async def test_unknown_names_lock_too(directory_file: Path) -> None:
    auth = make(directory_file, max_failures=1)
    assert await login(auth, "ghost", "whatever-it-is") is None
    with pytest.raises(web.HTTPError) as excinfo:
        await login(auth, "ghost", "whatever-it-is")
    assert str(excinfo.value.log_message).startswith("Too many failed logins for 'ghost'")


@pytest.mark.asyncio
async def test_zero_max_failures_never_locks(
    directory_file: Path, passwords: dict[str, str]
) -> None:
    auth = make(directory_file, max_failures=0)
    for _ in range(4):
        assert await login(auth, "alice", "wrong-password") is None
    assert await login(auth, "alice", passwords["alice"]) is not None


@pytest.mark.asyncio
async def test_passwords_never_reach_the_log(
    directory_file: Path, passwords: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    auth = make(directory_file, max_failures=2)
    auth.log = logging.getLogger("test-local-auth")
    with caplog.at_level(logging.DEBUG):
        await login(auth, "alice", "typo-" + passwords["alice"])
        await login(auth, "alice", "typo-" + passwords["alice"])
        with pytest.raises(web.HTTPError):
            await login(auth, "alice", passwords["alice"])
        with pytest.raises(web.HTTPError):
            await login(auth, "carol", passwords["carol"])
    assert "Locked out alice for 300 seconds after 2 failed logins" in caplog.messages
    for secret in passwords.values():
        assert secret not in caplog.text


@pytest.mark.asyncio
async def test_directory_changes_apply_without_restart(
    directory_file: Path, passwords: dict[str, str], hashes: dict[str, str]
) -> None:
    auth = make(directory_file)
    assert await login(auth, "alice", passwords["alice"]) is not None
    users = {"alice": DirectoryUser("alice", "UiB", ("admin",), hashes["bob"])}
    save_directory(directory_file, users)
    assert await login(auth, "alice", passwords["alice"]) is None
    model = await login(auth, "alice", passwords["bob"])
    assert model["groups"] == ["org:UiB", "role:admin"]


@pytest.mark.asyncio
async def test_a_broken_edit_keeps_the_last_good_directory(
    directory_file: Path, passwords: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    auth = make(directory_file)
    auth.log = logging.getLogger("test-local-auth")
    assert await login(auth, "alice", passwords["alice"]) is not None
    directory_file.write_text("users: [{name: alice, org: 'U S'}]\n")
    with caplog.at_level(logging.ERROR):
        assert await login(auth, "alice", passwords["alice"]) is not None
    assert any(
        m.startswith("Keeping the previous user directory: ") and "field 'org'" in m
        for m in caplog.messages
    )


class StoredUser:
    def __init__(self, name: str) -> None:
        self.name = name


@pytest.mark.asyncio
async def test_refresh_follows_the_directory(directory_file: Path, hashes: dict[str, str]) -> None:
    auth = make(directory_file)
    refreshed = await auth.refresh_user(StoredUser("bob"))
    assert refreshed["groups"] == ["org:UiO", "role:admin"]
    assert await auth.refresh_user(StoredUser("carol")) is False
    save_directory(
        directory_file, {"bob": DirectoryUser("bob", "UiO", ("scientist",), hashes["bob"])}
    )
    assert (await auth.refresh_user(StoredUser("bob")))["groups"] == ["org:UiO", "role:scientist"]
    save_directory(directory_file, {})
    assert await auth.refresh_user(StoredUser("bob")) is False


def test_start_up_refuses_a_missing_directory(tmp_path: Path) -> None:
    auth = DShareLocalAuthenticator(directory_path=str(tmp_path / "none.yaml"))
    with pytest.raises(SettingsError) as excinfo:
        auth.check_allow_config()
    assert str(excinfo.value) == (
        "dshare authenticator settings are inconsistent:\n- DShareLocalAuthenticator."
        f"directory_path: user directory {tmp_path / 'none.yaml'} does not exist; create it "
        "with `dshare users add NAME --org ORG --role scientist --directory "
        f"{tmp_path / 'none.yaml'}`"
    )


def test_start_up_refuses_bad_entries_and_lockout_settings(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    path.write_text(yaml.safe_dump({"users": [{"name": "zed", "roles": ["root"]}]}))
    auth = DShareLocalAuthenticator(directory_path=str(path), max_failures=3, lockout_seconds=0)
    with pytest.raises(SettingsError) as excinfo:
        auth.check_allow_config()
    assert str(excinfo.value) == "\n- ".join(
        [
            "dshare authenticator settings are inconsistent:",
            "DShareLocalAuthenticator.lockout_seconds must be more than 0 while "
            "DShareLocalAuthenticator.max_failures is 3",
            f"DShareLocalAuthenticator.directory_path: {path}: users entry 1 (user 'zed'), "
            "field 'roles': unknown role 'root'; use 'scientist' or 'admin'",
        ]
    )


def test_start_up_warns_about_users_of_orgs_left_out(
    directory_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    auth = DShareLocalAuthenticator(directory_path=str(directory_file), allowed_orgs={"UiS"})
    auth.log = logging.getLogger("test-local-auth")
    with caplog.at_level(logging.WARNING):
        auth.check_allow_config()
    assert (
        f"DShareLocalAuthenticator.allowed_orgs does not include 'UiO', so user 'bob' in "
        f"{directory_file} cannot log in"
    ) in caplog.messages


def test_failure_table_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import dshare_hub.auth.lockout as lockout

    monkeypatch.setattr(lockout, "MAX_TRACKED_NAMES", 3)
    tracker = FailureTracker(max_failures=2, lockout_seconds=10, clock=FakeClock())
    for name in ["a", "b", "c", "d"]:
        tracker.record_failure(name)
    assert [tracker.failures(n) for n in ["a", "b", "c", "d"]] == [0, 1, 1, 1]

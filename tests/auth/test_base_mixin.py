"""The mixin over a plain JupyterHub authenticator, through get_authenticated_user."""

from __future__ import annotations

from typing import Any

import pytest
from jupyterhub.auth import Authenticator
from tornado import web

from dshare_hub.auth.base import DShareAuthenticatorMixin, SettingsError


class NameOnlyAuthenticator(Authenticator):
    """Logs anyone in under the name they type, like JupyterHub's DummyAuthenticator."""

    async def authenticate(self, handler: Any, data: Any = None) -> Any:
        return str(data["username"])


class OrgAuthenticator(DShareAuthenticatorMixin, NameOnlyAuthenticator):
    pass


def make(**config: Any) -> OrgAuthenticator:
    settings = {"user_orgs": {"alice": "UiS", "bob": "UiO"}, "org_admin_users": {"bob"}}
    settings.update(config)
    return OrgAuthenticator(**settings)


async def login(auth: Authenticator, name: str) -> dict[str, Any] | None:
    return await auth.get_authenticated_user(None, {"username": name, "password": "x"})


@pytest.mark.asyncio
async def test_user_gets_org_and_default_role_groups() -> None:
    model = await login(make(), "alice")
    assert model is not None
    assert model["name"] == "alice"
    assert model["groups"] == ["org:UiS", "role:scientist"]
    # an organization admin is not a JupyterHub admin
    assert not model["admin"]


@pytest.mark.asyncio
async def test_org_admin_gets_the_admin_role_only() -> None:
    model = await login(make(), "bob")
    assert model is not None
    assert model["groups"] == ["org:UiO", "role:admin"]


@pytest.mark.asyncio
async def test_names_are_normalized_before_lookup() -> None:
    model = await login(make(), "Alice")
    assert model is not None
    assert (model["name"], model["groups"]) == ("alice", ["org:UiS", "role:scientist"])


async def refused(auth: Authenticator, name: str) -> web.HTTPError:
    with pytest.raises(web.HTTPError) as excinfo:
        await login(auth, name)
    assert excinfo.value.status_code == 403
    return excinfo.value


@pytest.mark.asyncio
async def test_user_without_org_is_refused_with_the_reason() -> None:
    error = await refused(make(), "mallory")
    assert error.log_message == (
        "User 'mallory' has no dshare organization, so this hub cannot let them in. "
        "Ask your dshare administrator to assign one."
    )
    # JupyterHub shows jupyterhub_message on its error page and login form
    assert error.jupyterhub_message == error.log_message  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_org_outside_allowed_orgs_is_refused() -> None:
    error = await refused(make(allowed_orgs={"UiS"}), "bob")
    assert error.log_message == (
        "User 'bob' belongs to organization 'UiO', which is not taking part in this dshare hub."
    )
    assert await login(make(allowed_orgs={"UiS"}), "alice") is not None


@pytest.mark.asyncio
async def test_no_role_and_no_default_roles_is_refused() -> None:
    error = await refused(make(default_roles=[]), "alice")
    assert error.log_message == (
        "User 'alice' of UiS has no dshare role (scientist or admin). "
        "Ask your dshare administrator to grant one."
    )


@pytest.mark.asyncio
async def test_unusable_org_from_an_override_is_refused() -> None:
    class Broken(OrgAuthenticator):
        def org_for(self, auth_model: dict[str, Any]) -> str:
            return "not an org"

    error = await refused(Broken(), "alice")
    assert error.log_message == (
        "User 'alice' has an unusable organization: 'not an org' is not a valid organization "
        "name: use 1-63 letters, digits, '-' or '_', starting with a letter (e.g. 'UiS'). Ask "
        "your dshare administrator to correct it."
    )


@pytest.mark.asyncio
async def test_blocked_users_stay_blocked() -> None:
    assert await login(make(blocked_users={"alice"}), "alice") is None


@pytest.mark.asyncio
async def test_wrapped_authenticator_failure_is_passed_on() -> None:
    class Nobody(DShareAuthenticatorMixin, Authenticator):
        async def authenticate(self, handler: Any, data: Any = None) -> None:
            return None

    assert await login(Nobody(user_orgs={"alice": "UiS"}), "alice") is None


@pytest.mark.asyncio
async def test_groups_for_override_can_keep_extra_groups() -> None:
    class WithCourse(OrgAuthenticator):
        def groups_for(self, auth_model: dict[str, Any], identity: Any) -> list[str]:
            return [*super().groups_for(auth_model, identity), "course:dat500"]

    model = await login(WithCourse(user_orgs={"alice": "UiS"}), "alice")
    assert model is not None
    assert model["groups"] == ["course:dat500", "org:UiS", "role:scientist"]


class FakeUser:
    name = "alice"


@pytest.mark.asyncio
async def test_refresh_reapplies_identity_and_drops_users_who_lost_their_org() -> None:
    class Base(NameOnlyAuthenticator):
        async def refresh_user(self, user: Any, handler: Any = None) -> Any:
            return {"name": user.name}

    class Auth(DShareAuthenticatorMixin, Base):
        pass

    auth = Auth(user_orgs={"alice": "UiS"}, org_admin_users={"alice"})
    refreshed = await auth.refresh_user(FakeUser())
    assert refreshed["groups"] == ["org:UiS", "role:admin"]
    auth.user_orgs = {}
    assert await auth.refresh_user(FakeUser()) is False
    # a plain True ("nothing changed") passes through untouched
    assert await make().refresh_user(FakeUser()) is True


def test_default_settings_pass_start_up_checks() -> None:
    auth = make()
    assert auth.manage_groups is True
    auth.check_allow_config()


def test_start_up_check_names_every_bad_key() -> None:
    auth = make(
        manage_groups=False,
        allowed_orgs={"UiS", "uis", "U S"},
        default_roles=["boss"],
        user_orgs={"alice": "UiB", "bob": "!"},
    )
    with pytest.raises(SettingsError) as excinfo:
        auth.check_allow_config()
    assert str(excinfo.value) == "\n- ".join(
        [
            "dshare authenticator settings are inconsistent:",
            "OrgAuthenticator.manage_groups is False: dshare keeps organizations and roles in "
            "JupyterHub groups, so it must be True (the default)",
            "OrgAuthenticator.allowed_orgs: 'U S' is not a valid organization name: use 1-63 "
            "letters, digits, '-' or '_', starting with a letter (e.g. 'UiS')",
            "OrgAuthenticator.allowed_orgs: 'UiS' and 'uis' differ only in case, but their "
            "broker services would share one name",
            "OrgAuthenticator.default_roles: unknown role 'boss'; use 'scientist' or 'admin'",
            "OrgAuthenticator.user_orgs['alice']: organization 'UiB' is not in "
            "OrgAuthenticator.allowed_orgs, so this user could never log in",
            "OrgAuthenticator.user_orgs['bob']: '!' is not a valid organization name: use 1-63 "
            "letters, digits, '-' or '_', starting with a letter (e.g. 'UiS')",
        ]
    )

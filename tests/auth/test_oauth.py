"""DShareOAuthenticator through oauthenticator's real authenticate flow, with the
provider's token and userinfo endpoints answered by an in-memory HTTP client."""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any
from urllib.parse import parse_qs

import pytest
from tornado import web
from tornado.httpclient import HTTPRequest, HTTPResponse

from dshare_hub.auth.base import SettingsError
from dshare_hub.auth.oauth import DShareOAuthenticator

TOKEN_URL = "https://idp.example/token"
USERINFO_URL = "https://idp.example/userinfo"


class FakeProvider:
    """Stands in for AsyncHTTPClient: answers the token and userinfo requests."""

    def __init__(self, userinfo: dict[str, Any]) -> None:
        self.userinfo = userinfo
        self.requests: list[HTTPRequest] = []

    async def fetch(self, request: HTTPRequest, **kwargs: Any) -> HTTPResponse:
        self.requests.append(request)
        if request.url == TOKEN_URL:
            form = parse_qs(request.body.decode())
            assert form["code"] == ["the-code"]
            body = {"access_token": "at-123", "token_type": "Bearer", "scope": "openid"}
        elif request.url.startswith(USERINFO_URL):
            assert request.headers["Authorization"] == "Bearer at-123"
            body = self.userinfo
        else:
            raise AssertionError(f"unexpected request to {request.url}")
        return HTTPResponse(request, 200, buffer=BytesIO(json.dumps(body).encode()))


class CallbackHandler:
    """The parts of oauthenticator's callback handler that authenticate() reads."""

    def get_argument(self, name: str, default: Any = None) -> Any:
        return {"code": "the-code"}.get(name, default)


def make(userinfo: dict[str, Any], **config: Any) -> DShareOAuthenticator:
    settings: dict[str, Any] = {
        "client_id": "hub",
        "client_secret": "not-a-real-secret",
        "token_url": TOKEN_URL,
        "userdata_url": USERINFO_URL,
        "oauth_callback_url": "https://hub.example/hub/oauth_callback",
        "username_claim": "preferred_username",
        "enable_pkce": False,
    }
    settings.update(config)
    auth = DShareOAuthenticator(**settings)
    auth.http_client = FakeProvider(userinfo)
    return auth


async def login(auth: DShareOAuthenticator) -> dict[str, Any] | None:
    return await auth.get_authenticated_user(CallbackHandler(), None)


@pytest.mark.asyncio
async def test_default_claims_give_org_and_roles() -> None:
    auth = make({"preferred_username": "alice", "org": "UiS", "roles": ["scientist"]})
    model = await login(auth)
    assert model is not None
    assert model["name"] == "alice"
    assert model["groups"] == ["org:UiS", "role:scientist"]
    assert model["auth_state"]["oauth_user"]["org"] == "UiS"
    assert [r.url for r in auth.http_client.requests] == [TOKEN_URL, USERINFO_URL]


@pytest.mark.asyncio
async def test_configured_role_names_map_to_dshare_roles() -> None:
    auth = make(
        {
            "preferred_username": "bob",
            "org": "UiO",
            "realm_access": {"roles": ["offline_access", "dshare-owner", "dshare-user"]},
        },
        roles_claim_key="oauth_user.realm_access.roles",
        admin_role_names={"dshare-owner"},
        scientist_role_names={"dshare-user"},
    )
    model = await login(auth)
    assert model is not None
    assert model["groups"] == ["org:UiO", "role:admin", "role:scientist"]


@pytest.mark.asyncio
async def test_one_groups_claim_carries_org_and_role() -> None:
    auth = make(
        {"preferred_username": "dave", "groups": ["staff", "UiB", "dshare-admin"]},
        org_claim_key="oauth_user.groups",
        roles_claim_key="oauth_user.groups",
        allowed_orgs={"UiS", "UiO", "UiB"},
        admin_role_names={"dshare-admin"},
    )
    auth.check_allow_config()
    model = await login(auth)
    assert model is not None
    assert model["groups"] == ["org:UiB", "role:admin"]


@pytest.mark.asyncio
async def test_callable_claim_keys_may_be_async() -> None:
    async def org_from_email(auth_state: dict[str, Any]) -> str:
        domain = auth_state["oauth_user"]["email"].split("@")[1]
        return {"uis.no": "UiS"}[domain]

    auth = make(
        {"preferred_username": "erin", "email": "erin@uis.no"},
        org_claim_key=org_from_email,
        roles_claim_key=lambda auth_state: ["admin"],
    )
    model = await login(auth)
    assert model is not None
    assert model["groups"] == ["org:UiS", "role:admin"]


@pytest.mark.asyncio
async def test_no_role_claim_gives_default_roles() -> None:
    model = await login(make({"preferred_username": "finn", "org": "UiS"}))
    assert model is not None
    assert model["groups"] == ["org:UiS", "role:scientist"]


async def refusal(auth: DShareOAuthenticator) -> str:
    with pytest.raises(web.HTTPError) as excinfo:
        await login(auth)
    assert excinfo.value.status_code == 403
    return str(excinfo.value.log_message)


@pytest.mark.asyncio
async def test_missing_org_claim_is_refused_naming_the_key() -> None:
    message = await refusal(make({"preferred_username": "gus", "roles": ["scientist"]}))
    assert message == (
        "User 'gus' has no dshare organization: the identity provider sent no value at "
        "'oauth_user.org'. Ask its administrator to add your organization, or the hub "
        "administrator to fix DShareOAuthenticator.org_claim_key."
    )


@pytest.mark.asyncio
async def test_several_orgs_are_refused() -> None:
    auth = make({"preferred_username": "hal", "org": ["UiS", "UiO"]})
    assert await refusal(auth) == (
        "User 'hal' belongs to several organizations (UiO, UiS); dshare needs exactly one. "
        "Ask your identity provider's administrator."
    )


@pytest.mark.asyncio
async def test_org_list_is_narrowed_by_allowed_orgs() -> None:
    auth = make({"preferred_username": "hal", "org": ["Elsewhere", "UiO"]}, allowed_orgs={"UiO"})
    model = await login(auth)
    assert model is not None
    assert model["groups"] == ["org:UiO", "role:scientist"]


@pytest.mark.asyncio
async def test_org_not_allowed_is_refused() -> None:
    auth = make({"preferred_username": "ivy", "org": "NTNU"}, allowed_orgs={"UiS"})
    assert await refusal(auth) == (
        "User 'ivy' belongs to organization 'NTNU', which is not taking part in this dshare hub."
    )


@pytest.mark.asyncio
async def test_unmapped_roles_without_defaults_are_refused() -> None:
    auth = make({"preferred_username": "jon", "org": "UiS", "roles": ["guest"]}, default_roles=[])
    assert await refusal(auth) == (
        "User 'jon' of UiS has no dshare role (scientist or admin). "
        "Ask your dshare administrator to grant one."
    )


@pytest.mark.asyncio
async def test_non_string_claim_is_ignored() -> None:
    auth = make({"preferred_username": "kim", "org": {"name": "UiS"}})
    assert (await refusal(auth)).startswith("User 'kim' has no dshare organization")


@pytest.mark.asyncio
async def test_refresh_recomputes_groups_from_fresh_claims() -> None:
    auth = make({"preferred_username": "alice", "org": "UiS", "roles": ["scientist"]})
    auth.enable_auth_state = True
    model = await login(auth)
    assert model is not None
    stored_state = model["auth_state"]

    class StoredUser:
        name = "alice"

        async def get_auth_state(self) -> dict[str, Any]:
            return stored_state

    auth.http_client.userinfo = {"preferred_username": "alice", "org": "UiS", "roles": ["admin"]}
    refreshed = await auth.refresh_user(StoredUser())
    assert refreshed["groups"] == ["org:UiS", "role:admin"]
    auth.http_client.userinfo = {"preferred_username": "alice"}
    assert await auth.refresh_user(StoredUser()) is False


def test_start_up_checks_name_the_conflicting_keys() -> None:
    auth = make(
        {},
        org_claim_key="oauth_user.groups",
        roles_claim_key="oauth_user.groups",
        allowed_orgs={"UiS", "admin"},
        admin_role_names={"admin", "staff"},
        scientist_role_names={"staff"},
    )
    with pytest.raises(SettingsError) as excinfo:
        auth.check_allow_config()
    assert str(excinfo.value) == "\n- ".join(
        [
            "dshare authenticator settings are inconsistent:",
            "DShareOAuthenticator.admin_role_names and DShareOAuthenticator.scientist_role_names"
            " both contain 'staff'; each claim value must map to one dshare role (admins can "
            "already do everything scientists can)",
            "DShareOAuthenticator.allowed_orgs and DShareOAuthenticator.admin_role_names/"
            "scientist_role_names share 'admin' while org_claim_key and roles_claim_key read "
            "the same claim; a value cannot be both an organization and a role",
        ]
    )


def test_shared_claim_needs_allowed_orgs() -> None:
    auth = make({}, org_claim_key="oauth_user.groups", roles_claim_key="oauth_user.groups")
    with pytest.raises(SettingsError) as excinfo:
        auth.check_allow_config()
    assert str(excinfo.value) == (
        "dshare authenticator settings are inconsistent:\n- DShareOAuthenticator.org_claim_key "
        "and DShareOAuthenticator.roles_claim_key are both 'oauth_user.groups': set "
        "DShareOAuthenticator.allowed_orgs so organization names can be told apart from role "
        "names in that claim"
    )


def test_no_way_to_get_a_role_is_refused_at_start_up() -> None:
    auth = make({}, admin_role_names=set(), scientist_role_names=set(), default_roles=[])
    with pytest.raises(SettingsError) as excinfo:
        auth.check_allow_config()
    assert str(excinfo.value) == (
        "dshare authenticator settings are inconsistent:\n- DShareOAuthenticator."
        "admin_role_names, DShareOAuthenticator.scientist_role_names and DShareOAuthenticator."
        "default_roles are all empty, so no user could get a dshare role"
    )


def test_defaults_pass_start_up_checks_and_manage_groups() -> None:
    auth = make({})
    auth.check_allow_config()
    assert auth.manage_groups is True
    assert auth.org_claim_key == "oauth_user.org"
    assert auth.roles_claim_key == "oauth_user.roles"

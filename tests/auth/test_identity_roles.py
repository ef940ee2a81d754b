from __future__ import annotations

import pytest

from dshare_hub.auth import (
    CUSTOM_SCOPES,
    DShareIdentity,
    IdentityError,
    broker_service_name,
    hub_roles,
    identity_from_groups,
    validate_org_name,
)


def test_identity_groups_follow_the_conventions() -> None:
    identity = DShareIdentity("UiS", frozenset({"admin", "scientist"}))
    assert identity.groups() == ["org:UiS", "role:admin", "role:scientist"]
    assert identity.is_admin
    assert not DShareIdentity("UiB", frozenset({"scientist"})).is_admin


def test_identity_round_trips_through_groups_ignoring_foreign_groups() -> None:
    identity = identity_from_groups(["org:UiO", "role:scientist", "physics", "role:other"])
    assert identity == DShareIdentity("UiO", frozenset({"scientist"}))


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        (["role:scientist"], "user is in no 'org:<Org>' group"),
        (
            ["org:UiS", "org:UiO", "role:admin"],
            "user is in several organization groups (UiO, UiS); expected exactly one",
        ),
        (["org:UiS"], "user is in neither 'role:scientist' nor 'role:admin'"),
    ],
)
def test_identity_from_groups_refuses_incomplete_membership(
    groups: list[str], message: str
) -> None:
    with pytest.raises(IdentityError) as excinfo:
        identity_from_groups(groups)
    assert str(excinfo.value) == message


def test_identity_rejects_unknown_roles_and_no_roles() -> None:
    with pytest.raises(IdentityError) as excinfo:
        DShareIdentity("UiS", frozenset({"boss"}))
    assert str(excinfo.value) == "unknown dshare role(s) 'boss'; use 'scientist' or 'admin'"
    with pytest.raises(IdentityError) as excinfo:
        DShareIdentity("UiS", frozenset())
    assert str(excinfo.value) == "a dshare identity needs at least one role"


@pytest.mark.parametrize("org", ["U S", "9lives", "", "x" * 64, "org:UiS"])
def test_bad_org_names_are_refused_with_the_rule(org: str) -> None:
    with pytest.raises(IdentityError) as excinfo:
        validate_org_name(org)
    assert str(excinfo.value) == (
        f"organization {org!r} is not a valid organization name: use 1-63 letters, digits, "
        "'-' or '_', starting with a letter (e.g. 'UiS')"
    )


def test_org_name_must_be_a_string() -> None:
    with pytest.raises(IdentityError) as excinfo:
        validate_org_name(42)
    assert str(excinfo.value) == "organization must be a string, got int"


def test_broker_service_name_is_lower_case() -> None:
    assert broker_service_name("UiS") == "dshare-uis"
    assert broker_service_name("Big_Org-2") == "dshare-big_org-2"


def test_hub_roles_whole_settings() -> None:
    settings = hub_roles(["UiS", "UiO"])
    assert settings == {
        "custom_scopes": {
            "custom:dshare:read": CUSTOM_SCOPES["custom:dshare:read"],
            "custom:dshare:lease": CUSTOM_SCOPES["custom:dshare:lease"],
            "custom:dshare:admin": CUSTOM_SCOPES["custom:dshare:admin"],
        },
        "load_roles": [
            {
                "name": "dshare-scientist",
                "description": "dshare data scientist: browse datasets, lease them, run workflows",
                "scopes": ["custom:dshare:read", "custom:dshare:lease"],
                "groups": ["role:scientist"],
            },
            {
                "name": "dshare-admin",
                "description": (
                    "dshare organization admin: also manage the organization's datasets"
                ),
                "scopes": ["custom:dshare:read", "custom:dshare:lease", "custom:dshare:admin"],
                "groups": ["role:admin"],
            },
            {
                "name": "dshare-member-uis",
                "description": "Members of UiS may call their organization's broker",
                "scopes": ["access:services!service=dshare-uis"],
                "groups": ["org:UiS"],
            },
            {
                "name": "dshare-member-uio",
                "description": "Members of UiO may call their organization's broker",
                "scopes": ["access:services!service=dshare-uio"],
                "groups": ["org:UiO"],
            },
        ],
        "server_token_scopes": [
            "access:servers!server",
            "users:activity!user",
            "read:users:name!user",
            "read:users:groups!user",
            "access:services",
            "custom:dshare:read",
            "custom:dshare:lease",
            "custom:dshare:admin",
        ],
    }
    for spec in settings["custom_scopes"].values():
        assert spec["description"]


def test_hub_roles_returns_fresh_copies() -> None:
    first = hub_roles(["UiS"])
    first["server_token_scopes"].append("admin:users")
    first["custom_scopes"]["custom:dshare:read"]["description"] = "changed"
    second = hub_roles(["UiS"])
    assert "admin:users" not in second["server_token_scopes"]
    assert second["custom_scopes"]["custom:dshare:read"]["description"] != "changed"


def test_hub_roles_are_accepted_by_jupyterhub_validation() -> None:
    from jupyterhub import roles as hub_role_module
    from jupyterhub import scopes as hub_scopes

    settings = hub_roles(["UiS", "UiB"])
    hub_scopes.define_custom_scopes(settings["custom_scopes"])
    try:
        for role in settings["load_roles"]:
            hub_role_module._validate_role_name(role["name"])
            hub_scopes._check_scopes_exist(role["scopes"], who_for=role["name"])
        hub_scopes._check_scopes_exist(settings["server_token_scopes"], who_for="server token")
    finally:
        for name in settings["custom_scopes"]:
            hub_scopes.scope_definitions.pop(name, None)


@pytest.mark.parametrize(
    ("orgs", "message"),
    [
        ([], "hub_roles(orgs): give at least one organization, e.g. ['UiS']"),
        (
            ["UiS", "uis"],
            "hub_roles(orgs): organizations 'UiS' and 'uis' differ only in case; their broker "
            "services would both be named 'dshare-uis'",
        ),
        (
            ["UiS", "U S"],
            "organization 'U S' is not a valid organization name: use 1-63 letters, digits, "
            "'-' or '_', starting with a letter (e.g. 'UiS')",
        ),
    ],
)
def test_hub_roles_refuses_bad_org_lists(orgs: list[str], message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        hub_roles(orgs)
    assert str(excinfo.value) == message

"""JupyterHub roles and scopes that let users reach their organization's broker.

The broker is a JupyterHub service per organization (``dshare-<org lower-case>``). What a
caller may do there is decided by custom scopes, granted through roles bound to the groups
the authenticator maintains, so changing a user's groups changes their permissions without
touching any token.
"""

from __future__ import annotations

from typing import Any

from .identity import ADMIN, ORG_GROUP_PREFIX, ROLE_GROUP_PREFIX, SCIENTIST, validate_org_name

READ_SCOPE = "custom:dshare:read"
LEASE_SCOPE = "custom:dshare:lease"
ADMIN_SCOPE = "custom:dshare:admin"

CUSTOM_SCOPES: dict[str, dict[str, str]] = {
    READ_SCOPE: {
        "description": "Browse datasets, their history, leases and runs through dshare.",
    },
    LEASE_SCOPE: {
        "description": "Lease datasets through dshare and run workflows on leased data.",
    },
    ADMIN_SCOPE: {
        "description": (
            "Register, update and retire the organization's datasets on dshare and "
            "approve or reject leases of them."
        ),
    },
}

# Scopes the single-user server's token asks for. JupyterHub gives the token only the
# subset its owner holds (checked when the server starts and again on every use), so
# asking for all of them here is safe: a scientist's server never gets the admin scope,
# and `access:services` narrows to the one broker the owner's organization role allows.
SERVER_TOKEN_SCOPES: list[str] = [
    # the default `server` role, kept so the server behaves as without dshare
    "access:servers!server",
    "users:activity!user",
    # what the server extension needs to call the broker as its user
    "read:users:name!user",
    "read:users:groups!user",
    "access:services",
    READ_SCOPE,
    LEASE_SCOPE,
    ADMIN_SCOPE,
]


def broker_service_name(org: str) -> str:
    """The JupyterHub service name of `org`'s broker, e.g. ``dshare-uis`` for UiS."""
    return "dshare-" + validate_org_name(org).lower()


def hub_roles(orgs: list[str]) -> dict[str, Any]:
    """JupyterHub settings for dshare's permissions, for jupyterhub_config.py::

        settings = hub_roles(["UiS", "UiO", "UiB"])
        c.JupyterHub.custom_scopes = settings["custom_scopes"]
        c.JupyterHub.load_roles = settings["load_roles"]
        c.Spawner.server_token_scopes = settings["server_token_scopes"]

    Every organization's broker service must also be declared in c.JupyterHub.services,
    since JupyterHub refuses roles that name undefined services; the roles here name only
    groups and filtered scopes, so they load before or without the services.
    """
    if not orgs:
        raise ValueError("hub_roles(orgs): give at least one organization, e.g. ['UiS']")
    seen: dict[str, str] = {}
    for org in orgs:
        validate_org_name(org)
        # service names are lower-cased, so 'UiS' and 'uis' would share one broker
        clash = seen.get(org.lower())
        if clash is not None:
            raise ValueError(
                f"hub_roles(orgs): organizations {clash!r} and {org!r} differ only in case; "
                "their broker services would both be named "
                f"{broker_service_name(org)!r}"
            )
        seen[org.lower()] = org

    load_roles: list[dict[str, Any]] = [
        {
            "name": "dshare-scientist",
            "description": "dshare data scientist: browse datasets, lease them, run workflows",
            "scopes": [READ_SCOPE, LEASE_SCOPE],
            "groups": [ROLE_GROUP_PREFIX + SCIENTIST],
        },
        {
            "name": "dshare-admin",
            "description": "dshare organization admin: also manage the organization's datasets",
            "scopes": [READ_SCOPE, LEASE_SCOPE, ADMIN_SCOPE],
            "groups": [ROLE_GROUP_PREFIX + ADMIN],
        },
    ]
    for org in orgs:
        service = broker_service_name(org)
        load_roles.append(
            {
                "name": f"dshare-member-{org.lower()}",
                "description": f"Members of {org} may call their organization's broker",
                "scopes": [f"access:services!service={service}"],
                "groups": [ORG_GROUP_PREFIX + org],
            }
        )
    return {
        "custom_scopes": {name: dict(spec) for name, spec in CUSTOM_SCOPES.items()},
        "load_roles": load_roles,
        "server_token_scopes": list(SERVER_TOKEN_SCOPES),
    }

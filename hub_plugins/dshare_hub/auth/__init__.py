"""Who a dshare user is: an organization and roles, carried as JupyterHub groups.

`identity` holds the naming conventions shared with the broker and the spawners,
`roles` the JupyterHub roles and scopes, `base` the authenticator mixin, `oauth` and
`local` the two authenticators, `directory` the embedded-mode user file, `cli` the
`dshare users` commands.
"""

from .identity import (
    ADMIN,
    ORG_GROUP_PREFIX,
    ROLE_GROUP_PREFIX,
    ROLES,
    SCIENTIST,
    DShareIdentity,
    IdentityError,
    identity_from_groups,
    validate_org_name,
)
from .roles import CUSTOM_SCOPES, broker_service_name, hub_roles

__all__ = [
    "ADMIN",
    "CUSTOM_SCOPES",
    "ORG_GROUP_PREFIX",
    "ROLES",
    "ROLE_GROUP_PREFIX",
    "SCIENTIST",
    "DShareIdentity",
    "IdentityError",
    "broker_service_name",
    "hub_roles",
    "identity_from_groups",
    "validate_org_name",
]

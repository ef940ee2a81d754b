"""`DShareOAuthenticator`: organization and roles from an OAuth2 / OIDC provider's claims."""

from __future__ import annotations

from collections.abc import Callable
from inspect import isawaitable
from typing import Any

from jupyterhub.traitlets import Callable as CallableTrait
from oauthenticator.generic import GenericOAuthenticator
from traitlets import Set, Unicode, Union, default

from .base import DShareAuthenticatorMixin
from .identity import ADMIN, SCIENTIST


class DShareOAuthenticator(DShareAuthenticatorMixin, GenericOAuthenticator):
    """GenericOAuthenticator whose users get a dshare organization and roles from claims.

    Override points (besides the mixin's): ``claim_values(auth_state, key)`` reads a
    claim given a dotted path or a callable.

    Example for a Keycloak realm putting ``org`` and ``roles`` in the userinfo::

        c.JupyterHub.authenticator_class = "dshare-oauth"
        c.DShareOAuthenticator.org_claim_key = "oauth_user.org"
        c.DShareOAuthenticator.roles_claim_key = "oauth_user.roles"
        c.DShareOAuthenticator.admin_role_names = {"dshare-admin"}
        c.DShareOAuthenticator.scientist_role_names = {"dshare-user"}
        c.DShareOAuthenticator.allowed_orgs = {"UiS", "UiO", "UiB"}
    """

    org_claim_key = Union(
        [Unicode(), CallableTrait()],
        config=True,
        help="""Where the user's organization is in the auth_state: a dotted path such as
        "oauth_user.org" (auth_state holds the userinfo under `user_auth_state_key`,
        "oauth_user" by default) or a callable taking the auth_state and returning the
        organization (may be async).

        The claim may be a string or a list. From a list, the one value in
        `allowed_orgs` is taken, so one "groups" claim can carry both organization and
        roles; a user matching several organizations is refused.
        """,
    )

    @default("org_claim_key")
    def _default_org_claim_key(self) -> str:
        return f"{self.user_auth_state_key}.org"

    roles_claim_key = Union(
        [Unicode(), CallableTrait()],
        config=True,
        help="""Where the user's role names are in the auth_state: a dotted path such as
        "oauth_user.roles" or a callable taking the auth_state (may be async). Values are
        mapped to dshare roles through `admin_role_names` and `scientist_role_names`;
        other values are ignored.""",
    )

    @default("roles_claim_key")
    def _default_roles_claim_key(self) -> str:
        return f"{self.user_auth_state_key}.roles"

    admin_role_names = Set(
        Unicode(),
        default_value={"admin"},
        config=True,
        help="Role claim values that make a user a dshare admin of their organization.",
    )

    scientist_role_names = Set(
        Unicode(),
        default_value={"scientist"},
        config=True,
        help="Role claim values that make a user a dshare data scientist.",
    )

    def no_org_message(self, username: str) -> str:
        where = self.org_claim_key if isinstance(self.org_claim_key, str) else "org_claim_key"
        return (
            f"User {username!r} has no dshare organization: the identity provider sent no "
            f"value at {where!r}. Ask its administrator to add your organization, or the "
            "hub administrator to fix DShareOAuthenticator.org_claim_key."
        )

    async def claim_values(self, auth_state: dict[str, Any], key: str | Callable) -> list[str]:
        """The claim at `key` as a list of strings (empty when absent)."""
        if callable(key):
            value: Any = key(auth_state)
            if isawaitable(value):
                value = await value
        else:
            value = auth_state
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if isinstance(value, list | tuple | set | frozenset):
            return [v for v in value if isinstance(v, str)]
        self.log.warning("Ignoring claim at %r: expected a string or list", key)
        return []

    async def org_for(self, auth_model: dict[str, Any]) -> str | None:
        values = await self.claim_values(auth_model.get("auth_state") or {}, self.org_claim_key)
        if self.allowed_orgs and (len(values) > 1 or self._claims_shared()):
            # pick the organization out of a claim that also carries other values
            values = [v for v in values if v in self.allowed_orgs]
        unique = sorted(set(values))
        if len(unique) > 1:
            username = self.normalize_username(auth_model["name"])
            raise self._refuse(
                username,
                f"User {username!r} belongs to several organizations ({', '.join(unique)}); "
                "dshare needs exactly one. Ask your identity provider's administrator.",
            )
        return unique[0] if unique else None

    async def roles_for(self, auth_model: dict[str, Any]) -> list[str]:
        values = set(
            await self.claim_values(auth_model.get("auth_state") or {}, self.roles_claim_key)
        )
        roles = []
        if values & self.admin_role_names:
            roles.append(ADMIN)
        if values & self.scientist_role_names:
            roles.append(SCIENTIST)
        return roles

    async def get_user_groups(self, auth_state: dict[str, Any]) -> set[str]:
        # The mixin writes the groups after update_auth_model; this only keeps
        # oauthenticator's own group lookup from complaining about a missing claim.
        return set()

    def _claims_shared(self) -> bool:
        return isinstance(self.org_claim_key, str) and self.org_claim_key == self.roles_claim_key

    def dshare_settings_problems(self) -> list[str]:
        problems = super().dshare_settings_problems()
        cls = type(self).__name__
        both = sorted(self.admin_role_names & self.scientist_role_names)
        if both:
            problems.append(
                f"{cls}.admin_role_names and {cls}.scientist_role_names both contain "
                f"{', '.join(map(repr, both))}; each claim value must map to one dshare role "
                "(admins can already do everything scientists can)"
            )
        if not self.admin_role_names and not self.scientist_role_names and not self.default_roles:
            problems.append(
                f"{cls}.admin_role_names, {cls}.scientist_role_names and {cls}.default_roles "
                "are all empty, so no user could get a dshare role"
            )
        if self._claims_shared():
            role_names = self.admin_role_names | self.scientist_role_names
            if not self.allowed_orgs:
                problems.append(
                    f"{cls}.org_claim_key and {cls}.roles_claim_key are both "
                    f"{self.org_claim_key!r}: set {cls}.allowed_orgs so organization names "
                    "can be told apart from role names in that claim"
                )
            clash = sorted(self.allowed_orgs & role_names)
            if clash:
                problems.append(
                    f"{cls}.allowed_orgs and {cls}.admin_role_names/scientist_role_names share "
                    f"{', '.join(map(repr, clash))} while org_claim_key and roles_claim_key "
                    "read the same claim; a value cannot be both an organization and a role"
                )
        return problems

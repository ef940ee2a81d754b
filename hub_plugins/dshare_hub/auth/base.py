"""`DShareAuthenticatorMixin`: give every user of any JupyterHub Authenticator an
organization and dshare roles, written to JupyterHub groups at each login."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jupyterhub.auth import Authenticator
from jupyterhub.utils import maybe_future
from tornado import web
from traitlets import Dict, List, Set, Unicode, default

from .identity import ADMIN, ROLES, DShareIdentity, org_name_problem


class SettingsError(ValueError):
    """Authenticator settings that do not fit together; raised at hub start-up."""


class DShareAuthenticatorMixin(Authenticator):
    """Mix in before any JupyterHub Authenticator to give users an organization and roles.

    ``class MyAuthenticator(DShareAuthenticatorMixin, SomeAuthenticator)``: after the
    wrapped authenticator has said who the user is, the mixin decides their
    organization and dshare roles (``scientist``, ``admin`` = organization admin), refuses
    users without an organization with a message that says why, and returns the
    JupyterHub groups ``org:<Org>`` and ``role:<role>`` in the auth model
    (``manage_groups`` is on). Those groups carry the broker's custom scopes through the
    roles of `dshare_hub.auth.roles.hub_roles`. Having an accepted organization is what
    admits a user, in addition to the wrapped authenticator's own allow settings.

    Override points:

    - ``org_for(auth_model) -> str | None`` (may be async): the user's organization.
      Default: ``user_orgs[name]``.
    - ``roles_for(auth_model) -> Iterable[str]`` (may be async): dshare roles named in
      the model. Default: ``admin`` for names in ``org_admin_users``. When it names none,
      ``default_roles`` apply.
    - ``groups_for(auth_model, identity) -> list[str]``: the JupyterHub groups to sync;
      extend to keep extra groups (JupyterHub removes the user from any group not listed).
    - ``no_org_message(username) -> str``: what a user without an organization is told.
    - ``dshare_settings_problems() -> list[str]``: settings checks run together at
      start-up; extend it (call super) to check an authenticator's own settings.
    """

    allowed_orgs = Set(
        Unicode(),
        config=True,
        help="""Organizations whose users may log in, e.g. {"UiS", "UiO", "UiB"}.

        Empty (the default) admits every organization. A user whose organization is not
        listed is refused with a message naming it.
        """,
    ).tag(allow_config=True)

    default_roles = List(
        Unicode(),
        default_value=["scientist"],
        config=True,
        help="""dshare roles given to a user with an organization whose login names no
        dshare role. Set to [] to refuse such users instead.""",
    )

    user_orgs = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        config=True,
        help="""Organization per user name, for authenticators that know nothing about
        organizations (e.g. {"alice": "UiS"}). Used by the default `org_for`;
        DShareOAuthenticator and DShareLocalAuthenticator read organizations from claims
        and the user directory instead.""",
    )

    org_admin_users = Set(
        Unicode(),
        config=True,
        help="""User names that are dshare admins of their organization (not JupyterHub
        admins). Used by the default `roles_for`.""",
    )

    @default("manage_groups")
    def _default_manage_groups(self) -> bool:
        return True

    @default("any_allow_config")
    def _default_any_allow_config(self) -> bool:
        # organization membership is itself the allow rule, so JupyterHub's
        # "nobody can log in" warning does not apply
        return True

    # -- override points ---------------------------------------------------------------

    def org_for(self, auth_model: dict[str, Any]) -> Any:
        return self.user_orgs.get(auth_model["name"])

    def roles_for(self, auth_model: dict[str, Any]) -> Any:
        return [ADMIN] if auth_model["name"] in self.org_admin_users else []

    def groups_for(self, auth_model: dict[str, Any], identity: DShareIdentity) -> list[str]:
        return identity.groups()

    def no_org_message(self, username: str) -> str:
        return (
            f"User {username!r} has no dshare organization, so this hub cannot let them in. "
            "Ask your dshare administrator to assign one."
        )

    def dshare_settings_problems(self) -> list[str]:
        cls = type(self).__name__
        problems = []
        if not self.manage_groups:
            problems.append(
                f"{cls}.manage_groups is False: dshare keeps organizations and roles in "
                "JupyterHub groups, so it must be True (the default)"
            )
        by_lower: dict[str, str] = {}
        for org in sorted(self.allowed_orgs):
            problem = org_name_problem(org)
            if problem is not None:
                problems.append(f"{cls}.allowed_orgs: {problem}")
            elif org.lower() in by_lower:
                problems.append(
                    f"{cls}.allowed_orgs: {by_lower[org.lower()]!r} and {org!r} differ only in "
                    "case, but their broker services would share one name"
                )
            by_lower.setdefault(org.lower(), org)
        for role in self.default_roles:
            if role not in ROLES:
                problems.append(
                    f"{cls}.default_roles: unknown role {role!r}; use "
                    f"{' or '.join(map(repr, ROLES))}"
                )
        for name, org in sorted(self.user_orgs.items()):
            problem = org_name_problem(org)
            if problem is not None:
                problems.append(f"{cls}.user_orgs[{name!r}]: {problem}")
            elif self.allowed_orgs and org not in self.allowed_orgs:
                problems.append(
                    f"{cls}.user_orgs[{name!r}]: organization {org!r} is not in "
                    f"{cls}.allowed_orgs, so this user could never log in"
                )
        return problems

    # -- JupyterHub hooks ------------------------------------------------------------

    def check_allow_config(self) -> None:
        """Called by JupyterHub (5.0 and later) once at start-up: refuse to start on
        settings that do not fit together, naming every offending key."""
        problems = self.dshare_settings_problems()
        if problems:
            raise SettingsError(
                "dshare authenticator settings are inconsistent:\n- " + "\n- ".join(problems)
            )
        super().check_allow_config()

    async def authenticate(self, handler: Any, data: Any = None) -> dict[str, Any] | None:
        model = await maybe_future(super().authenticate(handler, data))
        if model is None:
            return None
        if not isinstance(model, dict):
            model = {"name": model}
        return await self.apply_dshare_identity(model)

    async def refresh_user(self, user: Any, handler: Any = None, **kwargs: Any) -> Any:
        refreshed = await maybe_future(super().refresh_user(user, handler, **kwargs))
        if not isinstance(refreshed, dict):
            return refreshed
        refreshed.setdefault("name", user.name)
        try:
            return await self.apply_dshare_identity(refreshed)
        except web.HTTPError as exc:
            # a user who lost their organization logs in again and sees the reason there
            self.log.warning("Refresh of %s refused: %s", user.name, exc.log_message)
            return False

    async def check_allowed(self, username: str, auth_model: dict[str, Any] | None) -> bool:
        if auth_model is not None and auth_model.get("dshare_org"):
            return True
        return bool(await maybe_future(super().check_allowed(username, auth_model)))

    # -- the identity itself ------------------------------------------------------------

    async def apply_dshare_identity(self, auth_model: dict[str, Any]) -> dict[str, Any]:
        """Add `groups` (and `dshare_org`) to `auth_model`, or refuse with HTTP 403."""
        # override points look names up, so they get the name JupyterHub will use
        username = auth_model["name"] = self.normalize_username(auth_model["name"])
        org = await maybe_future(self.org_for(auth_model))
        if not org:
            raise self._refuse(username, self.no_org_message(username))
        problem = org_name_problem(org)
        if problem is not None:
            raise self._refuse(
                username,
                f"User {username!r} has an unusable organization: {problem}. "
                "Ask your dshare administrator to correct it.",
            )
        if self.allowed_orgs and org not in self.allowed_orgs:
            raise self._refuse(
                username,
                f"User {username!r} belongs to organization {org!r}, which is not taking "
                "part in this dshare hub.",
            )
        roles = _known_roles(await maybe_future(self.roles_for(auth_model)))
        if not roles:
            roles = _known_roles(self.default_roles)
        if not roles:
            raise self._refuse(
                username,
                f"User {username!r} of {org} has no dshare role (scientist or admin). "
                "Ask your dshare administrator to grant one.",
            )
        identity = DShareIdentity(org, frozenset(roles))
        auth_model["groups"] = sorted(self.groups_for(auth_model, identity))
        # read by check_allowed: the organization is what admits the user
        auth_model["dshare_org"] = org
        return auth_model

    def _refuse(self, username: str, message: str) -> web.HTTPError:
        self.log.warning("Refusing login of %s: %s", username, message)
        error = web.HTTPError(403, message)
        # JupyterHub's error page and login form show this text to the user
        error.jupyterhub_message = message  # type: ignore[attr-defined]
        return error


def _known_roles(roles: Iterable[str] | None) -> set[str]:
    return {r for r in (roles or []) if r in ROLES}

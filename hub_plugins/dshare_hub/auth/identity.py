"""The identity conventions every hub-side part agrees on.

A user is in exactly one JupyterHub group ``org:<Org>`` and in one or more of
``role:scientist`` and ``role:admin``. The authenticator writes these groups at login;
the broker and the spawners read them back with `identity_from_groups`, so the hub's
group table is the single source of truth for who belongs where.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

ORG_GROUP_PREFIX = "org:"
ROLE_GROUP_PREFIX = "role:"
SCIENTIST = "scientist"
ADMIN = "admin"
ROLES: tuple[str, ...] = (SCIENTIST, ADMIN)

# Organization names end up in group names, service names (lower-cased) and Kubernetes
# labels, so they are kept to a conservative alphabet and the DNS label length.
_ORG_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")


class IdentityError(ValueError):
    """A name or group set that does not follow the identity conventions."""


def org_name_problem(org: object) -> str | None:
    """Why `org` is not a usable organization name, or None when it is."""
    if not isinstance(org, str):
        return f"must be a string, got {type(org).__name__}"
    if not _ORG_RE.match(org):
        return (
            f"{org!r} is not a valid organization name: use 1-63 letters, digits, '-' or '_', "
            "starting with a letter (e.g. 'UiS')"
        )
    return None


def validate_org_name(org: object) -> str:
    """Return `org` unchanged, or raise `IdentityError` saying what is wrong with it."""
    problem = org_name_problem(org)
    if problem is not None:
        raise IdentityError(f"organization {problem}")
    assert isinstance(org, str)
    return org


@dataclass(frozen=True)
class DShareIdentity:
    """A user's organization and dshare roles."""

    org: str
    roles: frozenset[str]

    def __post_init__(self) -> None:
        validate_org_name(self.org)
        unknown = sorted(set(self.roles) - set(ROLES))
        if unknown:
            raise IdentityError(
                f"unknown dshare role(s) {', '.join(map(repr, unknown))}; "
                f"use {' or '.join(map(repr, ROLES))}"
            )
        if not self.roles:
            raise IdentityError("a dshare identity needs at least one role")

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles

    def groups(self) -> list[str]:
        """The JupyterHub groups that carry this identity, sorted."""
        return sorted([ORG_GROUP_PREFIX + self.org] + [ROLE_GROUP_PREFIX + r for r in self.roles])


def identity_from_groups(groups: Iterable[str]) -> DShareIdentity:
    """Read an identity back from a user's JupyterHub group names.

    Raises `IdentityError` when the user is in no `org:` group or in several, or has no
    dshare role: such a user must not reach a broker.
    """
    group_list = list(groups)
    orgs = sorted(g[len(ORG_GROUP_PREFIX) :] for g in group_list if g.startswith(ORG_GROUP_PREFIX))
    roles = frozenset(
        g[len(ROLE_GROUP_PREFIX) :]
        for g in group_list
        if g.startswith(ROLE_GROUP_PREFIX) and g[len(ROLE_GROUP_PREFIX) :] in ROLES
    )
    if not orgs:
        raise IdentityError("user is in no 'org:<Org>' group")
    if len(orgs) > 1:
        raise IdentityError(
            f"user is in several organization groups ({', '.join(orgs)}); expected exactly one"
        )
    if not roles:
        raise IdentityError("user is in neither 'role:scientist' nor 'role:admin'")
    return DShareIdentity(orgs[0], roles)

"""Identity from JupyterHub groups, and how refusals reach the user's spawn page."""

from __future__ import annotations

import jupyterhub
import pytest
from jupyterhub.utils import format_exception
from tornado import web

from dshare_hub.spawner.base import DShareSpawnError, Identity, identity_from_groups


def test_org_and_roles_from_groups() -> None:
    identity = identity_from_groups("ann", ["org:UiS", "role:scientist", "role:admin", "other"])
    assert identity == Identity(user="ann", org="UiS", roles=("admin", "scientist"))
    assert identity.org_lower == "uis"


@pytest.mark.parametrize(
    ("groups", "reason", "message"),
    [
        (
            ["role:scientist"],
            "dshare_no_org",
            "Your account (ann) belongs to no organization, so dshare cannot start a server "
            "for it. Ask your organization's admin to add you to its 'org:<Org>' group.",
        ),
        (
            ["org:UiS", "org:UiO", "role:scientist"],
            "dshare_many_orgs",
            "Your account (ann) is in several organizations (UiO, UiS); dshare needs exactly "
            "one. Ask an admin to remove all but one 'org:' group.",
        ),
        (
            ["org:UiS"],
            "dshare_no_role",
            "Your account (ann) has no dshare role. Ask your organization's admin to add you "
            "to 'role:scientist' (or 'role:admin').",
        ),
    ],
)
def test_refusals_carry_a_message_for_the_spawn_page(
    groups: list[str], reason: str, message: str
) -> None:
    with pytest.raises(DShareSpawnError) as err:
        identity_from_groups("ann", groups)
    exc = err.value
    assert exc.jupyterhub_message == message
    assert exc.status_code == 403
    # What JupyterHub's spawn page and progress stream show (both lines, 5.5 and 6.x).
    assert format_exception(exc, only_jupyterhub=True) == (message, None)
    assert isinstance(exc, web.HTTPError)
    if int(jupyterhub.__version__.split(".")[0]) >= 6:
        from jupyterhub.spawner import SpawnException

        assert isinstance(exc, SpawnException)
        assert exc.reason == reason  # the label of JupyterHub's spawn-failure metric


def test_percent_in_a_name_does_not_break_the_error() -> None:
    with pytest.raises(DShareSpawnError) as err:
        identity_from_groups("100%ann", [])
    assert "100%ann" in err.value.jupyterhub_message
    assert "100%ann" in str(err.value)

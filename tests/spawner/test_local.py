"""The local spawners' dshare part (on DShareSimpleLocalSpawner, which needs no OS users):
skeletons from the broker, environment, root handling, refusals. The system spawner's own
behaviour (OS users, writing as the user) is in test_system_local.py."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import pytest

from dshare_hub.spawner import local
from dshare_hub.spawner.base import DShareSpawnError

from .conftest import TOKEN, BrokerDouble, make_hub, make_user

pytestmark = pytest.mark.asyncio


def _spawner(broker: BrokerDouble, tmp_path: Path, **kw) -> local.DShareSimpleLocalSpawner:
    return local.DShareSimpleLocalSpawner(
        user=kw.pop("user", make_user()),
        hub=make_hub(),
        api_token=kw.pop("api_token", TOKEN),
        data_dir=str(tmp_path / "users"),
        hub_url=broker.url,
        **kw,
    )


async def test_default_local_spawner_isolates_users() -> None:
    assert local.DShareLocalSpawner is local.DShareSystemLocalSpawner
    assert "For evaluation" in local.DShareSimpleLocalSpawner.class_traits()["data_dir"].help


async def test_simple_spawner_warns_at_every_spawn(
    seeded: BrokerDouble, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spawner = _spawner(seeded, tmp_path)
    with mock.patch.object(local.SimpleLocalProcessSpawner, "start", mock.AsyncMock()):
        for _ in range(2):
            await spawner.start()
    warnings = [r.getMessage() for r in caplog.records if "not isolated" in r.getMessage()]
    assert len(warnings) == 2
    assert warnings[0].startswith("DShareSimpleLocalSpawner runs every user's server as ")
    assert warnings[0].endswith("users are not isolated; for evaluation only")


async def test_prepare_writes_skeletons_of_active_leases(
    seeded: BrokerDouble, tmp_path: Path
) -> None:
    spawner = _spawner(seeded, tmp_path)
    await spawner.dshare_prepare()
    home = tmp_path / "users/ann"
    assert spawner.home_dir == str(home)
    found = sorted(str(p.relative_to(home / "datasets")) for p in (home / "datasets").rglob("*"))
    assert found == [
        ".dshare-skeletons.json",
        "Census 2020",
        "Census 2020/a",
        "Census 2020/a/b.csv",
        "Census 2020/c",
        "Weather",
        "Weather/2020",
        "Weather/2020/jan.csv",
    ]
    # The expired lease's dataset is not even looked up.
    assert seeded.calls == [
        "GET /services/dshare-uis/api/v1/leases?scope=mine",
        "GET /services/dshare-uis/api/v1/datasets/weather",
        "GET /services/dshare-uis/api/v1/datasets/census",
        # Weather is interactive: its broker is asked for a view (none here: a skeleton).
        "POST /services/dshare-uis/api/v1/views",
    ]


async def test_released_datasets_disappear_at_next_spawn(
    seeded: BrokerDouble, tmp_path: Path
) -> None:
    spawner = _spawner(seeded, tmp_path)
    await spawner.dshare_prepare()
    seeded.leases = seeded.leases[:1]
    await spawner.dshare_prepare()
    datasets = tmp_path / "users/ann/datasets"
    assert sorted(p.name for p in datasets.iterdir()) == [".dshare-skeletons.json", "Weather"]


async def test_an_interactive_view_is_a_link_and_its_end_brings_the_skeleton_back(
    seeded: BrokerDouble, tmp_path: Path
) -> None:
    spawner = _spawner(seeded, tmp_path)
    await spawner.dshare_prepare()  # no view yet: Weather is a skeleton
    view = tmp_path / "views" / "uio" / ("v-" + "1" * 32)
    view.mkdir(parents=True)
    (view / "jan.csv").write_text("t,12\n")
    seeded.views = [
        {"lease_id": "L1", "asset_id": "weather", "dir": "Weather", "path": str(view)},
        # Unsafe names from a broker are never written.
        {"lease_id": "L9", "asset_id": "x", "dir": "../escape", "path": str(view)},
        {"lease_id": "L8", "asset_id": "y", "dir": ".hidden", "path": str(view)},
    ]
    await spawner.dshare_prepare()
    datasets = tmp_path / "users/ann/datasets"
    assert os.readlink(datasets / "Weather") == str(view)
    assert (datasets / "Weather" / "jan.csv").read_text() == "t,12\n"
    assert (datasets / "Census 2020" / "a" / "b.csv").stat().st_size == 0  # still a skeleton
    assert sorted(p.name for p in datasets.iterdir()) == [
        ".dshare-skeletons.json",
        ".dshare-views.json",
        "Census 2020",
        "Weather",
    ]
    assert not (tmp_path / "users/ann/escape").exists()
    # The view is gone (the lease ended, or its owner's broker cannot show it): the link
    # goes and the skeleton comes back at the next spawn.
    seeded.views = []
    await spawner.dshare_prepare()
    assert not (datasets / "Weather").is_symlink()
    assert (datasets / "Weather" / "2020" / "jan.csv").stat().st_size == 0
    assert not (datasets / ".dshare-views.json").exists()


async def test_a_link_the_user_made_is_never_replaced(seeded: BrokerDouble, tmp_path: Path) -> None:
    spawner = _spawner(seeded, tmp_path)
    datasets = tmp_path / "users/ann/datasets"
    datasets.mkdir(parents=True)
    (datasets / "Weather").symlink_to(tmp_path)
    seeded.views = [{"lease_id": "L1", "dir": "Weather", "path": str(tmp_path / "view")}]
    await spawner.dshare_prepare()
    assert os.readlink(datasets / "Weather") == str(tmp_path)


async def test_env_has_broker_url_and_org_and_nothing_secret(
    seeded: BrokerDouble, tmp_path: Path
) -> None:
    spawner = _spawner(seeded, tmp_path)
    await spawner.dshare_prepare()
    env = spawner.get_env()
    assert env["DSHARE_BROKER_URL"] == seeded.url + "services/dshare-uis/"
    assert env["DSHARE_ORG"] == "UiS"
    dshare_vars = {k for k in env if k.startswith("DSHARE")}
    assert dshare_vars == {"DSHARE_BROKER_URL", "DSHARE_ORG"}
    # The hub's own server token is JupyterHub's business; dshare adds no other.
    assert sorted(k for k, v in env.items() if v == TOKEN) == [
        "JPY_API_TOKEN",
        "JUPYTERHUB_API_TOKEN",
    ]


async def test_broker_url_template_fields(seeded: BrokerDouble, tmp_path: Path) -> None:
    spawner = _spawner(
        seeded, tmp_path, broker_url_template="https://{org_lower}.example/{org}/{username}"
    )
    assert spawner.dshare_broker_url(spawner.dshare_identity()) == "https://uis.example/UiS/ann/"


@pytest.mark.parametrize(("euid", "expected"), [(0, True), (1000, False)])
async def test_allow_root_only_when_running_as_root(
    seeded: BrokerDouble, tmp_path: Path, euid: int, expected: bool
) -> None:
    spawner = _spawner(seeded, tmp_path)
    with mock.patch.object(os, "geteuid", return_value=euid):
        args = spawner.get_args()
    assert ("--ServerApp.allow_root=True" in args) is expected


async def test_system_spawner_root_check_uses_the_users_uid() -> None:
    import pwd

    spawner = local.DShareSystemLocalSpawner(
        user=make_user("root"),
        hub=make_hub(),
        system_username_template="{username}",
        create_system_users=False,
    )
    assert spawner.dshare_home() == Path(pwd.getpwnam("root").pw_dir)
    assert spawner.dshare_runs_as_root() is True
    assert "--ServerApp.allow_root=True" in spawner.get_args()


async def test_user_without_org_is_refused_before_any_broker_call(
    seeded: BrokerDouble, tmp_path: Path
) -> None:
    spawner = _spawner(seeded, tmp_path, user=make_user(groups=("role:scientist",)))
    with pytest.raises(DShareSpawnError) as err:
        await spawner.start()
    assert err.value.jupyterhub_message.startswith("Your account (ann) belongs to no organization")
    assert seeded.calls == []
    assert not (tmp_path / "users").exists()


async def test_broker_refusal_is_shown_to_the_user(seeded: BrokerDouble, tmp_path: Path) -> None:
    seeded.fail["leases"] = (
        403,
        {"code": "FORBIDDEN", "message": "missing scope custom:dshare:read"},
    )
    spawner = _spawner(seeded, tmp_path)
    with pytest.raises(DShareSpawnError) as err:
        await spawner.dshare_prepare()
    assert err.value.jupyterhub_message == (
        "the UiS dataset broker refused your server's request (HTTP 403, FORBIDDEN: missing "
        "scope custom:dshare:read). Ask your organization's admin to check your dshare roles."
    )
    assert err.value.status_code == 403


async def test_bad_token_is_refused(seeded: BrokerDouble, tmp_path: Path) -> None:
    spawner = _spawner(seeded, tmp_path, api_token="wrong")
    with pytest.raises(DShareSpawnError) as err:
        await spawner.dshare_prepare()
    assert "HTTP 401, UNAUTHORIZED: no or bad token" in err.value.jupyterhub_message
    assert "wrong" not in err.value.jupyterhub_message


async def test_broker_server_error_and_non_json(seeded: BrokerDouble, tmp_path: Path) -> None:
    seeded.fail["dataset"] = (500, "oops")
    spawner = _spawner(seeded, tmp_path)
    with pytest.raises(DShareSpawnError) as err:
        await spawner.dshare_prepare()
    assert err.value.jupyterhub_message == (
        "the UiS dataset broker answered HTTP 500 to GET datasets/weather. Try again; if it "
        "keeps failing, tell your administrator."
    )
    assert err.value.status_code == 502
    seeded.fail = {"leases": (200, "not json")}
    with pytest.raises(DShareSpawnError) as err:
        await spawner.dshare_prepare()
    assert err.value.jupyterhub_message == (
        "the UiS dataset broker sent a reply that is not JSON to GET leases; tell your "
        "administrator."
    )


async def test_unreachable_broker(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = BrokerDouble(url=f"http://127.0.0.1:{port}/")
    spawner = _spawner(dead, tmp_path, broker_request_timeout=5.0)
    with pytest.raises(DShareSpawnError) as err:
        await spawner.dshare_prepare()
    message = err.value.jupyterhub_message
    assert message.startswith("dshare could not reach the UiS dataset broker (")
    assert message.endswith("Try again in a minute; if it keeps failing, tell your administrator.")
    assert err.value.status_code == 503


async def test_magic_is_loaded_in_every_kernel_until_the_user_removes_it(
    seeded: BrokerDouble, tmp_path: Path
) -> None:
    spawner = _spawner(seeded, tmp_path)
    await spawner.dshare_prepare()
    startup = tmp_path / "users/ann/.ipython/profile_default/startup/00-dshare.py"
    assert 'load_extension("dshare_server")' in startup.read_text()
    startup.unlink()  # the user opts out
    await spawner.dshare_prepare()
    assert not startup.exists()


async def test_magic_autoload_can_be_turned_off(seeded: BrokerDouble, tmp_path: Path) -> None:
    spawner = _spawner(seeded, tmp_path)
    spawner.autoload_magic = False
    await spawner.dshare_prepare()
    assert not (tmp_path / "users/ann/.ipython").exists()

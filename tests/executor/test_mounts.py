"""Lease mounts are accepted only as the owner's broker made them for this run."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dshare_hub.broker.materialize import LocalMaterializer
from dshare_hub.executor.mounts import OrgPlaces, open_mount
from dshare_hub.webapi import ApiError

LATER = (datetime.now(UTC) + timedelta(hours=1)).isoformat()


def materialize(broker_dir: Path, data: Path, run_id: str, lease_id: str, user: str) -> dict:
    m = LocalMaterializer(broker_dir)
    return asyncio.run(
        m.materialize(
            asset={"id": "ds-1", "storage_type": "local"},
            details={"path": str(data)},
            lease={"id": lease_id, "expires_at": LATER},
            run_id=run_id,
            user=user,
        )
    )


@pytest.fixture
def setup(world: Path):
    data = world / "data"
    data.mkdir()
    (data / "x.txt").write_text("x\n")
    broker = world / "uio-broker"
    broker.mkdir(mode=0o700)
    made = materialize(broker, data, "run-1", "lease-1", "sam")
    roots = {"UiO": OrgPlaces(str(broker / "mounts"), (str(data),), 60301)}
    mount = {
        "org": "UiO",
        "lease_id": "lease-1",
        "handle": made["handle"],
        "expires_at": LATER,
        "data_gid": 4242,
    }
    return data, broker, roots, mount


def refused(mount: dict, roots: dict, **kw) -> str:
    args = {"run_id": "run-1", "user": "sam", "orgs": roots, **kw}
    with pytest.raises(ApiError) as info:
        open_mount("claim-1", mount, **args)
    assert info.value.code in ("MOUNT_REFUSED", "LEASE_EXPIRED")
    assert "/" not in info.value.message.replace("lease-1", ""), "no path in messages"
    return info.value.message


def test_the_owners_handle_for_this_run_is_opened_as_a_directory(setup) -> None:
    data, _broker, roots, mount = setup
    opened = open_mount("claim-1", mount, run_id="run-1", user="sam", orgs=roots)
    try:
        assert os.path.samestat(os.stat(opened.fd), os.stat(data))
        assert (opened.lease_id, opened.data_gid, opened.org) == ("lease-1", 60301, "UiO")
    finally:
        opened.close()


def test_a_handle_outside_the_orgs_root_is_refused(setup, world: Path) -> None:
    data, _broker, roots, mount = setup
    fake = world / "elsewhere" / "run-1"
    fake.mkdir(parents=True)
    (fake / "lease-1").symlink_to(data)
    (fake / "lease-1.json").write_text(
        json.dumps({"run_id": "run-1", "lease_id": "lease-1", "user": "sam"})
    )
    message = refused({**mount, "handle": str(fake / "lease-1")}, roots)
    assert "lease lease-1" in message and "handle" in message
    message = refused({**mount, "handle": mount["handle"] + "/../../run-1/lease-1"}, roots)
    assert "handle" in message


def test_a_record_naming_another_run_or_user_is_refused(setup) -> None:
    data, broker, roots, mount = setup
    other = materialize(broker, data, "run-2", "lease-1", "sam")
    # run-2's handle presented for run-1
    assert "handle" in refused({**mount, "handle": other["handle"]}, roots)
    record = Path(mount["handle"] + ".json")
    body = json.loads(record.read_text())
    record.write_text(json.dumps({**body, "run_id": "run-2"}))
    assert "another run_id" in refused(mount, roots)
    record.write_text(json.dumps(body))
    assert "another user" in refused(mount, roots, user="eve")


def test_missing_record_unknown_org_file_target_and_expiry_are_refused(setup, world) -> None:
    data, _broker, roots, mount = setup
    assert "is not configured for organization 'UiB'" in refused({**mount, "org": "UiB"}, roots)
    Path(mount["handle"] + ".json").rename(world / "moved.json")
    assert "no record" in refused(mount, roots)
    (world / "moved.json").rename(mount["handle"] + ".json")
    handle = Path(mount["handle"])
    handle.unlink()
    handle.symlink_to(data / "x.txt")
    assert "directory" in refused(mount, roots)
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    assert "expired" in refused({**mount, "expires_at": past}, roots)


def _rewrite_record(made_handle: str, **fields) -> None:
    """What the owner's broker would have written, changed as a test needs it."""
    path = Path(made_handle + ".json")
    record = json.loads(path.read_text())
    record.update(fields)
    path.write_text(json.dumps(record))


def test_the_owners_record_decides_policy_and_expiry_the_operator_the_group(setup) -> None:
    # The lessee's broker forwards the mount; the owner's record beside the handle says
    # what the owner read on the ledger, and the executor's configuration which group reads
    # the org's data. Neither the caller nor the record picks the group.
    _data, _broker, roots, mount = setup
    soon = (datetime.now(UTC) + timedelta(minutes=5)).replace(microsecond=0)
    _rewrite_record(
        mount["handle"],
        release={"mode": "review", "checks": ["max_size"], "max_output_bytes": 10},
        expires_at=soon.isoformat(),
        data_gid=60999,
        dataset_name="words",
    )
    opened = open_mount("claim-1", mount, run_id="run-1", user="sam", orgs=roots)
    try:
        assert (opened.policy.mode, opened.policy.max_output_bytes) == ("review", 10)
        assert (opened.policy.owner_org, opened.policy.dataset_name) == ("UiO", "words")
        assert opened.expires_at == soon, "an expiry past the owner's lease counts for nothing"
        assert opened.data_gid == 60301
    finally:
        opened.close()


def test_a_record_without_a_policy_gets_the_strict_default(setup) -> None:
    _data, _broker, roots, mount = setup
    _rewrite_record(mount["handle"], release={})
    opened = open_mount("claim-1", mount, run_id="run-1", user="sam", orgs=roots)
    try:
        assert opened.policy.mode == "checks"
        assert set(opened.policy.checks) == {"max_size", "verbatim_input"}
    finally:
        opened.close()


def test_an_owner_record_past_its_expiry_or_with_a_bad_policy_is_refused(setup) -> None:
    _data, _broker, roots, mount = setup
    _rewrite_record(mount["handle"], expires_at="2020-01-01T00:00:00+00:00")
    assert refused(mount, roots) == "lease lease-1 expired at 2020-01-01T00:00:00+00:00"
    _rewrite_record(mount["handle"], expires_at=LATER, release={"mode": "never"})
    assert refused(mount, roots) == (
        "the mount of lease lease-1 was refused: the owner's release policy is not usable: "
        "policy.release.mode: must be one of checks, review, auto"
    )


@pytest.mark.parametrize("target", ["other-org", "home", "etc"])
def test_an_orgs_own_handle_to_data_outside_its_storage_roots_is_refused(
    setup, world: Path, target: str
) -> None:
    # An org's broker writes its own mount root: a handle there may point anywhere. The
    # directory it opens must lie under the org's configured storage roots.
    _data, broker, roots, _mount = setup
    elsewhere = {"other-org": world / "uis-storage", "home": world / "home", "etc": Path("/etc")}
    place = elsewhere[target]
    place.mkdir(exist_ok=True)
    made = materialize(broker, place, "run-2", "lease-2", "sam")
    mount = {"org": "UiO", "lease_id": "lease-2", "handle": made["handle"], "expires_at": LATER}
    message = refused(mount, roots, run_id="run-2")
    assert message == (
        "the mount of lease lease-2 was refused: its data is not under organization UiO's "
        "storage roots"
    )
    # A link inside the org's storage that leads out of it is the same refusal.
    escape = _data / "escape"
    escape.symlink_to(place, target_is_directory=True)
    made = materialize(broker, escape, "run-3", "lease-3", "sam")
    mount = {"org": "UiO", "lease_id": "lease-3", "handle": made["handle"], "expires_at": LATER}
    assert "not under organization UiO's storage roots" in refused(mount, roots, run_id="run-3")

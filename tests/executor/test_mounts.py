"""Lease mounts are accepted only as the owner's broker made them for this run."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dshare_hub.broker.materialize import LocalMaterializer
from dshare_hub.executor.mounts import open_mount
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
    roots = {"UiO": str(broker / "mounts")}
    mount = {
        "org": "UiO",
        "lease_id": "lease-1",
        "handle": made["handle"],
        "expires_at": LATER,
        "data_gid": 60301,
    }
    return data, broker, roots, mount


def refused(mount: dict, roots: dict, **kw) -> str:
    args = {"run_id": "run-1", "user": "sam", "org_roots": roots, **kw}
    with pytest.raises(ApiError) as info:
        open_mount("claim-1", mount, **args)
    assert info.value.code in ("MOUNT_REFUSED", "LEASE_EXPIRED")
    assert "/" not in info.value.message.replace("lease-1", ""), "no path in messages"
    return info.value.message


def test_the_owners_handle_for_this_run_is_opened_as_a_directory(setup) -> None:
    data, _broker, roots, mount = setup
    opened = open_mount("claim-1", mount, run_id="run-1", user="sam", org_roots=roots)
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
    assert "no mount root" in refused({**mount, "org": "UiB"}, roots)
    Path(mount["handle"] + ".json").rename(world / "moved.json")
    assert "no record" in refused(mount, roots)
    (world / "moved.json").rename(mount["handle"] + ".json")
    handle = Path(mount["handle"])
    handle.unlink()
    handle.symlink_to(data / "x.txt")
    assert "directory" in refused(mount, roots)
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    assert "expired" in refused({**mount, "expires_at": past}, roots)

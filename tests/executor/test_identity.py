"""Job identities: unique pool uids, never root nor the scientist, freed only when dead."""

from __future__ import annotations

import subprocess
import time

import pytest

from dshare_hub.executor.identity import JobIdentity, PoolExhausted, UidPool, kill_uid, live_uids

from .conftest import POOL


def test_the_lowest_uid_not_held_is_allocated() -> None:
    pool = UidPool(61950, 61952)
    assert pool.allocate([]) == 61950
    assert pool.allocate([61950]) == 61951
    assert pool.allocate([61951, 61950]) == 61952
    with pytest.raises(PoolExhausted, match=r"widen Executor\.uid_range"):
        pool.allocate([61950, 61951, 61952])


def test_a_range_with_root_or_empty_is_refused() -> None:
    with pytest.raises(ValueError, match="root"):
        UidPool(0, 10)
    with pytest.raises(ValueError):
        UidPool(62000, 61000)


def test_setpriv_drops_to_the_uid_with_the_data_groups_only() -> None:
    assert JobIdentity(61000, (700, 701)).setpriv() == [
        "setpriv",
        "--reuid=61000",
        "--regid=61000",
        "--groups=700,701",
        "--no-new-privs",
        "--",
    ]
    assert "--clear-groups" in JobIdentity(61000).setpriv()
    out = subprocess.run(
        [*JobIdentity(61001, (60301,)).setpriv(), "id"], capture_output=True, text=True, check=True
    ).stdout
    assert "uid=61001" in out and "gid=61001" in out and "60301" in out


def test_a_uid_with_live_processes_is_not_reused_and_is_freed_by_kill() -> None:
    uid = POOL.last
    proc = subprocess.Popen([*JobIdentity(uid).setpriv(), "sleep", "60"])
    try:
        for _ in range(100):
            if uid in live_uids(POOL):
                break
            time.sleep(0.02)
        assert uid in live_uids(POOL)
        pool = UidPool(uid - 1, uid)
        assert pool.allocate([]) == uid - 1
        with pytest.raises(PoolExhausted):
            pool.allocate([uid - 1])  # the only other uid still has a process
        assert kill_uid(uid)
        proc.wait(5)
        assert uid not in live_uids(POOL)
        assert pool.allocate([uid - 1]) == uid
    finally:
        proc.kill()


def test_killing_root_processes_is_refused() -> None:
    with pytest.raises(ValueError):
        kill_uid(0)

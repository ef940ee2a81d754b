"""Interactive views on a real file system with real OS users: what the lessee's uid can
and cannot do with a view, what another uid can do, and what the reaper's sweep leaves
after a view's end, after a crash in the middle of making one, and for a directory
without a record. The store runs as root here; tests/hub/test_interactive_views.py runs
it inside the brokers of a real deployment, as their service users.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dshare_hub.broker.viewstore import ViewError, ViewStore
from dshare_hub.spawner import system_users

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="creates OS users: needs root"),
    pytest.mark.skipif(shutil.which("setfacl") is None, reason="needs setfacl (Debian: acl)"),
]

PREFIX = f"tv{secrets.token_hex(2)}-"
FILES = {"a.csv": b"id,amount\n1,42\n", "sub/b.csv": b"id,amount\n2,7\n"}


@pytest.fixture(scope="module")
def users() -> Iterator[dict[str, Any]]:
    made = {n: system_users.ensure_service_user(PREFIX + n) for n in ("alice", "bob")}
    yield made
    for name in system_users.users_with_prefix(PREFIX):
        system_users.remove_user(name)


@pytest.fixture
def world() -> Iterator[dict[str, Path]]:
    top = Path(tempfile.mkdtemp(prefix="dshare-views-", dir="/tmp"))
    top.chmod(0o711)
    storage = top / "storage" / "uis" / "payments"
    for rel, data in FILES.items():
        (storage / rel).parent.mkdir(parents=True, exist_ok=True)
        (storage / rel).write_bytes(data)
        (storage / rel).chmod(0o640)
    (storage / "escape").symlink_to("/etc/passwd")
    for d in (top / "storage", top / "storage" / "uis", storage, storage / "sub"):
        d.chmod(0o2750)
    views = top / "views" / "uis"
    views.mkdir(parents=True)
    (top / "views").chmod(0o711)
    views.chmod(0o711)
    yield {"top": top, "storage": storage, "views": views, "state": top / "state"}
    shutil.rmtree(top, ignore_errors=True)


def lease(lease_id: str = "L-1", expires: str = "2999-01-01T00:00:00Z") -> dict[str, Any]:
    return {
        "id": lease_id,
        "asset_id": "uis-payments",
        "lessee_org": "UiO",
        "lessee_user": "alice",
        "expires_at": expires,
    }


PROBE = r"""
import json, os, subprocess, sys
view = sys.argv[1]
out = {}
def attempt(name, fn):
    try:
        out[name] = ['ok', fn()]
    except Exception as e:
        out[name] = ['refused', type(e).__name__]
attempt('read', lambda: {r: open(os.path.join(view, r)).read() for r in ('a.csv', 'sub/b.csv')})
attempt('list', lambda: sorted(os.listdir(view)))
attempt('write', lambda: open(os.path.join(view, 'a.csv'), 'a').write('x'))
attempt('create', lambda: open(os.path.join(view, 'new.txt'), 'w').write('x'))
attempt('chmod', lambda: os.chmod(os.path.join(view, 'a.csv'), 0o666))
attempt('unlink', lambda: os.unlink(os.path.join(view, 'a.csv')))
attempt('realpath', lambda: os.path.realpath(os.path.join(view, 'sub', 'b.csv')))
attempt('storage', lambda: os.listdir(sys.argv[2]))
done = subprocess.run(['setfacl', '-m', 'o::r', os.path.join(view, 'a.csv')],
                      capture_output=True, text=True)
out['setfacl'] = ['ok' if done.returncode == 0 else 'refused', done.stderr[-200:]]
out['mountinfo'] = ['ok', open('/proc/self/mountinfo').read()]
print(json.dumps(out))
"""


def probe(user: Any, view: str, storage: Path) -> dict[str, list[Any]]:
    done = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, view, str(storage)],
        user=user.pw_uid,
        group=user.pw_gid,
        extra_groups=[],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    )
    import json

    result: dict[str, list[Any]] = json.loads(done.stdout)
    return result


def named_entries(path: Path) -> str:
    return subprocess.run(
        ["getfacl", "-n", "-p", "--omit-header", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_the_lessee_reads_the_view_and_nothing_else_can(world, users) -> None:
    store = ViewStore(world["views"], world["state"])
    alice, bob = users["alice"], users["bob"]
    record = asyncio.run(
        store.make(lease=lease(), source=world["storage"], uid=alice.pw_uid, os_user="alice")
    )
    view = store.path_of(record)
    assert "storage" not in view and "payments" not in view
    seen = probe(alice, view, world["storage"])
    assert seen["read"] == ["ok", {k: v.decode() for k, v in FILES.items()}]
    assert seen["list"] == ["ok", ["a.csv", "sub"]]  # the dataset's link is not shown
    for attack in ("write", "create", "chmod", "unlink", "storage", "setfacl"):
        assert seen[attack][0] == "refused", (attack, seen[attack])
    assert seen["realpath"] == ["ok", os.path.join(view, "sub", "b.csv")]
    assert str(world["storage"]) not in seen["mountinfo"][1]
    # Same inodes: nothing was copied.
    assert os.stat(Path(view) / "a.csv").st_ino == os.stat(world["storage"] / "a.csv").st_ino
    other = probe(bob, view, world["storage"])
    assert other["read"][0] == other["list"][0] == "refused", other
    # Asking again gives the same view.
    again = asyncio.run(
        store.make(lease=lease(), source=world["storage"], uid=alice.pw_uid, os_user="alice")
    )
    assert again["view_id"] == record["view_id"]


def test_the_end_of_a_view_takes_its_acl_entries_but_not_another_leases(world, users) -> None:
    store = ViewStore(world["views"], world["state"])
    alice = users["alice"]
    first = asyncio.run(
        store.make(lease=lease("L-1"), source=world["storage"], uid=alice.pw_uid, os_user="a")
    )
    second = asyncio.run(
        store.make(lease=lease("L-2"), source=world["storage"], uid=alice.pw_uid, os_user="a")
    )

    async def only_second(record: dict[str, Any]) -> bool:
        return bool(record["lease_id"] == "L-2")

    assert asyncio.run(store.sweep(only_second)) == 1
    assert not Path(store.path_of(first)).exists()
    assert probe(alice, store.path_of(second), world["storage"])["read"][0] == "ok"

    async def none(record: dict[str, Any]) -> bool:
        return False

    assert asyncio.run(store.sweep(none)) == 1
    assert probe(alice, store.path_of(second), world["storage"])["read"][0] == "refused"
    for rel in FILES:
        assert f"user:{alice.pw_uid}:" not in named_entries(world["storage"] / rel)
    assert os.listdir(world["views"]) == [] and store.records() == []


def test_an_expired_view_goes_even_when_the_ledger_cannot_say(world, users) -> None:
    store = ViewStore(world["views"], world["state"])
    alice = users["alice"]
    past = lease(expires="2000-01-01T00:00:00Z")
    asyncio.run(store.make(lease=past, source=world["storage"], uid=alice.pw_uid, os_user="a"))

    async def ledger_down(record: dict[str, Any]) -> bool:
        raise OSError("the ledger is unreachable")

    assert asyncio.run(store.sweep(ledger_down)) == 1
    assert os.listdir(world["views"]) == []
    # And one that has not expired stays while the ledger cannot be asked.
    asyncio.run(store.make(lease=lease(), source=world["storage"], uid=alice.pw_uid, os_user="a"))
    assert asyncio.run(store.sweep(ledger_down)) == 0


def test_a_crash_in_the_middle_leaves_nothing_the_next_sweep_does_not_remove(world, users) -> None:
    alice, bob = users["alice"], users["bob"]
    store = ViewStore(world["views"], world["state"])
    record = asyncio.run(
        store.make(lease=lease(), source=world["storage"], uid=alice.pw_uid, os_user="a")
    )
    # A crash before the view was marked complete...
    record["complete"] = False
    store._write_record(record)
    # ...and a tree whose record was lost, with ACL entries already on the owner's files.
    orphan = world["views"] / ("v-" + "0" * 32)
    orphan.mkdir(mode=0o700)
    os.link(world["storage"] / "sub" / "b.csv", orphan / "b.csv")
    for path in (orphan, orphan / "b.csv"):
        subprocess.run(["setfacl", "-m", f"u:{bob.pw_uid}:rx", str(path)], check=True)
    restarted = ViewStore(world["views"], world["state"])

    async def everything(record: dict[str, Any]) -> bool:
        return True

    assert asyncio.run(restarted.sweep(everything)) == 2
    assert os.listdir(world["views"]) == [] and restarted.records() == []
    for rel in FILES:
        entries = named_entries(world["storage"] / rel)
        assert f"user:{alice.pw_uid}:" not in entries and f"user:{bob.pw_uid}:" not in entries


def test_data_on_another_file_system_is_refused_without_naming_it(world, users) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(world["views"]).st_dev:
        pytest.skip("no second file system to try")
    elsewhere = Path(tempfile.mkdtemp(prefix="dshare-other-fs-", dir=shm))
    try:
        (elsewhere / "a.csv").write_bytes(b"x" * 10)
        store = ViewStore(world["views"], world["state"])
        with pytest.raises(ViewError) as refused:
            asyncio.run(
                store.make(lease=lease(), source=elsewhere, uid=users["alice"].pw_uid, os_user="a")
            )
        assert refused.value.code == "VIEW_UNAVAILABLE"
        assert "another file system" in refused.value.message
        assert str(elsewhere) not in refused.value.message and "/dev/shm" not in str(refused.value)
        assert os.listdir(world["views"]) == [] and store.records() == []
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)

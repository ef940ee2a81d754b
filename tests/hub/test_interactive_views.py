"""Interactive datasets as a hostile scientist meets them, in the real embedded deployment.

A dataset whose owner allows interactive use appears read-only at ~/datasets/<name> while
the lease is valid, as a link to a view the owner's broker made (hard links + POSIX ACLs);
everything here runs in the scientists' own kernels, as their own OS users. The lessee
reads the right bytes and cannot write, chmod or re-ACL them; nothing they can read names
the storage path; another scientist cannot read the view; workflow-only datasets stay
empty skeletons; after release or expiry nothing is readable and the link goes; and a
broker killed while its view's lease ends removes the view and its ACL entries when it
comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hubclient import HubSession
from redacted_table import assert_redacted

pytestmark = pytest.mark.asyncio(loop_scope="module")

DATASET = "uis-payments"  # UiS's interactive dataset in the demo content
LINK = "~/datasets/UiS mobile payments"
CORPUS_LINK = "~/datasets/UiS lorem corpus"

# Everything a lessee tries on the view, from their kernel.
PROBE = """
import json, os, subprocess
link = os.path.expanduser({link!r})
out = {{'is_link': os.path.islink(link)}}
def attempt(name, fn):
    try:
        out[name] = ['ok', fn()]
    except Exception as e:
        out[name] = ['refused', type(e).__name__ + ': ' + str(e)[:200]]
attempt('readlink', lambda: os.readlink(link))
attempt('realpath', lambda: os.path.realpath(os.path.join(link, 'transactions.csv')))
attempt('list', lambda: sorted(os.listdir(link)))
attempt('read', lambda: open(os.path.join(link, 'transactions.csv')).read())
attempt('append', lambda: open(os.path.join(link, 'transactions.csv'), 'a').write('x'))
attempt('truncate', lambda: os.truncate(os.path.join(link, 'transactions.csv'), 0))
attempt('create', lambda: open(os.path.join(link, 'mine.csv'), 'w').write('x'))
attempt('chmod', lambda: os.chmod(os.path.join(link, 'transactions.csv'), 0o666))
attempt('unlink', lambda: os.unlink(os.path.join(link, 'transactions.csv')))
attempt('hardlink', lambda: os.link(os.path.join(link, 'transactions.csv'),
                                    os.path.expanduser('~/stolen.csv')))
done = subprocess.run(['setfacl', '-m', 'o::r', os.path.join(link, 'transactions.csv')],
                      capture_output=True, text=True)
out['setfacl'] = ['ok' if done.returncode == 0 else 'refused', done.stderr[-200:]]
out['mountinfo'] = ['ok', open('/proc/self/mountinfo').read()]
out['uid'] = os.getuid()
print('VIEW', json.dumps(out))
"""


def _last(out: str, tag: str) -> dict:
    for line in reversed(out.splitlines()):
        if line.startswith(tag + " "):
            return dict(json.loads(line[len(tag) + 1 :]))
    raise AssertionError(f"no {tag} line in: {out[-3000:]}")


async def _session(deployment, logins, user: str) -> HubSession:
    session = HubSession(deployment.layout.public_url)
    response = await session.login(user, logins[user])
    assert response.code == 302, f"{user} could not log in: {response.code}"
    await session.start_server()
    return session


async def _lease(session: HubSession, dataset: str, seconds: int = 3600) -> dict:
    out, errors = await session.run_code(
        "import json\nfrom dshare_server.session import lease\n"
        f"print('LEASE', json.dumps(lease({dataset!r}, hours={seconds}/3600, "
        "purpose='interactive view attack')))\n"
    )
    assert not errors, (out, errors)
    granted = _last(out, "LEASE")
    assert granted["state"] == "active", granted
    return granted


async def _probe(session: HubSession, link: str = LINK) -> dict:
    out, errors = await session.run_code(PROBE.format(link=link))
    assert not errors, (out, errors)
    return _last(out, "VIEW")


def _acl_users(path: Path) -> set[int]:
    text = subprocess.run(
        ["getfacl", "-n", "-p", "--omit-header", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    users = set()
    for line in text.splitlines():
        kind, _, rest = line.partition(":")
        who = rest.split(":", 1)[0]
        if kind == "user" and who.isdigit():
            users.add(int(who))
    return users


def _storage_files(layout) -> list[Path]:
    return sorted(p for p in (layout.data / "uis" / "payments").rglob("*") if p.is_file())


async def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:.0f} s")
        await asyncio.sleep(0.5)


def _assert_no_storage_path(layout, *texts: str) -> None:
    storage = str(layout.data)
    for text in texts:
        assert storage not in text and "/storage/" not in text, text[:500]


async def test_the_lessee_reads_the_view_and_nothing_more_until_the_release(
    deployment, logins
) -> None:
    layout = deployment.layout
    lessee = await _session(deployment, logins, "uio-scientist")  # another org's data
    granted = await _lease(lessee, DATASET)
    seen = await _probe(lessee)
    assert seen["is_link"], seen
    raw = (layout.data / "uis" / "payments" / "transactions.csv").read_text()
    # UiS's policy hashes the customer ids for other organizations (test_redaction_e2e.py).
    assert seen["read"][0] == "ok", seen["read"]
    assert_redacted(seen["read"][1], raw)
    assert seen["list"] == ["ok", ["transactions.csv"]]
    for attack in ("append", "truncate", "create", "chmod", "unlink", "hardlink", "setfacl"):
        assert seen[attack][0] == "refused", (attack, seen[attack])
    view = seen["readlink"][1]
    assert view.startswith(str(layout.views_dir("UiS")) + "/"), view
    _assert_no_storage_path(layout, view, seen["realpath"][1], seen["mountinfo"][1])
    # The lessee reads the owner's redacted copy, never the raw inode: the owner's file and
    # directories were given nothing, only the view's own entries name the lessee.
    source = layout.data / "uis" / "payments" / "transactions.csv"
    viewed = Path(view) / "transactions.csv"
    assert os.stat(viewed).st_ino != source.stat().st_ino
    assert seen["uid"] in _acl_users(viewed)
    assert seen["uid"] not in _acl_users(source) | _acl_users(source.parent)

    # Another scientist who learns the path reads nothing through it.
    other = await _session(deployment, logins, "uib-scientist")
    out, errors = await other.run_code(
        "import json, os\nout = {}\n"
        f"for name, fn in [('list', lambda: os.listdir({view!r})),\n"
        f"                 ('read', lambda: open({view!r} + '/transactions.csv').read())]:\n"
        "    try:\n        fn(); out[name] = 'ok'\n"
        "    except OSError as e:\n        out[name] = type(e).__name__\n"
        "print('OTHER', json.dumps(out))\n"
    )
    assert not errors, (out, errors)
    assert _last(out, "OTHER") == {"list": "PermissionError", "read": "PermissionError"}

    # The end: released, the owner's reaper takes the view and its ACL entries away.
    out, errors = await lessee.run_code(
        f"from dshare_server.session import release\nrelease({granted['id']!r})\n"
    )
    assert not errors, (out, errors)
    await _wait(lambda: not os.path.lexists(view), 30, "the released view was not removed")
    for path in _storage_files(layout):
        assert seen["uid"] not in _acl_users(path), f"{path} keeps the lessee's ACL entry"
    after = await _probe(lessee)
    assert after["read"][0] == "refused", after
    # The server prunes the dangling link (here at once; else at its periodic refresh).
    status, body = await lessee.api("dshare/api/views", "POST", {})
    assert status == 200, body
    after = await _probe(lessee)
    assert not after["is_link"] and after["list"][0] == "refused", after


async def test_at_spawn_an_interactive_lease_is_a_link_and_a_workflow_only_one_a_skeleton(
    deployment, logins
) -> None:
    session = await _session(deployment, logins, "uis-scientist")  # its own org's data
    corpus = await _lease(session, "uis-lorem-corpus")
    payments = await _lease(session, DATASET)
    # A new spawn writes ~/datasets as the user.
    await _stop_server(deployment, session)
    await session.start_server()
    seen = await _probe(session)
    assert seen["is_link"] and seen["read"][0] == "ok", seen
    out, errors = await session.run_code(
        "import json, os\n"
        f"root = os.path.expanduser({CORPUS_LINK!r})\n"
        "files = {os.path.relpath(os.path.join(d, f), root): os.path.getsize(os.path.join(d, f))"
        " for d, _, fs in os.walk(root) for f in fs}\n"
        "print('SKELETON', json.dumps({'link': os.path.islink(root), 'files': files}))\n"
    )
    assert not errors, (out, errors)
    skeleton = _last(out, "SKELETON")
    assert not skeleton["link"] and skeleton["files"], skeleton
    assert set(skeleton["files"].values()) == {0}, "a workflow-only dataset is not a skeleton"
    out, errors = await session.run_code(
        "from dshare_server.session import release\n"
        f"release({corpus['id']!r}); release({payments['id']!r})\n"
    )
    assert not errors, (out, errors)
    # Stopped as it was found by tests that lease before they spawn.
    await _stop_server(deployment, session)


async def _stop_server(deployment, session: HubSession) -> None:
    # The hub's own XSRF cookie first (the server's has the same name).
    await session.fetch("hub/home")
    response = await session.fetch(
        f"hub/api/users/{session.user}/server", "DELETE", headers={"X-XSRFToken": session.xsrf}
    )
    assert response.code in (202, 204), (response.code, response.body)
    uid = pwd.getpwnam(deployment.layout.user_template.format(username=session.user)).pw_uid
    await _wait(lambda: not _servers_of(uid), 60, "the server did not stop")
    await asyncio.sleep(2)  # the hub records the stop after the process is gone


def _servers_of(uid: int) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if (
                proc.name.isdigit()
                and proc.stat().st_uid == uid
                and b"singleuser" in (proc / "cmdline").read_bytes()
            ):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _broker_pids(layout, org: str) -> list[int]:
    config = str(layout.broker_config(org)).encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"dshare_hub.broker" in cmdline and config in cmdline:
            pids.append(int(proc.name))
    return pids


async def test_a_view_whose_lease_expired_while_its_broker_was_dead_goes_at_its_restart(
    deployment, logins
) -> None:
    layout = deployment.layout
    lessee = await _session(deployment, logins, "uib-scientist")
    # Leased behind the server's back (the broker's API, not lease()): the server's
    # periodic refresh links it while it runs.
    out, errors = await lessee.run_code(
        "import json\nfrom dshare_server.session import SyncBrokerClient\n"
        "print('LEASE', json.dumps(SyncBrokerClient().call('POST', 'leases', "
        f"{{'dataset_id': {DATASET!r}, 'duration_s': 90, 'purpose': 'expiry'}})))\n"
    )
    assert not errors, (out, errors)
    granted = _last(out, "LEASE")
    assert granted["state"] == "active", granted
    expires = datetime.fromisoformat(granted["expires_at"].replace("Z", "+00:00"))
    link = layout.homes / "uib-scientist" / "datasets" / "UiS mobile payments"
    await _wait(lambda: os.path.islink(link), 40, "the server did not link the new lease")
    seen = await _probe(lessee)
    assert seen["read"][0] == "ok", seen
    view = seen["readlink"][1]
    pids = _broker_pids(layout, "UiS")
    assert pids, "UiS's broker process was not found"
    # Hung first (JupyterHub sees it alive and does not restart it), so the lease expires
    # while no reaper of UiS runs...
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep((expires - datetime.now(UTC)).total_seconds() + 3)
        assert os.path.isdir(view), "the view went although its broker was stopped"
        # ...then dead: JupyterHub starts it again, and its first reaper pass finds the
        # view its previous life made, from the disk.
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        await _wait(lambda: not os.path.lexists(view), 150, "the restarted broker left the view")
    finally:
        # Whatever happened, the broker serves again before the next test.
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            response = await lessee.fetch("services/dshare-uis/api/v1/openapi.json")
            if response.code == 200:
                break
            await asyncio.sleep(1)
    for path in _storage_files(layout):
        assert seen["uid"] not in _acl_users(path), f"{path} keeps the lessee's ACL entry"
    assert os.listdir(layout.views_dir("UiS")) == []
    after = await _probe(lessee)
    assert after["read"][0] == "refused", after
    # Nobody asks: the server's periodic refresh (every 30 s) prunes the dangling link.
    await _wait(lambda: not os.path.lexists(link), 75, "the server did not prune the link")

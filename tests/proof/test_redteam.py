"""Red team of the output gate, its review and the executor's trust in brokers.

Run against the real embedded deployment: a UiO scientist's jobs (bubblewrap, per-run uid)
try to get UiS's workflow-only corpus past the gate through links, special files, sparse
files and processes that outlive the job; people and brokers who must not decide a held
file try to; a broker gone rogue (its real hub token, read from its process as root)
hands the executor forged handles and manifests. Every test asserts the safe behaviour.
"""

from __future__ import annotations

import asyncio
import base64
import grp
import hashlib
import json
import os
import pwd
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hubclient import HubSession
from rogue_broker import as_broker, rogue_body, rogue_manifest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

pytestmark = pytest.mark.asyncio(loop_scope="module")

DATASET = "uis-lorem-corpus"
SCIENTIST = "uio-scientist"


# -- helpers -----------------------------------------------------------------------------


async def _session(deployment, logins, user: str) -> HubSession:
    session = HubSession(deployment.layout.public_url)
    response = await session.login(user, logins[user])
    assert response.code == 302, f"{user} could not log in: {response.code}"
    await session.start_server()
    return session


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scientist(deployment, logins) -> AsyncIterator[tuple[HubSession, str]]:
    """UiO's scientist, signed in, with one lease of UiS's corpus for every run here."""
    session = await _session(deployment, logins, SCIENTIST)
    out, errors = await session.run_code(
        "from dshare_server.session import lease\n"
        f"print('LEASE', lease({DATASET!r}, hours=2, purpose='red team')['id'])\n"
    )
    assert not errors, (out, errors)
    lease_id = next(x for x in out.split() if x.startswith("L-"))
    yield session, lease_id


def _corpus(deployment) -> dict[str, bytes]:
    directory = deployment.layout.storage_root("UiS") / "lorem-corpus"
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


async def _put(session: HubSession, name: str, content: str) -> None:
    status, body = await session.api(
        f"api/contents/{name}", "PUT", {"type": "file", "format": "text", "content": content}
    )
    assert status in (200, 201), body


async def _run(
    session: HubSession, tag: str, script: str, *, wait: bool = True, dataset: str = DATASET
) -> str:
    """Run `script` as one job over a dataset (UiS's corpus) at /data/lorem; the run's id."""
    workflow = (
        f"name: redteam-{tag}\n"
        "jobs:\n"
        f"- command: 'sh rt-{tag}.sh'\n"
        "  volumes:\n"
        f"  - id: '{dataset}'\n"
        "    name: 'lorem'\n"
        "    path: '/data/lorem'\n"
    )
    await _put(session, f"rt-{tag}.yaml", workflow)
    await _put(session, f"rt-{tag}.sh", script)
    flag = "" if wait else " --no-wait"
    out, errors = await session.run_code(
        "%load_ext dshare_server\n"
        f"run = %dshare_run rt-{tag}.yaml{flag}\n"
        "print('RUN', run.id, run.state)\n"
    )
    assert not errors, (out, errors)
    return next(line for line in out.splitlines() if line.startswith("RUN ")).split()[1]


async def _run_view(session: HubSession, run_id: str) -> dict[str, Any]:
    """The scientist's view of a run once its end (and the gate's word) is on the ledger."""
    for _ in range(120):
        status, run = await session.api(f"dshare/api/runs/{run_id}")
        assert status == 200, run
        if run.get("state") != "running":
            return run
        await asyncio.sleep(0.5)
    raise AssertionError(f"run {run_id} did not end: {run}")


def _files_under(top: Path) -> dict[str, str]:
    """Every entry below `top` (not following links): relative path -> kind."""
    found: dict[str, str] = {}
    if not top.exists():
        return found
    for dirpath, dirs, files in os.walk(top):
        for name in dirs + files:
            path = Path(dirpath, name)
            kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
            found[str(path.relative_to(top))] = kind
    return found


# -- 1. what a job can leave in its workspace -------------------------------------------


SPECIAL_FILES = """\
mkdir -p rt-special/sub
ln -s /data/lorem/part-000.txt rt-special/file-link.txt
ln -s /data/lorem rt-special/dir-link
ln -s /etc/passwd rt-special/etc-link
ln -s ../../../.. rt-special/up-link
ln -s /data/lorem rt-special/sub/nested-link
ln /data/lorem/part-000.txt rt-special/hard.txt 2>/dev/null || echo refused > rt-special/no-hard.txt
mkfifo rt-special/fifo
mknod rt-special/null c 1 3 2>/dev/null || true
python3 -c "import socket; socket.socket(socket.AF_UNIX).bind('rt-special/sock')"
truncate -s 40M rt-special/sparse.bin
echo fine > rt-special/ok.txt
chmod 6777 rt-special/ok.txt
touch -d 1999-01-01 rt-special/ok.txt
"""


async def test_links_special_and_sparse_files_never_reach_the_home(deployment, scientist):
    session, _lease = scientist
    home = deployment.layout.homes / SCIENTIST
    run_id = await _run(session, "special", SPECIAL_FILES)
    run = await _run_view(session, run_id)
    outputs = {o["path"]: o for o in run["outputs"] if o["path"].startswith("rt-special/")}
    # Links, fifos, sockets and devices are not outputs at all; only regular files are.
    assert set(outputs) <= {
        "rt-special/ok.txt",
        "rt-special/no-hard.txt",
        "rt-special/hard.txt",
        "rt-special/sparse.bin",
    }, sorted(outputs)
    assert outputs["rt-special/ok.txt"]["decision"] == "released"
    # The sparse file is over the size limit and over what the gate scans: held, unread.
    assert outputs["rt-special/sparse.bin"]["decision"] == "held"
    if "rt-special/hard.txt" in outputs:  # a hard link to the data is a copy of it
        assert outputs["rt-special/hard.txt"]["decision"] == "held"
    delivered = _files_under(home / "rt-special")
    assert "link" not in delivered.values(), delivered
    assert set(delivered) <= {"ok.txt", "no-hard.txt"}, delivered
    ok = home / "rt-special" / "ok.txt"
    assert ok.read_text() == "fine\n"
    # Only the bytes arrive: no setuid/setgid bit, no mode or time the job chose.
    assert ok.stat().st_mode & 0o7000 == 0, oct(ok.stat().st_mode)
    assert (
        ok.stat().st_uid
        == pwd.getpwnam(deployment.layout.user_template.format(username=SCIENTIST)).pw_uid
    )
    for rel, out in outputs.items():
        if out["decision"] == "released":
            data = (home / rel).read_bytes()
            assert hashlib.sha256(data).hexdigest() == out["sha256"], rel


LINGERING = """\
mkdir -p rt-late
echo early > rt-late/result.txt
( sleep 4; cat /data/lorem/* > rt-late/result.txt; cat /data/lorem/* > rt-late/late.txt ) \
  >/dev/null 2>&1 &
setsid sh -c 'sleep 4; cat /data/lorem/* > rt-late/late-setsid.txt' >/dev/null 2>&1 &
nohup sh -c 'sleep 4; cat /data/lorem/* > rt-late/late-nohup.txt' >/dev/null 2>&1 &
exit 0
"""


async def test_a_process_outliving_its_job_changes_nothing_the_gate_judged(deployment, scientist):
    session, _lease = scientist
    home = deployment.layout.homes / SCIENTIST
    run_id = await _run(session, "late", LINGERING)
    run = await _run_view(session, run_id)
    outputs = {o["path"]: o for o in run["outputs"] if o["path"].startswith("rt-late/")}
    assert set(outputs) == {"rt-late/result.txt"}, outputs
    assert outputs["rt-late/result.txt"]["decision"] == "released"
    await asyncio.sleep(6)  # past the background writers' sleep
    assert _files_under(home / "rt-late") == {"result.txt": "file"}
    data = (home / "rt-late" / "result.txt").read_bytes()
    assert data == b"early\n"
    assert hashlib.sha256(data).hexdigest() == outputs["rt-late/result.txt"]["sha256"]
    # No job process is left running under any of the executor's pool uids.
    left = subprocess.run(["pgrep", "-u", "61000-61999"], capture_output=True, check=False)
    assert left.returncode != 0 or not left.stdout.strip(), left.stdout


# -- 2. who decides a held file ---------------------------------------------------------


COPY = """\
mkdir -p rt-held
cat /data/lorem/part-000.txt > rt-held/copy.txt
cat /data/lorem/part-000.txt
"""


async def test_only_the_holding_owner_can_release_a_held_file(deployment, logins, scientist):
    session, _lease = scientist
    layout = deployment.layout
    home = layout.homes / SCIENTIST
    run_id = await _run(session, "held", COPY)
    run = await _run_view(session, run_id)
    held = next(o for o in run["outputs"] if o["path"] == "rt-held/copy.txt")
    assert held["decision"] == "held" and held["held_by"] == ["UiS"], held
    # The job printed the corpus: its log is held too, and the log route shows none of it.
    log = next(o for o in run["outputs"] if o["path"].endswith("/logs/job-1.log"))
    assert log["decision"] == "held", log
    status, text = await session.api(f"dshare/api/runs/{run_id}/logs/job-1")
    assert status == 200, text
    lines = [x for x in _corpus(deployment)["part-000.txt"].decode().splitlines() if len(x) > 30]
    assert not any(line in str(text) for line in lines), text
    decide = f"runs/{run_id}/outputs/decide"
    approve = {"path": "rt-held/copy.txt", "approve": True, "reason": "mine"}

    # The scientist: through their server, at their broker, at the executor.
    status, body = await session.api(f"dshare/{'api/' + decide}", "POST", approve)
    assert status == 403, body
    out, errors = await session.run_code(
        "import json, os, urllib.request\n"
        "token = os.environ['JUPYTERHUB_API_TOKEN']\n"
        "broker = os.environ['DSHARE_BROKER_URL'].rstrip('/') + '/api/v1/'\n"
        f"executor = {layout.executor_url!r} + 'api/v1/'\n"
        "def call(url, body):\n"
        "    req = urllib.request.Request(url, data=json.dumps(body).encode(), method='POST',\n"
        "        headers={'Authorization': 'token ' + token,\n"
        "                 'Content-Type': 'application/json'})\n"
        "    try:\n"
        "        with urllib.request.urlopen(req, timeout=30) as r:\n"
        "            return r.status\n"
        "    except urllib.error.HTTPError as e:\n"
        "        return e.code\n"
        f"body = {approve!r}\n"
        f"print('ANSWER', call(broker + {decide!r}, body),\n"
        f"      call(executor + {decide!r}, body),\n"
        f"      call(executor + {decide!r}, dict(body, org='UiS')))\n"
    )
    assert not errors, (out, errors)
    answers = next(line for line in out.splitlines() if line.startswith("ANSWER")).split()[1:]
    assert answers == ["403", "403", "403"], out

    # The lessee's own admin (UiO did not hold it): refused by the ledger, nothing delivered.
    uio_admin = await _session(deployment, logins, "uio-admin")
    status, body = await uio_admin.api(f"dshare/api/{decide}", "POST", approve)
    assert status in (400, 403, 409), body
    # A third org's admin: not even in its queue.
    uib_admin = await _session(deployment, logins, "uib-admin")
    status, queue = await uib_admin.api("dshare/api/outputs/held")
    assert status == 200, queue
    assert run_id not in [r["id"] for r in queue["items"]]
    assert run_id not in json.dumps(queue)
    status, body = await uib_admin.api(f"dshare/api/{decide}", "POST", approve)
    assert status in (400, 403, 404, 409), body

    # Rogue brokers at the executor, with their real service tokens.
    status, body = await as_broker(layout, "UiO", decide, approve)
    assert (status, body.get("code")) == (403, "FORBIDDEN"), body
    status, body = await as_broker(layout, "UiO", decide, {**approve, "org": "UiS"})
    assert (status, body.get("code")) == (403, "FORBIDDEN"), body
    for org in ("UiB",):
        status, body = await as_broker(layout, org, decide, approve)
        assert (status, body.get("code")) == (404, "RUN_NOT_FOUND"), body
        status, body = await as_broker(layout, org, f"runs/{run_id}")
        assert status == 404, body

    # Still held everywhere, never delivered.
    assert not (home / "rt-held" / "copy.txt").exists()
    status, view = await as_broker(layout, "UiS", f"runs/{run_id}")
    assert status == 200, view
    entry = next(o for o in view["outputs"] if o["path"] == "rt-held/copy.txt")
    assert entry["decision"] == "held"
    run = await _run_view(session, run_id)
    assert next(o for o in run["outputs"] if o["path"] == "rt-held/copy.txt")["decision"] == "held"

    staged = layout.executor_dir / "state" / "runs" / run_id / "outputs" / "rt-held" / "copy.txt"
    assert staged.is_file(), "the held copy is not where the executor stages it"

    # The holder denies it (with a reason): the staged copy goes, nobody can revive it.
    uis_admin = await _session(deployment, logins, "uis-admin")
    status, body = await uis_admin.api(
        f"dshare/api/{decide}", "POST", {**approve, "approve": False, "reason": "raw corpus"}
    )
    assert status == 200, body
    status, body = await as_broker(layout, "UiS", decide, approve)
    assert status == 409 or body.get("code") == "INVALID_STATE", body
    assert not staged.exists()
    assert not (home / "rt-held" / "copy.txt").exists()


async def test_the_held_queue_is_for_the_owners_admins_only(deployment, logins, scientist):
    session, _lease = scientist
    status, body = await session.api("dshare/api/outputs/held")
    assert status == 403, body
    uis_scientist = await _session(deployment, logins, "uis-scientist")
    status, body = await uis_scientist.api("dshare/api/outputs/held")
    assert status == 403, body
    # Whatever is in UiO's and UiB's queues, it is held for them, never for UiS.
    for admin in ("uio-admin", "uib-admin"):
        other = await _session(deployment, logins, admin)
        status, queue = await other.api("dshare/api/outputs/held")
        assert status == 200, queue
        org = admin.split("-")[0]
        for item in queue["items"]:
            for out in item["outputs"]:
                assert any(o.lower() == org for o in out["held_by"]), (admin, out)


# -- 3. a rogue broker at the executor -------------------------------------------------


def _owner_record(layout, run_id: str, lease_id: str, *, user: str = SCIENTIST, **extra) -> Path:
    """What UiS's broker writes when it materializes its corpus for a run (its
    LocalMaterializer, in its own mount root, owned by it): the state a UiO broker reaches
    for its own scientist's real lease. Returns the handle."""
    broker = pwd.getpwnam(layout.broker_user("UiS"))
    root = layout.org_dir("UiS") / "broker" / "mounts"
    run_dir = root / run_id
    run_dir.mkdir(mode=0o750, exist_ok=True)
    os.lchown(run_dir, broker.pw_uid, broker.pw_gid)
    record = {
        "lease_id": lease_id,
        "run_id": run_id,
        "asset_id": DATASET,
        "user": user,
        "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "handle": str(run_dir / lease_id),
        "dataset_name": "UiS lorem corpus",
        "release": {},
        "data_gid": grp.getgrnam(layout.data_group("UiS")).gr_gid,
        **extra,
    }
    meta = run_dir / f"{lease_id}.json"
    meta.write_text(json.dumps(record))
    os.lchown(meta, broker.pw_uid, broker.pw_gid)
    handle = run_dir / lease_id
    if not handle.is_symlink():
        handle.symlink_to(layout.storage_root("UiS") / "lorem-corpus", target_is_directory=True)
        os.lchown(handle, broker.pw_uid, broker.pw_gid)
    return handle


def _mount(handle: Path | str, lease_id: str, org: str = "UiS", **extra: Any) -> dict:
    return {
        "org": org,
        "lease_id": lease_id,
        "handle": str(handle),
        "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "data_gid": 4242,
        **extra,
    }


CLAIM = "dshare-lease-x"
DATA_VOLUME = [{"name": "data", "persistentVolumeClaim": {"claimName": CLAIM}}]
DATA_MOUNT = [{"name": "data", "mountPath": "/data"}]


async def test_forged_handles_are_refused(deployment, scientist):
    _, lease_id = scientist
    layout = deployment.layout
    tag = uuid.uuid4().hex[:8]
    real_run = f"R-rt{tag}a"
    handle = _owner_record(layout, real_run, lease_id)
    manifest = rogue_manifest(DATA_VOLUME, DATA_MOUNT, "cat /data/* > copy.txt")
    root = layout.org_dir("UiS") / "broker" / "mounts"
    uio_root = layout.org_dir("UiO") / "broker" / "mounts"
    storage = layout.storage_root("UiS") / "lorem-corpus"
    expired = f"R-rt{tag}e"
    old = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    expired_handle = _owner_record(layout, expired, lease_id, expires_at=old)
    other_user = f"R-rt{tag}u"
    other_handle = _owner_record(layout, other_user, lease_id, user="uio-admin")
    cases = {
        # the handle UiS made for another run
        "other run": (f"R-rt{tag}b", _mount(handle, lease_id)),
        # a path that resolves to the real handle
        "dotdot": (real_run, _mount(f"{root}/{real_run}/../{real_run}/{lease_id}", lease_id)),
        "double slash": (real_run, _mount(f"{root}//{real_run}/{lease_id}", lease_id)),
        # the storage directory itself, and UiS's handle claimed under another org
        "storage path": (real_run, _mount(storage, lease_id)),
        "wrong org": (real_run, _mount(handle, lease_id, org="UiB")),
        "own org root": (real_run, _mount(handle, lease_id, org="UiO")),
        # a lease id that walks out of the run's directory
        "lease traversal": (real_run, _mount(handle, f"../{real_run}/{lease_id}")),
        # a handle of this run and lease that UiS never made
        "unmade": (f"R-rt{tag}c", _mount(f"{root}/R-rt{tag}c/{lease_id}", lease_id)),
        "unmade uio": (f"R-rt{tag}d", _mount(f"{uio_root}/R-rt{tag}d/{lease_id}", lease_id)),
        # the owner's record says the lease ended, the broker says it did not
        "expired": (expired, _mount(expired_handle, lease_id)),
        # the owner mounted it for another user of the lessee org
        "other user": (other_user, _mount(other_handle, lease_id)),
    }
    try:
        for name, (run_id, mount) in cases.items():
            # UiS's reaper removes records of runs the ledger does not know: make them again
            _owner_record(layout, real_run, lease_id)
            _owner_record(layout, expired, lease_id, expires_at=old)
            _owner_record(layout, other_user, lease_id, user="uio-admin")
            body = rogue_body(layout, run_id, manifest, {CLAIM: mount})
            status, reply = await as_broker(layout, "UiO", "runs", body)
            assert status in (400, 403, 409, 410), (name, status, reply)
            assert reply.get("code") in (
                "MOUNT_REFUSED",
                "LEASE_EXPIRED",
                "INVALID_ARGUMENT",
                "FORBIDDEN",
            ), (name, reply)
            assert str(storage) not in json.dumps(reply), (name, reply)
            status, _ = await as_broker(layout, "UiO", f"runs/{run_id}")
            assert status == 404, f"{name}: a refused run was recorded"
        # The handle's own run, for a user of another org: refused before any mount.
        body = rogue_body(
            layout, real_run, manifest, {CLAIM: _mount(handle, lease_id)}, "uis-admin"
        )
        status, reply = await as_broker(layout, "UiO", "runs", body)
        assert status in (400, 403) and reply.get("field") == "user", reply
    finally:
        for run_id in (real_run, expired, other_user):
            subprocess.run(["rm", "-rf", str(root / run_id)], check=False)


NOSY_JOB = """\
id -G
cat /etc/shadow >/dev/null 2>&1 && echo SHADOW-READ || echo shadow-refused
for d in /data/rw /data/ro; do
  [ -d $d ] || continue
  cat $d/part-000.txt >/dev/null && echo data-read || echo DATA-UNREADABLE
  echo x > $d/part-000.txt 2>/dev/null && echo WROTE-DATA || echo write-refused
  touch $d/planted 2>/dev/null && echo CREATED-DATA || echo create-refused
  chmod 777 $d/part-001.txt 2>/dev/null && echo CHMOD-DATA || echo chmod-refused
done
ls / /tmp
echo done > result.txt
"""


async def _rogue_run(layout, lease_id: str, manifest: dict, data_gid: int) -> tuple[str, dict]:
    """Submit as UiO's broker over UiS's mount record for this run; the run's end."""
    root = layout.org_dir("UiS") / "broker" / "mounts"
    for _attempt in range(3):  # UiS's reaper removes an unknown run's record within 5 s
        run_id = f"R-rt{uuid.uuid4().hex[:8]}m"
        try:
            _owner_record(layout, run_id, lease_id)
            mount = _mount(root / run_id / lease_id, lease_id, data_gid=data_gid)
            body = rogue_body(layout, run_id, manifest, {CLAIM: mount})
            status, reply = await as_broker(layout, "UiO", "runs", body)
        finally:
            subprocess.run(["rm", "-rf", str(root / run_id)], check=False)
        if status == 202:
            break
        assert reply.get("code") == "MOUNT_REFUSED", reply
    assert status == 202, reply
    for _ in range(240):
        status, view = await as_broker(layout, "UiO", f"runs/{run_id}")
        if view.get("gate_done"):
            return run_id, view
        await asyncio.sleep(0.5)
    raise AssertionError(f"rogue run {run_id} did not end: {view}")


async def test_a_rogue_manifest_gets_no_write_no_group_and_no_host_path(deployment, scientist):
    _, lease_id = scientist
    layout = deployment.layout
    before = _corpus(deployment)
    shadow_gid = grp.getgrnam("shadow").gr_gid

    # hostPath volumes and claims without a lease mount are refused outright.
    run_id = f"R-rt{uuid.uuid4().hex[:8]}h"
    host = rogue_manifest(
        [{"name": "data", "hostPath": {"path": str(layout.storage_root("UiS"))}}],
        DATA_MOUNT,
        "cat /data/*/* > copy.txt",
    )
    status, reply = await as_broker(layout, "UiO", "runs", rogue_body(layout, run_id, host, {}))
    assert (status, reply.get("code")) == (400, "INVALID_ARGUMENT"), reply
    unbound = rogue_manifest(DATA_VOLUME, DATA_MOUNT, "ls /data")
    status, reply = await as_broker(layout, "UiO", "runs", rogue_body(layout, run_id, unbound, {}))
    assert (status, reply.get("code")) == (400, "INVALID_ARGUMENT"), reply

    # The lease's claim asked read-write; a data group the broker picked (shadow);
    # securityContext, initContainers and env that ask for more than a job gets.
    extra = {
        "securityContext": {"privileged": True, "runAsUser": 0},
        "env": [{"name": "LD_LIBRARY_PATH", "value": "/nonexistent"}],
    }
    writable = rogue_manifest(
        [{"name": "rw", "persistentVolumeClaim": {"claimName": CLAIM, "readOnly": False}}],
        [{"name": "rw", "mountPath": "/data/rw", "readOnly": False}],
        NOSY_JOB,
        **extra,
    )
    writable["spec"]["templates"][1]["initContainers"] = [
        {"name": "i", "image": "x", "command": ["touch", "/tmp/init-ran"]}
    ]
    # The same claim twice, the second time read-write (the executor forces one of them).
    twice = rogue_manifest(
        [
            {"name": "ro", "persistentVolumeClaim": {"claimName": CLAIM, "readOnly": True}},
            {"name": "rw", "persistentVolumeClaim": {"claimName": CLAIM}},
        ],
        [
            {"name": "ro", "mountPath": "/data/ro"},
            {"name": "rw", "mountPath": "/data/rw", "readOnly": False},
        ],
        NOSY_JOB,
    )
    run_id, view = await _rogue_run(layout, lease_id, writable, shadow_gid)
    assert view["state"] == "succeeded", view
    log = (layout.executor_dir / "state" / "runs" / run_id / "logs" / "j.log").read_text()
    # Inside the sandbox's user namespace every extra group reads as "nobody": what the job
    # can open says which it got. The owner's record decides: its data, not /etc/shadow.
    assert "data-read" in log and "DATA-UNREADABLE" not in log, log
    assert "shadow-refused" in log and "write-refused" in log, log
    assert str(layout.root) not in log, log
    run_id, view = await _rogue_run(layout, lease_id, twice, shadow_gid)
    log = (layout.executor_dir / "state" / "runs" / run_id / "logs" / "j.log").read_text()
    for text in (log, json.dumps(view)):
        for word in ("SHADOW-READ", "WROTE-DATA", "CREATED-DATA", "CHMOD-DATA"):
            assert word not in text, text
    assert _corpus(deployment) == before
    corpus_dir = layout.storage_root("UiS") / "lorem-corpus"
    assert not (corpus_dir / "planted").exists()
    assert oct((corpus_dir / "part-001.txt").stat().st_mode & 0o777) == "0o640"


async def test_an_unknown_caller_cannot_use_theas_broker(deployment):
    layout = deployment.layout
    reply = await AsyncHTTPClient().fetch(
        HTTPRequest(
            layout.executor_url + "api/v1/runs",
            method="POST",
            body=json.dumps({"run_id": "R-x"}),
            headers={"Authorization": "token " + base64.b16encode(os.urandom(16)).decode()},
        ),
        raise_error=False,
    )
    assert reply.code in (401, 403), reply.body


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-x", "-q"]))

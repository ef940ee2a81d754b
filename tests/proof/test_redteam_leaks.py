"""Leaks the red-team suite found in the run path, each now closed; every test asserts the
safe behaviour from where the attacker stands (a scientist's kernel, a broker's own uid and
token).

- a failed run's message quoted the failed job's log past the gate;
- output names were never judged (files named with slices of the corpus were delivered);
- a rogue broker pointed a handle in its own mount root at another org's storage or at
  another user's home, and the executor mounted and delivered it;
- the row check quoted the held row to the scientist;
- a file at a path the ledger cannot record was delivered and the run never finished.
"""

from __future__ import annotations

import asyncio
import grp
import json
import os
import pwd
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from rogue_broker import as_broker, rogue_body, rogue_manifest
from test_redteam import (
    SCIENTIST,
    _corpus,
    _run,
    _run_view,
    scientist,  # noqa: F401
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _lines(deployment) -> list[str]:
    return [
        line
        for data in _corpus(deployment).values()
        for line in data.decode().splitlines()
        if len(line) >= 40
    ]


async def test_a_failed_runs_message_quotes_no_log(deployment, scientist):  # noqa: F811
    session, _ = scientist
    run_id = await _run(session, "tail", "head -n 10 /data/lorem/part-000.txt\nexit 3\n")
    direct = await _run_view(session, run_id)
    assert direct["state"] == "finished" and direct["outcome"] == "failed", direct
    text = json.dumps(direct)
    assert not any(line in text for line in _lines(deployment)), direct.get("message")


async def test_output_names_that_copy_the_data_are_redacted(deployment, scientist):  # noqa: F811
    session, _ = scientist
    script = (
        "mkdir -p rt-names\n"
        "python3 - <<'EOF'\n"
        "import os\n"
        "text = open('/data/lorem/part-000.txt').read().replace('/', '_')\n"
        "for i in range(0, 2000, 200):\n"
        "    open(os.path.join('rt-names', f'{i:05d}-' + text[i:i+200]), 'w').close()\n"
        "EOF\n"
    )
    run_id = await _run(session, "names", script)
    run = await _run_view(session, run_id)
    home = deployment.layout.homes / SCIENTIST / "rt-names"
    names = sorted(os.listdir(home)) if home.exists() else []
    paths = " ".join(o["path"] for o in run["outputs"])
    named = [o for o in run["outputs"] if o["path"].startswith("redacted-")]
    assert len(named) == 10 and {o["decision"] for o in named} == {"held"}, run["outputs"]
    corpus = _corpus(deployment)["part-000.txt"].decode().replace("/", "_")
    leaked = corpus[200:400]
    assert leaked not in paths and not any(leaked in n for n in names)


@pytest.mark.parametrize("target_kind", ["uis-storage", "uis-home"])
async def test_a_rogue_broker_cannot_point_its_own_handle_outside_its_storage(
    deployment,
    scientist,  # noqa: F811
    target_kind,
):
    layout = deployment.layout
    tag = uuid.uuid4().hex[:8]
    run_id = f"R-rt{tag}x"
    lease_id = f"L-rt{tag}"
    uio = pwd.getpwnam(layout.broker_user("UiO"))
    root = layout.org_dir("UiO") / "broker" / "mounts"
    target = layout.storage_root("UiS") / "lorem-corpus"
    if target_kind == "uis-home":
        target = layout.homes / "uis-scientist"
    secret = b"".join(p.read_bytes() for p in sorted(target.iterdir()) if p.is_file())
    record = {
        "lease_id": lease_id,
        "run_id": run_id,
        "asset_id": "anything",
        "user": SCIENTIST,
        "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "release": {"mode": "auto"},
        "data_gid": grp.getgrnam(layout.data_group("UiS")).gr_gid,
    }
    # Written AS UiO's broker (its uid), in its own mount root: all it needs.
    code = (
        "import json, os, sys\n"
        "root, run, lease, target, record = sys.argv[1:6]\n"
        "os.makedirs(os.path.join(root, run), exist_ok=True)\n"
        "open(os.path.join(root, run, lease + '.json'), 'w').write(record)\n"
        "os.symlink(target, os.path.join(root, run, lease))\n"
    )
    manifest = rogue_manifest(
        [{"name": "data", "persistentVolumeClaim": {"claimName": "c"}}],
        [{"name": "data", "mountPath": "/data"}],
        "mkdir -p rt-rogue; cat /data/* > rt-rogue/uis-corpus.txt 2>/dev/null; ls -la /data",
    )
    mount = {
        "org": "UiO",
        "lease_id": lease_id,
        "handle": str(root / run_id / lease_id),
        "expires_at": record["expires_at"],
        "data_gid": record["data_gid"],
    }
    home = layout.homes / SCIENTIST
    try:
        for _ in range(3):
            subprocess.run(
                [
                    "setpriv",
                    f"--reuid={uio.pw_uid}",
                    f"--regid={uio.pw_gid}",
                    "--clear-groups",
                    sys.executable,
                    "-c",
                    code,
                    str(root),
                    run_id,
                    lease_id,
                    str(target),
                    json.dumps(record),
                ],
                check=True,
            )
            status, reply = await as_broker(
                layout, "UiO", "runs", rogue_body(layout, run_id, manifest, {"c": mount})
            )
            if status != 400 or reply.get("code") != "MOUNT_REFUSED":
                break
        print("SUBMIT", status, reply.get("code"), reply.get("message"))
        if status == 202:
            for _ in range(240):
                status, view = await as_broker(layout, "UiO", f"runs/{run_id}")
                if view.get("gate_done"):
                    break
                await asyncio.sleep(0.5)
            print("OUTPUTS", [(o["path"], o["decision"]) for o in view["outputs"]])
        copy = home / "rt-rogue" / "uis-corpus.txt"
        got = copy.read_bytes() if copy.exists() else b""
        print("DELIVERED", len(got))
        assert secret[:200] not in got
        assert status != 202, "the executor accepted a UiO handle leading to UiS's storage"
    finally:
        subprocess.run(["rm", "-rf", str(root / run_id)], check=False)


async def test_a_held_row_is_not_quoted_to_the_scientist(deployment, logins, scientist):  # noqa: F811
    from test_redteam import _session

    session, _ = scientist
    layout = deployment.layout
    slug = f"uis-rows-{uuid.uuid4().hex[:6]}"
    directory = layout.storage_root("UiS") / slug
    directory.mkdir()
    rows = ["id,name,diagnosis"] + [
        f"{i},patient-{uuid.uuid4().hex[:10]},{'flu' if i % 2 else 'asthma'}" for i in range(50)
    ]
    (directory / "visits.csv").write_text("\n".join(rows) + "\n")
    broker = pwd.getpwnam(layout.broker_user("UiS"))
    data_gid = grp.getgrnam(layout.data_group("UiS")).gr_gid
    os.chown(directory, broker.pw_uid, data_gid)
    os.chmod(directory, 0o2750)
    os.chown(directory / "visits.csv", broker.pw_uid, data_gid)
    os.chmod(directory / "visits.csv", 0o640)
    admin = await _session(deployment, logins, "uis-admin")
    status, body = await admin.api(
        "dshare/api/datasets",
        "POST",
        {
            "id": slug,
            "name": "UiS visits (red team)",
            "description": "workflow-only rows",
            "storage": {"type": "local", "details": {"path": str(directory)}},
            "policy": {
                "max_duration_s": 86400,
                "exclusive": False,
                "max_concurrent": 10,
                "allowed_orgs": [],
                "approval_required": False,
                "interactive": False,
            },
        },
    )
    assert status in (200, 201), body
    out, errors = await session.run_code(
        "from dshare_server.session import lease\n"
        f"print('LEASE', lease({slug!r}, hours=1, purpose='red team rows')['id'])\n"
    )
    assert not errors, (out, errors)
    run_id = await _run(
        session,
        "row",
        "mkdir -p rt-row\nsed -n 8p /data/lorem/visits.csv > rt-row/row.txt\n",
        dataset=slug,
    )
    run = await _run_view(session, run_id)
    row = rows[7]
    out = next(o for o in run["outputs"] if o["path"] == "rt-row/row.txt")
    assert out["decision"] == "held"
    assert row[:30] not in json.dumps(run), "the hold reason quotes the data row"


async def test_every_delivered_file_is_on_the_ledger(deployment, scientist):  # noqa: F811
    session, _ = scientist
    deep = "/".join(["d" * 200] * 6)
    script = (
        f"mkdir -p rt-deep/{deep}\necho 42 > rt-deep/{deep}/result.txt\necho ok > rt-deep/ok.txt\n"
    )
    run_id = await _run(session, "deep", script, wait=False)
    run = await _run_view(session, run_id)
    home = deployment.layout.homes / SCIENTIST
    assert run["state"] == "finished", "the run's outputs never reached the ledger"
    assert not (home / "rt-deep" / deep / "result.txt").exists()
    assert (home / "rt-deep" / "ok.txt").read_text() == "ok\n"
    assert any("longer than 1024 characters" in w for w in run.get("warnings") or []), run

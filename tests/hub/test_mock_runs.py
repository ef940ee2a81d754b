"""Mock previews and mock runs in the embedded deployment, from where a scientist stands.

A UiB scientist without any lease of UiS's payments previews its mock through their own
server, then runs a workflow over it with `%dshare_run --mock` in a real kernel: the job
runs in the executor's sandbox, reads the mock table (the schema's columns, values in the
owner's ranges, never a real row), and what it wrote arrives under ~/mock-runs/<id>/,
labelled mock, released without checks. A mock submission that names another scientist's
lease is refused: in a mock run a volume id names a dataset, or the caller's own lease
standing for its dataset, and nothing else.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil

import pytest
from hubclient import HubSession

from dshare_hub.demo.content import PAYMENT_COLUMNS

pytestmark = pytest.mark.asyncio(loop_scope="module")

DATASET = "uis-payments"
USER = "uib-scientist"
WORKFLOW = """\
name: try-on-mock
jobs:
- command: 'python3 mock_job.py'
  volumes:
  - id: '{volume}'
    name: 'payments'
    path: '/data/payments'
"""
JOB = """\
import csv, json, os
rows = list(csv.DictReader(open('/data/payments/transactions.csv')))
os.makedirs('mockout', exist_ok=True)
json.dump({
    'header': list(rows[0].keys()),
    'rows': len(rows),
    'types': sorted({r['type'] for r in rows}),
    'amount': [min(float(r['amount']) for r in rows), max(float(r['amount']) for r in rows)],
    'ids': [r['nameOrig'] for r in rows[:5]],
    'listing': sorted(os.listdir('/data/payments')),
}, open('mockout/summary.json', 'w'))
print('read', len(rows), 'mock rows')
"""


async def _session(deployment, logins, user: str) -> HubSession:
    session = HubSession(deployment.layout.public_url)
    await session.login(user, logins[user])
    await session.start_server()
    return session


async def _put(session: HubSession, name: str, content: str) -> None:
    status, body = await session.api(
        f"api/contents/{name}", "PUT", {"type": "file", "format": "text", "content": content}
    )
    assert status in (200, 201), body


async def _no_lease_of(session: HubSession, dataset: str) -> None:
    """Whatever earlier suites left: this scientist ends every lease of the dataset."""
    status, page = await session.api("dshare/api/leases?scope=mine")
    assert status == 200, page
    for lease in page["items"]:
        if lease["asset_id"] == dataset and lease["state"] in ("active", "pending"):
            status, body = await session.api(f"dshare/api/leases/{lease['id']}/release", "POST")
            assert status == 200, body
    status, page = await session.api("dshare/api/leases?scope=mine")
    live = [
        lease
        for lease in page["items"]
        if lease["asset_id"] == dataset and lease["state"] in ("active", "pending")
    ]
    assert live == []


async def test_a_scientist_without_a_lease_previews_and_runs_on_the_mock(deployment, logins):
    home = deployment.layout.homes / USER
    scientist = await _session(deployment, logins, USER)
    await _no_lease_of(scientist, DATASET)

    status, preview = await scientist.api(f"dshare/api/datasets/{DATASET}/mock?rows=5")
    assert status == 200, preview
    assert preview["label"] == "Mock data — synthetic, not the real rows"
    assert [c["name"] for c in preview["columns"]] == [c["name"] for c in PAYMENT_COLUMNS]
    assert len(preview["rows"]) == 5
    status, body = await scientist.api(f"dshare/api/datasets/{DATASET}/mock?rows=500")
    assert (status, body["message"]) == (
        400,
        "rows: must be a whole number from 1 to 100, got '500'",
    ), body

    await _put(scientist, "mock-workflow.yaml", WORKFLOW.format(volume=DATASET))
    await _put(scientist, "mock_job.py", JOB)
    out, errors = await scientist.run_code(
        "%load_ext dshare_server\n"
        "run = %dshare_run --mock mock-workflow.yaml\n"
        "print('RUN', run.id, run.state)\n"
    )
    assert not errors, (out, errors)
    _, run_id, state = next(line for line in out.splitlines() if line.startswith("RUN ")).split()
    assert state == "succeeded", out
    assert run_id.startswith("M-")
    assert f"MOCK RUN {run_id}: the jobs read mock data" in out
    assert f"released: mock-runs/{run_id}/mockout/summary.json" in out

    # The job read the mock: the real schema, values inside the owner's ranges.
    delivered = home / "mock-runs" / run_id
    summary = json.loads((delivered / "mockout" / "summary.json").read_text())
    assert summary["header"] == [c["name"] for c in PAYMENT_COLUMNS]
    assert summary["rows"] == 1000  # BrokerApp.mock_run_rows
    assert set(summary["types"]) <= {"PAYMENT", "TRANSFER", "CASH_OUT", "DEBIT"}
    assert 5 <= summary["amount"][0] <= summary["amount"][1] <= 20000
    assert all(re.fullmatch(r"C\d{9}", x) for x in summary["ids"])
    assert summary["listing"] == ["transactions.csv"]
    # ... and no real row: the owner's table shares no customer id with it.
    real = deployment.layout.storage_root("UiS") / "payments" / "transactions.csv"
    real_ids = {r["nameOrig"] for r in csv.DictReader(io.StringIO(real.read_text()))}
    assert len(real_ids) > 100 and not real_ids & set(summary["ids"])
    assert "not the real rows" in (delivered / "MOCK.txt").read_text()
    assert not (home / "mockout").exists(), "mock outputs never land where real results go"

    # The run view and My runs say it was a mock run; the ledger has no run of it.
    status, run = await scientist.api(f"dshare/api/runs/{run_id}")
    assert status == 200, run
    assert (run["mock"], run["state"], run["outcome"]) == (True, "finished", "succeeded")
    assert run["dataset_ids"] == [DATASET] and run["lease_ids"] == []
    decided = {o["path"]: (o["decision"], o["checks"]) for o in run["outputs"]}
    assert decided[f"mock-runs/{run_id}/mockout/summary.json"] == ("released", [])
    status, runs = await scientist.api("dshare/api/runs")
    mine = [r for r in runs["items"] if r["id"] == run_id]
    assert len(mine) == 1 and mine[0]["mock"] is True
    status, log = await scientist.api(f"dshare/api/runs/{run_id}/logs/job-1")
    assert status == 200 and "read 1000 mock rows" in log, log
    shutil.rmtree(home / "mock-runs")


async def test_a_mock_run_naming_someone_elses_lease_is_refused(deployment, logins):
    """uio-scientist leases the real payments; uib-scientist names that lease id in a mock
    submission: refused before anything runs, nothing of the lease is used."""
    owner_side = await _session(deployment, logins, "uio-scientist")
    out, errors = await owner_side.run_code(
        "from dshare_server.session import lease\n"
        f"l = lease({DATASET!r}, hours=1, purpose='mock attack test')\n"
        "print('LEASE', l['id'])\n"
    )
    assert not errors, (out, errors)
    lease_id = next(line for line in out.splitlines() if line.startswith("LEASE ")).split()[1]

    attacker = await _session(deployment, logins, USER)
    await _put(attacker, "mock-attack.yaml", WORKFLOW.format(volume=lease_id))
    out, errors = await attacker.run_code(
        "%load_ext dshare_server\n"
        "run = %dshare_run --mock mock-attack.yaml\n"
        "print('RUN', getattr(run, 'id', None), getattr(run, 'state', None))\n"
    )
    assert not errors, (out, errors)
    assert (
        f"volume id `{lease_id}` is neither a dataset of the catalog nor one of your leases" in out
    ), out
    _status, page = await owner_side.api("dshare/api/leases?scope=mine")
    for lease in page["items"]:
        if lease["id"] == lease_id:
            await owner_side.api(f"dshare/api/leases/{lease_id}/release", "POST")

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

import asyncio
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


# Whose servers this module started: stopped when it ends, so none outlives the hub at
# the session's end (an account whose server still runs cannot be removed).
async def _mock_run(session: HubSession, workflow: str) -> tuple[str, str, str]:
    """`%dshare_run --mock` of `workflow` in a new kernel: the run's id and state ("None"
    for both when nothing started) and what the kernel printed."""
    await session.put_text("mock-workflow.yaml", workflow)
    out, errors = await session.run_code(
        "%load_ext dshare_server\n"
        "run = %dshare_run --mock mock-workflow.yaml\n"
        "print('RUN', getattr(run, 'id', None), getattr(run, 'state', None))\n"
    )
    assert not errors, (out, errors)
    _, run_id, state = next(line for line in out.splitlines() if line.startswith("RUN ")).split()
    return run_id, state, out


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


async def test_a_scientist_without_a_lease_previews_and_runs_on_the_mock(
    deployment, logins, sign_in
):
    home = deployment.layout.homes / USER
    scientist = await sign_in(USER)
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

    await scientist.put_text("mock_job.py", JOB)
    run_id, state, out = await _mock_run(scientist, WORKFLOW.format(volume=DATASET))
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
    preview_ids = {r[3] for r in preview["rows"]}  # nameOrig, as the preview showed it
    assert len(preview_ids) == 5 and not real_ids & preview_ids
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
    # Another user of the same broker finds no such run, nor its log.
    neighbour = await sign_in("uib-admin")
    status, body = await neighbour.api(f"dshare/api/runs/{run_id}")
    assert status == 404 and "outputs" not in json.dumps(body), body
    status, body = await neighbour.api(f"dshare/api/runs/{run_id}/logs/job-1")
    assert status == 404 and "mock rows" not in str(body), body
    status, listed = await neighbour.api("dshare/api/runs")
    assert status == 200 and run_id not in json.dumps(listed), listed
    shutil.rmtree(home / "mock-runs")


async def test_a_mock_run_naming_someone_elses_lease_is_refused(deployment, logins, sign_in):
    """uio-scientist leases the real payments; uib-scientist names that lease id in a mock
    submission: refused before anything runs, nothing of the lease is used."""
    owner_side = await sign_in("uio-scientist")
    out, errors = await owner_side.run_code(
        "from dshare_server.session import lease\n"
        f"l = lease({DATASET!r}, hours=1, purpose='mock attack test')\n"
        "print('LEASE', l['id'])\n"
    )
    assert not errors, (out, errors)
    lease_id = next(line for line in out.splitlines() if line.startswith("LEASE ")).split()[1]

    attacker = await sign_in(USER)
    run_id, _state, out = await _mock_run(attacker, WORKFLOW.format(volume=lease_id))
    assert run_id == "None", out
    assert (
        f"volume id `{lease_id}` is neither a dataset of the catalog nor one of your leases" in out
    ), out
    _status, page = await owner_side.api("dshare/api/leases?scope=mine")
    for lease in page["items"]:
        if lease["id"] == lease_id:
            await owner_side.api(f"dshare/api/leases/{lease_id}/release", "POST")


PROBE_WORKFLOW = """\
name: mock-probe
jobs:
- command: 'python3 mock_probe.py'
  volumes:
  - id: 'uis-payments'
    name: 'payments'
    path: '/data/payments'
"""
PROBE = """\
import json, os
targets = json.load(open('probe-targets.json'))
def attempt(path):
    try:
        if os.path.isdir(path):
            return 'LISTED ' + ' '.join(sorted(os.listdir(path))[:20])
        with open(path, 'rb') as f:
            return 'READ ' + f.read(4000).decode('latin-1')
    except Exception as e:
        return type(e).__name__
seen = {name: attempt(path) for name, path in targets.items()}
os.makedirs('mockout', exist_ok=True)
# Ways out of ~/mock-runs: links to files and folders outside, written through.
for name, target in (('passwd-link', '/etc/passwd'), ('away', targets['another home'])):
    try:
        os.symlink(target, 'mockout/' + name)
    except OSError as e:
        seen['symlink ' + name] = type(e).__name__
try:
    with open('mockout/away/planted-by-mock-job.txt', 'w') as f:
        f.write('planted')
    seen['write through link'] = 'WROTE'
except OSError as e:
    seen['write through link'] = type(e).__name__
json.dump(seen, open('mockout/probe.json', 'w'))
print(json.dumps(seen))
"""


async def test_a_mock_job_reads_nothing_real_and_writes_only_under_mock_runs(
    deployment, logins, sign_in
):
    """The job of a mock run is the scientist's code too: it tries the owner's real table
    of the very dataset it mocks, the broker's and executor's state, interactive views
    and another user's home, and links its outputs out of ~/mock-runs. It reads its mock
    (the probe works) and nothing else; no real row leaves; nothing lands outside."""
    layout = deployment.layout
    home = layout.homes / USER
    other = layout.homes / "uio-scientist"
    real = layout.storage_root("UiS") / "payments" / "transactions.csv"
    targets = {
        "the mock": "/data/payments/transactions.csv",
        "the real table": str(real),
        "the real dataset dir": str(real.parent),
        "UiS storage root": str(layout.storage_root("UiS")),
        "UiS broker state": str(layout.org_dir("UiS")),
        "the executor's state": str(layout.executor_dir),
        "interactive views": str(layout.views),
        "another home": str(other),
        "the scientist's real home": str(home),
    }
    real_ids = {r["nameOrig"] for r in csv.DictReader(io.StringIO(real.read_text()))}
    assert len(real_ids) > 100

    def leaked(text: str) -> set[str]:
        return {i for i in re.findall(r"C\d{9}", text) if i in real_ids}

    # The scanner proves itself on a planted real id first.
    planted = sorted(real_ids)[0]
    assert leaked(f"x,{planted},y") == {planted}

    scientist = await sign_in(USER)
    await _no_lease_of(scientist, DATASET)
    await scientist.put_text("mock_probe.py", PROBE)
    await scientist.put_text("probe-targets.json", json.dumps(targets))
    before = {p for p in other.rglob("*")}
    run_id, state, out = await _mock_run(scientist, PROBE_WORKFLOW)
    assert state == "succeeded", out
    delivered = home / "mock-runs" / run_id
    try:
        seen = json.loads((delivered / "mockout" / "probe.json").read_text())
        # The probe works: it reads its own mock, a header and mock ids.
        header = ",".join(c["name"] for c in PAYMENT_COLUMNS)
        assert seen["the mock"].startswith("READ " + header), seen["the mock"]
        for name in targets:
            if name != "the mock":
                assert not seen[name].startswith(("READ", "LISTED")), (name, seen[name])
        assert seen["write through link"] != "WROTE"
        # No real row in anything the run gave the scientist: files, log, run view.
        status, log = await scientist.api(f"dshare/api/runs/{run_id}/logs/job-1")
        assert status == 200, log
        status, view = await scientist.api(f"dshare/api/runs/{run_id}")
        assert status == 200, view
        # (the probe's log is one JSON line, which the client parses)
        texts = [log if isinstance(log, str) else json.dumps(log), json.dumps(view), out]
        for path in delivered.rglob("*"):
            assert not path.is_symlink(), f"a link was delivered: {path}"
            if path.is_file():
                texts.append(path.read_text(errors="replace"))
        assert not set().union(*(leaked(t) for t in texts))
        assert sorted(str(p.relative_to(delivered)) for p in delivered.rglob("*")) == [
            "MOCK.txt",
            "mockout",
            "mockout/probe.json",
        ]
        # Nothing written outside ~/mock-runs/<id>: not in the home, not in another's.
        assert not any(home.rglob("planted-by-mock-job.txt"))
        assert {p for p in other.rglob("*")} - before == set()  # (its own may go)
    finally:
        shutil.rmtree(home / "mock-runs", ignore_errors=True)


async def test_a_mock_runs_folder_linked_to_another_home_delivers_nothing_there(
    deployment, logins, sign_in
):
    """The scientist replaces ~/mock-runs with a link to another user's home before the
    run ends: delivery writes as the scientist, so it fails there and says so; the other
    home gets nothing."""
    layout = deployment.layout
    home = layout.homes / USER
    other = layout.homes / "uio-scientist"
    scientist = await sign_in(USER)
    await _no_lease_of(scientist, DATASET)
    shutil.rmtree(home / "mock-runs", ignore_errors=True)
    out, errors = await scientist.run_code(
        f"import os\nos.symlink({str(other)!r}, os.path.expanduser('~/mock-runs'))\n"
        "print('LINKED', os.path.islink(os.path.expanduser('~/mock-runs')))\n"
    )
    assert not errors and "LINKED True" in out, (out, errors)
    await scientist.put_text("mock_job.py", JOB)
    before = {p for p in other.rglob("*")}
    try:
        run_id, _state, out = await _mock_run(scientist, WORKFLOW.format(volume=DATASET))
        assert run_id.startswith("M-"), out
        status, view = await scientist.api(f"dshare/api/runs/{run_id}")
        assert status == 200, view
        assert any(
            f"mock-runs/{run_id}/mockout/summary.json could not be written to the home" in w
            for w in view["warnings"]
        ), view
        assert {p for p in other.rglob("*")} - before == set()  # (its own may go)
        assert not (other / run_id).exists()
    finally:
        (home / "mock-runs").unlink(missing_ok=True)


async def test_the_synthesizer_is_the_owners_alone_from_a_scientists_kernel(
    deployment, logins, sign_in
):
    """A scientist (of another org, and of the owner org) asks for the synthesizer from
    their kernel through their own server: refused, and the dataset's ranges unchanged."""
    outsider = await sign_in(USER)
    status, before = await outsider.api(f"dshare/api/datasets/{DATASET}")
    assert status == 200, before
    status, body = await outsider.api(f"dshare/api/datasets/{DATASET}/mock/synthesize", "POST", {})
    assert (status, body["code"]) == (403, "FORBIDDEN"), body
    assert body["message"] == (
        "your token lacks the scope custom:dshare:admin; ask an administrator of UiB for the "
        "role that grants it"
    )
    insider = await sign_in("uis-scientist")
    status, body = await insider.api(f"dshare/api/datasets/{DATASET}/mock/synthesize", "POST", {})
    assert (status, body["message"]) == (
        403,
        "your token lacks the scope custom:dshare:admin; ask an administrator of UiS for the "
        "role that grants it",
    ), body
    foreign_admin = await sign_in("uio-admin")
    status, body = await foreign_admin.api(
        f"dshare/api/datasets/{DATASET}/mock/synthesize", "POST", {}
    )
    assert (status, body) == (
        403,
        {
            "code": "NOT_OWNER",
            "message": f"only the owner organization 'UiS' may synthesize the mock of asset "
            f"'{DATASET}'",
        },
    ), body
    status, after = await outsider.api(f"dshare/api/datasets/{DATASET}")
    assert after["columns"] == before["columns"]


async def test_a_scientist_cannot_flood_the_executor_with_mock_runs(deployment, logins, sign_in):
    """Mock runs need no lease; from a kernel the scientist starts four sleeping ones at
    once: three run (Executor.max_mock_runs_per_user), the fourth is refused with what to
    do and leaves no record behind."""
    scientist = await sign_in(USER)
    status, page = await scientist.api("dshare/api/runs")
    assert status == 200, page
    known = {r["id"] for r in page["items"]}
    await scientist.put_text(
        "mock-flood.yaml",
        WORKFLOW.replace("python3 mock_job.py", "sleep 15").format(volume=DATASET),
    )
    out, errors = await scientist.run_code(
        "%load_ext dshare_server\n"
        "for n in range(4):\n"
        "    run = %dshare_run --mock --no-wait mock-flood.yaml\n"
        "    print('RUN', getattr(run, 'id', None))\n"
    )
    assert not errors, (out, errors)
    started = [line.split()[1] for line in out.splitlines() if line.startswith("RUN ")]
    assert len(started) == 4 and started[3] == "None", out
    assert all(run_id.startswith("M-") for run_id in started[:3]), out
    assert (
        "you have 3 mock runs going and at most 3 may run at once; wait for one to finish, "
        "or interrupt the kernel that runs it to cancel it"
    ) in out, out
    # The three end on their own; the refused one was never recorded.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while True:
        status, page = await scientist.api("dshare/api/runs")
        assert status == 200, page
        new = {r["id"]: r["state"] for r in page["items"] if r["id"] not in known}
        if set(new.values()) == {"finished"} or loop.time() > deadline:
            break
        await asyncio.sleep(1)
    assert new == dict.fromkeys(started[:3], "finished"), new
    shutil.rmtree(deployment.layout.homes / USER / "mock-runs", ignore_errors=True)

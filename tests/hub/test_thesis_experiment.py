"""The thesis's experiment 5.3.2, as a UiO scientist runs it from the demo notebook.

A real kernel in the scientist's real server leases the three organizations' corpora,
runs workflow.yaml with %dshare_run (three parallel word counts in bubblewrap sandboxes,
then an aggregating job), and reads result.txt. The counts must match what each owner
recorded when generating its corpus; the run must be on the ledger, the mounts gone.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from hubclient import HubSession

from dshare_hub.demo.content import ORGS, expected_lorem

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_parallel_word_count_across_three_orgs(deployment, logins):
    layout = deployment.layout
    session = HubSession(layout.public_url)
    await session.login("uio-scientist", logins["uio-scientist"])
    await session.start_server()

    out, errors = await session.run_code(
        "import json\n"
        "from dshare_server.session import lease\n"
        "leased = [lease(d, hours=1, purpose='thesis experiment 5.3.2')\n"
        "          for d in ['uis-lorem-corpus', 'uio-lorem-corpus', 'uib-lorem-corpus']]\n"
        "print('LEASES', json.dumps([[l['id'], l['state']] for l in leased]))\n"
        "%load_ext dshare_server\n"
        "run = %dshare_run workflow.yaml\n"
        "print('RUN', run.id, run.state)\n"
        "print(open('result.txt').read())\n"
    )
    assert not errors, (out, errors)
    leases_line = next(line for line in out.splitlines() if line.startswith("LEASES "))
    leased = json.loads(leases_line.removeprefix("LEASES "))
    assert [state for _, state in leased] == ["active"] * 3, out
    run_line = next(line for line in out.splitlines() if line.startswith("RUN "))
    _, run_id, state = run_line.split()
    assert state == "succeeded", out

    counts = dict(line.split(": ") for line in out.splitlines() if line.split(":")[0] in ORGS)
    assert counts == {org: str(expected_lorem(layout.data, org)) for org in ORGS}

    status, run = await session.api(f"dshare/api/runs/{run_id}")
    assert status == 200, run
    assert run["outcome"] == "succeeded"
    assert len(run["lease_ids"]) == 3
    assert [j["state"] for j in run["jobs"]] == ["succeeded"] * 5

    # Every owner's broker removes what it materialized for the run: the lessee's own at
    # once, the other owners on their reaper's next pass (5 s in the demo).
    def leftovers() -> list[str]:
        return [
            org
            for org in ORGS
            if any((layout.org_dir(org) / "broker" / "mounts" / run_id).glob("*"))
        ]

    for _ in range(60):
        if not leftovers():
            break
        await asyncio.sleep(0.5)
    assert leftovers() == [], "mounts left behind after the run ended"

    # The scientist releases the three leases; the ledger records each release.
    released = []
    for lease_id, _ in leased:
        status, body = await session.api(f"dshare/api/leases/{lease_id}/release", "POST", {})
        assert status == 200, body
        released.append(body["state"])
    assert released == ["released"] * 3


async def test_a_job_failing_mid_dag_still_ends_with_mounts_removed(deployment, logins):
    layout = deployment.layout
    session = HubSession(layout.public_url)
    await session.login("uib-scientist", logins["uib-scientist"])
    await session.start_server()

    out, errors = await session.run_code(
        "from dshare_server.session import lease\n"
        "lease('uis-lorem-corpus', hours=1, purpose='failure drill')\n"
    )
    assert not errors, (out, errors)
    # A new kernel: the spawner's IPython startup file has loaded the magic already.
    out, errors = await session.run_code(
        "%%dshare_run\n"
        "name: failure-drill\n"
        "jobs:\n"
        "- command: ls /home/jovyan/uis && exit 3\n"
        "  volumes: [{id: uis-lorem-corpus, name: uis, path: /home/jovyan/uis}]\n"
        "- echo never\n"
        "dags: ['1 >> 2']\n"
    )
    assert not errors, (out, errors)
    status, runs = await session.api("dshare/api/runs")
    assert status == 200, runs
    (run,) = [r for r in runs["items"] if r["name"] == "failure-drill"]
    assert run["outcome"] == "failed"
    assert [(j["name"], j["state"]) for j in run["jobs"]] == [
        ("job-1", "failed"),
        ("job-2", "skipped"),
    ]
    status, log = await session.api(f"dshare/api/runs/{run['id']}/logs/job-1")
    assert status == 200 and "part-000.txt" in log

    mounts = layout.org_dir("UiS") / "broker" / "mounts" / run["id"]
    for _ in range(60):
        if not any(mounts.glob("*")):
            break
        await asyncio.sleep(0.5)
    assert not any(mounts.glob("*")), "UiS kept the failed run's mount"

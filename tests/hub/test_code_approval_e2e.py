"""Owner-approved code, end to end in the embedded deployment with real kernels.

UiS registers a dataset whose policy requires approved code. A UiO scientist leases it;
their run is refused before anything is mounted. They ask for approval with
`%dshare_run --request-approval`; UiS's admin reads the script in the review list and
approves; the run succeeds, and ships only the approved files (a helper module sitting
in the home is not in the sandbox). The script is changed: the run is refused naming
the changed file, and again nothing is mounted. Around it, what an attacker tries: a
forged identity sent straight to the broker, the scientist deciding their own request,
a UiS scientist and UiO's admin deciding.
"""

from __future__ import annotations

import json

import pytest
from approvedcode import SCRIPT, WORKFLOW, prepare_scientist, put, register, run_magic, session

from dshare_hub.broker.runs import SUBMIT_FIELDS

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _mounts(layout) -> set[str]:
    root = layout.org_dir("UiS") / "broker" / "mounts"
    return {str(p.relative_to(root)) for p in root.glob("*/*")} if root.exists() else set()


async def test_changed_code_after_approval_is_refused_before_anything_is_mounted(
    deployment, logins
):
    layout = deployment.layout
    dataset = await register(deployment, logins)
    owner = await session(deployment, logins, "uis-admin")
    scientist = await session(deployment, logins, "uio-scientist")
    await prepare_scientist(scientist, dataset)
    status, before = await scientist.api("dshare/api/runs")
    assert status == 200, before
    runs_before = len(before["items"])

    # No approval yet: refused on the ledger, nothing mounted, no run recorded.
    mounts = _mounts(layout)
    out = await run_magic(scientist)
    assert (
        f"%dshare_run: POLICY_DENIED: dataset(s) {dataset} of UiS require code approved by "
        "UiS, and no code was approved for them yet; request approval (My runs, or "
        "%dshare_run --request-approval)"
    ) in out, out
    assert _mounts(layout) <= mounts
    status, after = await scientist.api("dshare/api/runs")
    assert len(after["items"]) == runs_before

    # The request: the broker hashed the files the command names, not the helper.
    out = await run_magic(scientist, "--request-approval")
    assert "code approval requested from UiS for " + dataset in out, out
    assert "1 file(s): count.py)" in out, out
    status, mine = await scientist.api("dshare/api/approvals")
    assert status == 200, mine
    request = next(r for r in mine["items"] if r["dataset_ids"] == [dataset])
    assert request["state"] == "pending"

    # Who may not decide: the scientist (no admin role), a UiS scientist, UiO's admin.
    for who, code, message in (
        (
            scientist,
            "FORBIDDEN",
            "your token lacks the scope custom:dshare:admin; ask an administrator of UiO for "
            "the role that grants it",
        ),
        (
            await session(deployment, logins, "uis-scientist"),
            "FORBIDDEN",
            "your token lacks the scope custom:dshare:admin; ask an administrator of UiS for "
            "the role that grants it",
        ),
        (
            await session(deployment, logins, "uio-admin"),
            "NOT_OWNER",
            f"only the owner organization 'UiS' may decide on code approval request "
            f"'{request['id']}'; you submitted as 'UiO'",
        ),
    ):
        status, body = await who.api(
            f"dshare/api/approvals/{request['id']}/decision", "POST", {"decision": "approve"}
        )
        assert (status, body["code"], body["message"]) == (403, code, message), body

    # UiS's admin sees the spec, the file and the diff (against nothing: a first request).
    status, review = await owner.api("dshare/api/approvals?scope=review")
    assert status == 200, review
    item = next(r for r in review["items"] if r["id"] == request["id"])
    assert item["spec"] == WORKFLOW.format(dataset=dataset)
    assert item["files"] == [
        {"path": "count.py", "sha256": request["files"][0]["sha256"], "content": SCRIPT}
    ]
    assert "+++ b/count.py" in item["diff"] and '+print("helper shipped:"' in item["diff"]
    status, body = await owner.api(
        f"dshare/api/approvals/{request['id']}/decision", "POST", {"decision": "approve"}
    )
    assert (status, body["state"]) == (200, "approved"), body

    # Approved: the run succeeds, with only the approved file in its sandbox.
    out = await run_magic(scientist)
    assert "RUN " in out and " succeeded" in out, out
    assert "rows files: 1" in out and "helper shipped: False" in out, out

    # A forged identity sent to the broker from the kernel, past the server extension.
    out, errors = await scientist.run_code(
        "import json, os, urllib.request, urllib.error\n"
        "req = urllib.request.Request(os.environ['DSHARE_BROKER_URL'] + 'api/v1/runs',\n"
        "    data=json.dumps({'spec': open('approved-workflow.yaml').read(), 'workspace': '',\n"
        "                     'code_sha256': '0' * 64}).encode(),\n"
        "    headers={'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN'],\n"
        "             'Content-Type': 'application/json'}, method='POST')\n"
        "try:\n"
        "    urllib.request.urlopen(req)\n"
        "except urllib.error.HTTPError as e:\n"
        "    print('FORGED', e.code, e.read().decode())\n"
    )
    assert not errors, (out, errors)
    line = next(x for x in out.splitlines() if x.startswith("FORGED "))
    status_text, body_text = line.removeprefix("FORGED ").split(" ", 1)
    assert status_text == "400"
    assert json.loads(body_text)["message"] == (
        f"code_sha256: unknown field; allowed fields: {', '.join(SUBMIT_FIELDS)}"
    )

    # The script changes after approval: refused, naming it; nothing mounted.
    await put(scientist, "count.py", SCRIPT + "exec(open('helper.py').read())\n")
    status, before = await scientist.api("dshare/api/runs")
    mounts = _mounts(layout)
    out = await run_magic(scientist)
    assert (
        f"%dshare_run: POLICY_DENIED: dataset(s) {dataset} of UiS require code approved by "
        "UiS; this run's code is not approved (files changed since approval "
        f"'{request['id']}': count.py); request approval again"
    ) in out, out
    assert _mounts(layout) <= mounts
    status, after = await scientist.api("dshare/api/runs")
    assert len(after["items"]) == len(before["items"])

    # Asked again, the owner's admin sees what changed against the approved version and
    # denies it; the scientist reads why.
    out = await run_magic(scientist, "--request-approval")
    assert "code approval requested from UiS" in out, out
    status, review = await owner.api("dshare/api/approvals?scope=review")
    second = [r for r in review["items"] if r["dataset_ids"] == [dataset]][-1]
    assert second["previous"]["id"] == request["id"]
    assert "+exec(open('helper.py').read())" in second["diff"], second["diff"]
    status, body = await owner.api(
        f"dshare/api/approvals/{second['id']}/decision", "POST", {"decision": "deny"}
    )
    assert (status, body["code"], body["message"]) == (
        400,
        "INVALID_ARGUMENT",
        "reason: say why the code is denied: the scientist reads it",
    ), body
    status, body = await owner.api(
        f"dshare/api/approvals/{second['id']}/decision",
        "POST",
        {"decision": "deny", "reason": "runs a file that is not approved"},
    )
    assert (status, body["state"]) == (200, "denied"), body
    status, mine = await scientist.api("dshare/api/approvals")
    denied = next(r for r in mine["items"] if r["id"] == second["id"])
    assert (denied["state"], denied["reason"]) == ("denied", "runs a file that is not approved")

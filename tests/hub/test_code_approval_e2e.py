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
from approvedcode import SCRIPT, WORKFLOW, prepare_scientist, register, run_magic

from dshare_hub.broker.runs import SUBMIT_FIELDS

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _mounts(layout) -> set[str]:
    root = layout.org_dir("UiS") / "broker" / "mounts"
    return {str(p.relative_to(root)) for p in root.glob("*/*")} if root.exists() else set()


async def test_changed_code_after_approval_is_refused_before_anything_is_mounted(
    deployment, logins, sign_in
):
    layout = deployment.layout
    dataset = await register(deployment, logins)
    owner = await sign_in("uis-admin")
    scientist = await sign_in("uio-scientist")
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
            await sign_in("uis-scientist"),
            "FORBIDDEN",
            "your token lacks the scope custom:dshare:admin; ask an administrator of UiS for "
            "the role that grants it",
        ),
        (
            await sign_in("uio-admin"),
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
    await scientist.put_text("count.py", SCRIPT + "exec(open('helper.py').read())\n")
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


HOSTILE = """\
name: hostile-count
{top}jobs:
- name: count
  command: {command}
  volumes:
  - id: '{dataset}'
    name: 'rows'
    path: '/data/rows'
"""
APPROVED = """\
import csv, os
print("approved ran; rows files:", len(os.listdir("/data/rows")))
"""
EVIL = 'import csv\nprint("EVIL ran")\n'
# The approved script imports csv: a csv.py next to it would be imported instead of the
# standard library's, and run.
PLANTED = 'print("PLANTED csv.py ran")\n'
# Straight to the broker from the kernel, past the server extension: a hand-made workspace
# whose archive holds the approved script, then another script under the same name (the
# later one wins when an archive is unpacked), and the planted csv.py.
FORGED_TAR_RUN = """\
import asyncio, base64, io, tarfile
from dshare_server.broker_client import from_environment
broker = from_environment()
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz") as tar:
    for name, body in (("hcount.py", {approved!r}), ("hcount.py", {evil!r}),
                       ("csv.py", {planted!r})):
        info = tarfile.TarInfo(name)
        info.size = len(body.encode())
        tar.addfile(info, io.BytesIO(body.encode()))
reply = await broker.submit_run({{"spec": open({workflow!r}).read(),
                                  "workspace": base64.b64encode(buf.getvalue()).decode()}})
run_id = reply["run"]["id"]
for _ in range(240):
    run = await broker.get_run(run_id)
    if run["state"] == "finished":
        break
    await asyncio.sleep(0.5)
print("FORGED RUN", run["state"], run["outcome"], run["message"], run["warnings"])
print(await broker.run_logs(run_id, "count"))
"""


def _forged(workflow: str) -> str:
    return FORGED_TAR_RUN.format(approved=APPROVED, evil=EVIL, planted=PLANTED, workflow=workflow)


async def test_a_scientist_cannot_run_unapproved_code_past_an_approval(deployment, logins, sign_in):
    """From the kernel, with an approval of their own for `hcount.py` over one dataset, the
    scientist tries to get other code to read it: files Python runs unasked, a forged
    archive, env and arguments, a symbolic link, another dataset; and another user tries
    with their own version of the script."""
    dataset = await register(deployment, logins)
    other = await register(deployment, logins)
    plain = await register(deployment, logins, approved_code=False)
    owner = await sign_in("uis-admin")
    me = await sign_in("uio-scientist")
    command = "python hcount.py"
    for name, ds, top, cmd in (
        ("hostile-workflow.yaml", dataset, "", command),
        ("hostile-plain.yaml", plain, "", command),
        ("hostile-other.yaml", other, "", command),
        ("hostile-env.yaml", dataset, "env:\n  PYTHONPATH: /tmp\n", command),
        ("hostile-args.yaml", dataset, "", command + " --all"),
    ):
        await me.put_text(name, HOSTILE.format(top=top, command=cmd, dataset=ds))
    await me.put_text("hcount.py", APPROVED)
    await me.put_text("csv.py", PLANTED)
    out, errors = await me.run_code(
        "from dshare_server.session import lease\n"
        + "".join(f"lease({d!r}, hours=1, purpose='hostile')\n" for d in (dataset, other, plain))
    )
    assert not errors, (out, errors)
    try:
        # The probes prove themselves over data that needs no approval, where the whole
        # home ships: the planted csv.py runs, and the forged archive's second script.
        out = await run_magic(me, workflow="hostile-plain.yaml")
        assert " succeeded" in out and "approved ran" in out and "PLANTED" in out, out
        out, errors = await me.run_code(_forged("hostile-plain.yaml"))
        assert not errors, (out, errors)
        assert "FORGED RUN finished succeeded" in out and "EVIL ran" in out, out

        out = await run_magic(me, "--request-approval", workflow="hostile-workflow.yaml")
        assert "1 file(s): hcount.py)" in out, out
        status, mine = await me.api("dshare/api/approvals")
        request = next(r for r in mine["items"] if r["dataset_ids"] == [dataset])
        status, body = await owner.api(
            f"dshare/api/approvals/{request['id']}/decision", "POST", {"decision": "approve"}
        )
        assert (status, body["state"]) == (200, "approved"), body

        # Approved: the script runs, the planted files are not in the sandbox.
        out = await run_magic(me, workflow="hostile-workflow.yaml")
        assert " succeeded" in out and "approved ran; rows files: 1" in out, out
        assert "PLANTED" not in out, out

        # A forged archive straight to the broker: the approved bytes run, nothing else.
        out, errors = await me.run_code(_forged("hostile-workflow.yaml"))
        assert not errors, (out, errors)
        assert "FORGED RUN finished succeeded" in out and "approved ran" in out, out
        assert "EVIL" not in out and "PLANTED" not in out, out

        refusal = (
            f"%dshare_run: POLICY_DENIED: dataset(s) {dataset} of UiS require code approved by "
            "UiS; this run's code is not approved ({what}); request approval again"
        )
        # Env and arguments change what the script does: the jobs are not the approved ones.
        for name in ("hostile-env.yaml", "hostile-args.yaml"):
            out = await run_magic(me, workflow=name)
            what = f"the jobs changed since approval '{request['id']}' (the files did not)"
            assert refusal.format(what=what) in out, out

        # The approval is for that dataset: the same code over another one needs its own.
        out = await run_magic(me, workflow="hostile-other.yaml")
        assert (
            f"%dshare_run: POLICY_DENIED: dataset(s) {other} of UiS require code approved by "
            "UiS, and no code was approved for them yet; request approval (My runs, or "
            "%dshare_run --request-approval)"
        ) in out, out

        # The approved script replaced by a link to another: links are never code.
        out, errors = await me.run_code(
            "import os\n"
            f"open('evil.py', 'w').write({EVIL!r})\n"
            "os.remove('hcount.py')\n"
            "os.symlink('evil.py', 'hcount.py')\n"
        )
        assert not errors, (out, errors)
        out = await run_magic(me, workflow="hostile-workflow.yaml")
        what = f"files changed since approval '{request['id']}': hcount.py (removed)"
        assert refusal.format(what=what) in out, out
        assert "EVIL" not in out, out

        # Another user with a lease of their own and their own version of the script.
        them = await sign_in("uib-scientist")
        await them.put_text(
            "hostile-workflow.yaml", HOSTILE.format(top="", command=command, dataset=dataset)
        )
        await them.put_text("hcount.py", APPROVED + EVIL)
        out, errors = await them.run_code(
            "from dshare_server.session import lease\n"
            f"lease({dataset!r}, hours=1, purpose='hostile')\n"
        )
        assert not errors, (out, errors)
        out = await run_magic(them, workflow="hostile-workflow.yaml")
        what = f"files changed since approval '{request['id']}': hcount.py"
        assert refusal.format(what=what) in out, out
        assert "EVIL" not in out, out

        # Nor can the owner open the data to notebooks, where any code would read it.
        status, body = await owner.api(
            f"dshare/api/datasets/{dataset}", "PATCH", {"policy": {"interactive": True}}
        )
        assert (status, body["code"], body["message"]) == (
            400,
            "INVALID_ARGUMENT",
            "policy.interactive: must be false when code_approval_required is true: "
            "interactive use lets any notebook code read the data, unapproved; turn one of "
            "them off",
        ), body
    finally:
        out, errors = await me.run_code(
            "import os\n"
            "for p in ('csv.py', 'evil.py', 'hcount.py'):\n"
            "    if os.path.lexists(p):\n"
            "        os.remove(p)\n"
        )
        assert not errors, (out, errors)


# What the job sandbox shows besides the workspace (system dirs and the Python it runs) is
# the host's own: a file the scientist could write there from their kernel or terminal
# would run in an approved job without being part of its identity.
WRITABLE_PROBE = """\
import os
from dshare_server.workflow.sandbox import SYSTEM_DIRS, _python_dirs
def writable(tops):
    found, seen = [], 0
    for top in tops:
        for root, dirs, files in os.walk(top):
            for path in [root, *(os.path.join(root, f) for f in files)]:
                seen += 1
                if not os.path.islink(path) and os.access(path, os.W_OK):
                    found.append(path)
    return found, seen
home, _ = writable([os.path.expanduser("~")])
print("HOME WRITABLE", len(home) > 0)
found, seen = writable([*SYSTEM_DIRS, *_python_dirs()])
print("SCANNED", seen)
print("WRITABLE", found[:20])
"""


async def test_a_scientist_cannot_plant_files_in_what_the_sandbox_shows(
    deployment, logins, sign_in
):
    me = await sign_in("uio-scientist")
    out, errors = await me.run_code(WRITABLE_PROBE, timeout=170)
    assert not errors, (out, errors)
    # The probe finds what is writable: the home is.
    assert "HOME WRITABLE True" in out, out
    scanned = int(next(x for x in out.splitlines() if x.startswith("SCANNED ")).split()[1])
    assert scanned > 1000, out
    assert "WRITABLE []" in out, out

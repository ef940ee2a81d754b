"""A UiS dataset whose policy requires approved code, and a workflow over it, for the
code-approval suites (kernel end to end, browser)."""

from __future__ import annotations

import grp
import os
import pwd
import uuid

from hubclient import HubSession, signed_in

WORKFLOW = """\
name: approved-count
jobs:
- name: count
  command: python count.py
  volumes:
  - id: '{dataset}'
    name: 'rows'
    path: '/data/rows'
"""
SCRIPT = """\
import os
print("rows files:", len(os.listdir("/data/rows")))
print("helper shipped:", os.path.exists("helper.py"))
"""
HELPER = "print('not approved')\n"


async def register(deployment, logins, *, approved_code: bool = True) -> str:
    """A new UiS dataset (one small CSV) that only approved code may read (any code with
    `approved_code=False`); its id."""
    layout = deployment.layout
    slug = f"uis-approved-{uuid.uuid4().hex[:6]}"
    directory = layout.storage_root("UiS") / slug
    directory.mkdir()
    (directory / "rows.csv").write_text("id,word\n1,alpha\n2,beta\n")
    broker = pwd.getpwnam(layout.broker_user("UiS"))
    data_gid = grp.getgrnam(layout.data_group("UiS")).gr_gid
    for path, mode in ((directory, 0o2750), (directory / "rows.csv", 0o640)):
        os.chown(path, broker.pw_uid, data_gid)
        os.chmod(path, mode)
    admin = await signed_in(layout.public_url, "uis-admin", logins["uis-admin"])
    status, body = await admin.api(
        "dshare/api/datasets",
        "POST",
        {
            "id": slug,
            "name": f"UiS rows {slug[-6:]} (approved code only)",
            "description": "rows read only by code UiS approved",
            "storage": {"type": "local", "details": {"path": str(directory)}},
            "policy": {"max_duration_s": 86400, "code_approval_required": approved_code},
        },
    )
    assert status in (200, 201), body
    assert body["policy"]["code_approval_required"] is approved_code
    return slug


async def prepare_scientist(hub: HubSession, dataset: str) -> None:
    """The workflow, its script and an unapproved helper in the home; a lease on `dataset`."""
    await hub.put_text("approved-workflow.yaml", WORKFLOW.format(dataset=dataset))
    await hub.put_text("count.py", SCRIPT)
    await hub.put_text("helper.py", HELPER)
    out, errors = await hub.run_code(
        "from dshare_server.session import lease\n"
        f"lease({dataset!r}, hours=1, purpose='approved code')\n"
    )
    assert not errors, (out, errors)


async def run_magic(
    hub: HubSession, extra: str = "", workflow: str = "approved-workflow.yaml"
) -> str:
    """`%dshare_run <workflow> <extra>` in a new kernel; what it printed (and the log of
    the job `count` when the run started)."""
    out, errors = await hub.run_code(
        "%load_ext dshare_server\n"
        f"run = %dshare_run {workflow} {extra}\n"
        "if run is not None:\n"
        "    print('RUN', run.id, run.state)\n"
        "    print(run.logs('count'))\n"
    )
    assert not errors, (out, errors)
    return out

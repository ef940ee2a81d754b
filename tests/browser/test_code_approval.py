"""Owner-approved code in the browser: a UiB scientist asks from My runs for approval of a
workflow over a UiS dataset that requires it; UiS's admin reads the diff in the Admin
tab and denies it with a reason, which the scientist then reads in My runs. Asked again,
the admin approves, and the scientist's run goes through."""

from __future__ import annotations

import pytest
from approvedcode import prepare_scientist, register, run_magic
from hubclient import signed_in
from playwright.async_api import expect

pytestmark = pytest.mark.asyncio(loop_scope="session")

WORKFLOW_FILE = "approved-workflow.yaml"


async def _request_in_my_runs(lab) -> None:
    await lab.goto()
    explorer = await lab.open_explorer()
    await explorer.get_by_test_id("dshare-tab-runs").click()
    mine = explorer.get_by_test_id("dshare-my-approvals")
    await mine.get_by_test_id("dshare-approval-path").fill(WORKFLOW_FILE)
    await mine.get_by_test_id("dshare-request-approval").click()
    asked = f"Asked UiS to approve the code of {WORKFLOW_FILE}."
    await expect(lab.toasts().filter(has_text=asked)).to_be_visible()


async def _review_item(lab, dataset: str):
    await lab.goto()
    explorer = await lab.open_explorer()
    await explorer.get_by_test_id("dshare-tab-admin").click()
    item = explorer.locator('[data-testid="dshare-code-approval"]').filter(has_text=dataset)
    await expect(item).to_have_count(1)
    return item


async def test_admin_denies_then_approves_code_and_the_scientist_sees_why(
    open_lab, deployment, logins
):
    dataset = await register(deployment, logins)
    hub = await signed_in(deployment.layout.public_url, "uib-scientist", logins["uib-scientist"])
    await prepare_scientist(hub, dataset)

    scientist = await open_lab("uib-scientist")
    await _request_in_my_runs(scientist)
    await scientist.shot("approval-requested")

    admin = await open_lab("uis-admin")
    item = await _review_item(admin, dataset)
    await expect(item).to_contain_text(f"uib-scientist (UiB) wants to run code over {dataset}")
    await expect(item).to_contain_text("no earlier approved version")
    diff = item.get_by_test_id("dshare-code-diff")
    await expect(diff).to_contain_text("+++ b/count.py")
    await expect(diff).to_contain_text('+print("helper shipped:", os.path.exists("helper.py"))')
    await admin.shot("code-review")
    await item.get_by_test_id("dshare-code-deny").click()
    confirm = item.get_by_test_id("dshare-code-deny-confirm")
    await expect(confirm).to_be_disabled()
    await item.get_by_test_id("dshare-code-deny-reason").fill("print the row count only")
    await confirm.click()
    denied = f"Denied the code of uib-scientist (UiB) for {dataset}."
    await expect(admin.toasts().filter(has_text=denied)).to_be_visible()
    await expect(item).to_have_count(0)
    await admin.shot("code-denied")

    await scientist.goto()
    explorer = await scientist.open_explorer()
    await explorer.get_by_test_id("dshare-tab-runs").click()
    request = explorer.locator('[data-testid="dshare-my-approval"]').filter(has_text=dataset)
    await expect(request).to_have_attribute("data-state", "denied")
    await expect(request).to_contain_text("denied by UiS")
    await expect(request.get_by_test_id("dshare-approval-reason")).to_have_text(
        "Reason: print the row count only"
    )
    await scientist.shot("denial-reason")
    out = await run_magic(hub)
    assert "POLICY_DENIED" in out and "no code was approved for them yet" in out, out

    # Asked again (a denied request does not block a new one); this time approved.
    await _request_in_my_runs(scientist)
    item = await _review_item(admin, dataset)
    await item.get_by_test_id("dshare-code-approve").click()
    approved = f"Approved the code of uib-scientist (UiB) for {dataset}."
    await expect(admin.toasts().filter(has_text=approved)).to_be_visible()
    await admin.shot("code-approved")
    out = await run_magic(hub)
    assert "RUN " in out and " succeeded" in out, out
    assert "helper shipped: False" in out, out
    for lab in (admin, scientist):
        assert lab.page_errors == [] and lab.dialogs == []

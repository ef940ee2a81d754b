"""Held outputs in the browser: UiS's admin reviews what a UiB scientist's job copied from
UiS's corpus (denies one copy with a reason, releases the other), and the scientist reads
in My runs what left the run and why the rest did not."""

from __future__ import annotations

import shutil

import pytest
from heldrun import run_copying_workflow
from hubclient import HubSession
from playwright.async_api import expect

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_admin_decides_held_outputs_and_the_scientist_reads_why(open_lab, deployment, logins):
    requester = HubSession(deployment.layout.public_url)
    await requester.login("uib-scientist", logins["uib-scientist"])
    await requester.start_server()
    run_id = await run_copying_workflow(requester, "uis-lorem-corpus")

    admin = await open_lab("uis-admin")
    await admin.goto()
    explorer = await admin.open_explorer()
    await explorer.get_by_test_id("dshare-tab-admin").click()
    run = explorer.locator(f'[data-testid="dshare-held-run"][data-run-id="{run_id}"]')
    await expect(run).to_contain_text("uib-scientist (UiB) · run review-me")
    copy_b = run.locator('[data-testid="dshare-held-item"][data-path="review/copy-b.txt"]')
    await expect(copy_b.get_by_test_id("dshare-held-why")).to_contain_text("verbatim_input")
    await admin.shot("held-outputs")

    await copy_b.get_by_role("button", name="Deny review/copy-b.txt of run review-me").click()
    confirm = copy_b.get_by_test_id("dshare-deny-confirm")
    await expect(confirm).to_be_disabled()
    await copy_b.get_by_test_id("dshare-deny-reason").fill("the raw corpus")
    await confirm.click()
    denied = "Denied review/copy-b.txt of uib-scientist\u2019s run review-me."
    await expect(admin.toasts().filter(has_text=denied)).to_be_visible()
    await expect(copy_b).to_have_count(0)
    await run.get_by_role("button", name="Release review/copy-a.txt of run review-me").click()
    released = "Released review/copy-a.txt of uib-scientist\u2019s run review-me."
    await expect(admin.toasts().filter(has_text=released)).to_be_visible()
    await expect(run).to_have_count(0)
    await admin.shot("held-outputs-decided")

    scientist = await open_lab("uib-scientist")
    await scientist.goto()
    mine = await scientist.open_explorer()
    await mine.get_by_test_id("dshare-tab-runs").click()
    item = mine.locator(f'[data-testid="dshare-run-item"][data-run-id="{run_id}"]')
    status = {
        "review/count.txt": "released into your home",
        "review/copy-a.txt": "released into your home, approved by UiS",
        "review/copy-b.txt": "denied by UiS: the raw corpus",
    }
    for path, text in status.items():
        output = item.locator(f'[data-testid="dshare-output-item"][data-path="{path}"]')
        await expect(output.get_by_test_id("dshare-output-status")).to_have_text(text)
    await scientist.shot("run-outputs")
    # The released copy goes again: later suites scan homes for raw data.
    shutil.rmtree(deployment.layout.homes / "uib-scientist" / "review")
    for lab in (admin, scientist):
        assert lab.page_errors == [] and lab.dialogs == []

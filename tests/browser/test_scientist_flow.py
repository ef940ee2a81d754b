"""A UiO scientist's whole path through the browser: log in, search, open a UiS dataset,
lease it, add it to workflow.yaml, run the workflow from a notebook and read the result,
then find the run and its logs in the sidebar and release the lease."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

import pytest
from playwright.async_api import expect

pytestmark = pytest.mark.asyncio(loop_scope="session")

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "dataexplorer.png"


def listing(text: str) -> dict[str, int]:
    """File name -> size from `ls -la` output."""
    found = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 9 and re.fullmatch(r"part-\d{3}\.txt", parts[-1]):
            found[parts[-1]] = int(parts[4])
    return found


async def test_scientist_leases_adds_to_workflow_and_runs_it(open_lab, deployment):
    lab = await open_lab("uio-scientist")
    page = lab.page
    # A folder of its own, so the demo's workflow.yaml in the home stays as it is.
    folder = f"browser-{uuid.uuid4().hex[:8]}"
    status, _ = await lab.api(f"api/contents/{folder}", "PUT", {"type": "directory"})
    assert status == 201
    await lab.goto(folder)
    await expect(page.locator(".jp-FileBrowser .jp-BreadCrumbs")).to_contain_text(folder)

    explorer = await lab.open_explorer()
    await expect(explorer.get_by_test_id("dshare-me")).to_have_text("uio-scientist · UiO")
    await expect(explorer.get_by_test_id("dshare-dataset-item").first).to_be_visible()
    await lab.shot("datasets")

    await explorer.get_by_test_id("dshare-search").fill("lorem corpus")
    items = explorer.get_by_test_id("dshare-dataset-item")
    await expect(items.filter(has_text="mobile payments")).to_have_count(0)
    shown = {await i.get_attribute("data-dataset-id") for i in await items.all()}
    assert {"uis-lorem-corpus", "uio-lorem-corpus", "uib-lorem-corpus"} <= shown, shown
    await lab.shot("search-lorem")

    details = await lab.open_dataset("uis-lorem-corpus")
    await expect(details.get_by_test_id("dshare-dataset-name")).to_have_text("UiS lorem corpus")
    owner_files = sorted((deployment.layout.data / "uis" / "lorem-corpus").iterdir())
    for f in owner_files:
        await expect(details).to_contain_text(f.name)
    await lab.shot("details")

    await details.get_by_test_id("dshare-lease-duration").fill("1")
    await details.get_by_test_id("dshare-lease-purpose").fill("browser end-to-end test")
    await details.get_by_test_id("dshare-lease-submit").click()
    my_lease = explorer.get_by_test_id("dshare-my-lease")
    await expect(my_lease).to_contain_text(re.compile(r"Your lease ends in (59m|1h)"))
    status, leases = await lab.api("dshare/api/leases?scope=mine")
    assert status == 200, leases
    lease = next(
        x for x in leases["items"] if x["asset_id"] == "uis-lorem-corpus" and x["state"] == "active"
    )
    assert (lease["duration_s"], lease["purpose"]) == (3600, "browser end-to-end test")
    await lab.shot("leased")

    await my_lease.get_by_test_id("dshare-add-to-workflow").click()
    await expect(lab.toasts().filter(has_text="Added uis-lorem-corpus")).to_have_text(
        f"Added uis-lorem-corpus (/home/jovyan/uis-lorem-corpus) to {folder}/workflow.yaml."
    )
    await expect(page.get_by_role("tab", name="workflow.yaml")).to_be_visible()
    await expect(page.locator(".jp-FileEditor")).to_contain_text(lease["id"])
    status, doc = await lab.api(f"api/contents/{folder}/workflow.yaml")
    assert status == 200, doc
    assert f"  - id: {lease['id']}" in doc["content"]
    assert "path: /home/jovyan/uis-lorem-corpus" in doc["content"]
    # The picture for the README shows the sidebar and the file, not a toast sliding away.
    for close in await lab.toasts().locator(".jp-Notification-Toast-Close").all():
        await close.click()
    await expect(lab.toasts()).to_have_count(0)
    readme_shot = await lab.shot("added-to-workflow")
    if os.environ.get("DSHARE_UPDATE_SCREENSHOTS"):
        shutil.copyfile(readme_shot, DOCS_SCREENSHOT)

    # A new notebook in the same folder, from the launcher, as a person opens one.
    await page.locator(".lm-TabBar-addButton:visible").first.click()
    await page.locator(".jp-LauncherCard[data-category='Notebook']:visible").first.click()
    notebook = page.locator(".jp-NotebookPanel:visible")
    # The kernel must be connected, not only the toolbar drawn: JupyterLab drops a cell run
    # before that without a word.
    await expect(page.locator(".jp-StatusBar-Widget")).to_contain_text(
        "Python 3 (ipykernel) | Idle", timeout=60_000
    )
    editor = notebook.locator(".jp-Cell .cm-content").first
    await editor.click()
    await expect(editor).to_be_focused()
    await page.keyboard.insert_text(
        "%load_ext dshare_server\n"
        "run = %dshare_run workflow.yaml\n"
        "print('RUN', run.id, run.state)\n"
        "%dshare_logs $run.id job-1"
    )
    await expect(editor).to_contain_text("%dshare_logs $run.id job-1")
    await page.keyboard.press("Shift+Enter")
    await expect(notebook.locator(".jp-InputPrompt").first).not_to_have_text("[ ]:")
    output = notebook.locator(".jp-Cell").first.locator(".jp-OutputArea")
    await expect(output).to_contain_text(owner_files[-1].name, timeout=120_000)
    await expect(output).to_contain_text("workflow: succeeded - 1/1 jobs (1 succeeded)")
    text = await output.inner_text()
    # What the job saw is the owner's data, which this server only knows as a skeleton.
    assert listing(text) == {f.name: f.stat().st_size for f in owner_files}, text
    run_id, run_state = re.search(r"RUN (\S+) (\S+)", text).groups()  # type: ignore[union-attr]
    assert run_state == "succeeded"
    await lab.shot("notebook-result")

    await explorer.get_by_test_id("dshare-tab-runs").click()
    run_item = explorer.locator(f'[data-testid="dshare-run-item"][data-run-id="{run_id}"]')
    await expect(run_item).to_contain_text("succeeded")
    job = run_item.get_by_test_id("dshare-job-item")
    await expect(job).to_have_attribute("data-state", "succeeded")
    await job.get_by_test_id("dshare-job-logs").click()
    await expect(explorer.get_by_test_id("dshare-logs")).to_contain_text(owner_files[0].name)
    await lab.shot("runs-and-logs")

    await explorer.get_by_test_id("dshare-tab-leases").click()
    item = explorer.locator(f'[data-testid="dshare-lease-item"][data-lease-id="{lease["id"]}"]')
    await expect(item).to_have_attribute("data-state", "active")
    await item.get_by_test_id("dshare-release").click()
    await expect(item).to_have_attribute("data-state", "released")
    await lab.shot("released")
    status, after = await lab.api("dshare/api/leases?scope=mine&dataset=uis-lorem-corpus")
    assert status == 200
    assert {x["id"]: x["state"] for x in after["items"]}[lease["id"]] == "released"
    assert lab.page_errors == [] and lab.dialogs == []

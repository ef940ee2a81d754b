"""Text from the ledger is data, never markup: a dataset whose every free-text field carries
HTML and script payloads renders as the literal text, in the list, the details, the skeleton
tab, the retire dialog and an admin's pending requests, and nothing runs or gets injected."""

from __future__ import annotations

import uuid

import pytest
from hubclient import HubSession
from playwright.async_api import expect

from dshare_hub.demo import isolation

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Each payload would set window.__dshareInjected (or open an alert) if it ever ran.
NAME = "<img src=x onerror=\"window.__dshareInjected='name'\">Evil <b>bold</b> & co"
DESCRIPTION = (
    "<script>window.__dshareInjected='description'</script>"
    '<svg onload="window.__dshareInjected=\'svg\'"></svg> "quoted" '
    '<a href="javascript:alert(1)">x</a>'
)
COLUMN = "<iframe src=\"javascript:window.__dshareInjected='column'\"></iframe>"
COLUMN_TYPE = "<u onmouseover=alert(2)>t</u>"
SKELETON_PATH = "<img src=x onerror=alert(3)>.csv"
PURPOSE = "<img src=x onerror=\"window.__dshareInjected='purpose'\"> research"


async def assert_nothing_ran(lab) -> None:
    page = lab.page
    assert await page.evaluate("window.__dshareInjected === undefined")
    injected = await page.evaluate(
        "document.querySelectorAll(\"img[src='x'], iframe, [onerror], [onload], "
        "[onmouseover], a[href^='javascript']\").length"
    )
    assert injected == 0
    assert lab.dialogs == []
    assert lab.page_errors == []


async def test_html_in_ledger_text_renders_inertly(open_lab, deployment, logins):
    tag = f"xss-{uuid.uuid4().hex[:8]}"
    directory = deployment.layout.storage_root("UiS") / tag
    directory.mkdir(parents=True)
    # Under UiS's storage root, owned as provisioning owns raw data there.
    isolation.secure(deployment.layout)
    lab = await open_lab("uis-admin")
    status, dataset = await lab.api(
        "dshare/api/datasets",
        "POST",
        {
            "name": NAME,
            "description": DESCRIPTION,
            "tags": [tag],
            "columns": [{"name": COLUMN, "type": COLUMN_TYPE, "tags": []}],
            "skeleton": [{"path": SKELETON_PATH, "size": 5}],
            "policy": {"approval_required": True, "max_duration_s": 3600},
            "storage": {"type": "local", "details": {"path": str(directory)}},
        },
    )
    assert status == 201, dataset
    asker = HubSession(deployment.layout.public_url)
    await asker.login("uio-scientist", logins["uio-scientist"])
    await asker.start_server()
    status, pending = await asker.api(
        "dshare/api/leases",
        "POST",
        {"dataset_id": dataset["id"], "duration_s": 600, "purpose": PURPOSE},
    )
    assert (status, pending["state"]) == (201, "pending"), pending

    await lab.goto()
    explorer = await lab.open_explorer()
    await explorer.get_by_test_id("dshare-filter-tag").fill(tag)
    item = explorer.get_by_test_id("dshare-dataset-item")
    await expect(item).to_have_count(1)
    await expect(item.get_by_test_id("dshare-dataset-name")).to_have_text(NAME)
    await lab.shot("list")
    await assert_nothing_ran(lab)

    details = await lab.open_dataset(dataset["id"])
    await expect(details.get_by_test_id("dshare-dataset-name")).to_have_text(NAME)
    await expect(details.get_by_test_id("dshare-details-description")).to_have_text(DESCRIPTION)
    await expect(details.get_by_test_id("dshare-columns").locator("tbody td").nth(0)).to_have_text(
        COLUMN
    )
    await expect(details.get_by_test_id("dshare-columns").locator("tbody td").nth(1)).to_have_text(
        COLUMN_TYPE
    )
    await expect(details).to_contain_text(SKELETON_PATH)
    await details.get_by_test_id("dshare-columns").hover()
    # Long unbroken text wraps inside the sidebar instead of pushing it sideways.
    overflow = await lab.page.evaluate(
        "(() => { const w = document.getElementById('dshare-data-explorer');"
        " return w.scrollWidth - w.clientWidth; })()"
    )
    assert overflow <= 0, f"the sidebar's content is {overflow}px wider than the sidebar"
    await lab.shot("details")
    await assert_nothing_ran(lab)

    await details.get_by_test_id("dshare-open-skeleton").click()
    await expect(lab.page.get_by_role("tab", name=f"{NAME} (skeleton)")).to_be_visible()
    await expect(lab.page.locator(".jp-MainAreaWidget:visible")).to_contain_text(SKELETON_PATH)
    await lab.shot("skeleton-tab")
    await assert_nothing_ran(lab)

    await details.get_by_test_id("dshare-retire").click()
    dialog = lab.page.locator(".jp-Dialog")
    await expect(dialog.locator(".jp-Dialog-header")).to_have_text(f"Retire {NAME}?")
    await lab.shot("retire-dialog")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_have_count(0)
    await assert_nothing_ran(lab)

    await explorer.get_by_test_id("dshare-tab-admin").click()
    request = explorer.locator(
        f'[data-testid="dshare-pending-item"][data-lease-id="{pending["id"]}"]'
    )
    await expect(request).to_contain_text(f"wants {NAME} for 10 minutes")
    await expect(request).to_contain_text(f"purpose: {PURPOSE}")
    await lab.shot("pending-request")
    await assert_nothing_ran(lab)

    # Cancelling the dialog retired nothing.
    status, still = await lab.api(f"dshare/api/datasets/{dataset['id']}")
    assert (status, still["state"]) == (200, "active")
    status, _ = await asker.api(f"dshare/api/leases/{pending['id']}/release", "POST", {})
    assert status == 200

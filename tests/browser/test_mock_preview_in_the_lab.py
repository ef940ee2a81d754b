"""A scientist without a lease opens another organization's tabular dataset and sees its
mock preview in the details: the real schema's columns, synthetic rows in the owner's
ranges, labelled as mock; a text dataset shows no mock. The screenshot is the README's."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.async_api import expect

from dshare_hub.demo.content import PAYMENT_COLUMNS

pytestmark = pytest.mark.asyncio(loop_scope="session")

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "mock-preview.png"


def js_text(value: object) -> str:
    """A JSON value as the page's String() shows it (12.0 is "12", true is "true")."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


async def test_the_details_show_a_labelled_mock_preview_without_a_lease(open_lab):
    lab = await open_lab("uib-scientist")
    # A scientist without a lease: whatever earlier suites left of this one's is released.
    status, leases = await lab.api("dshare/api/leases?scope=mine")
    assert status == 200, leases
    for held in leases["items"]:
        if held["asset_id"] == "uis-payments" and held["state"] in ("active", "pending"):
            status, body = await lab.api(f"dshare/api/leases/{held['id']}/release", "POST", {})
            assert status == 200, body
    status, leases = await lab.api("dshare/api/leases?scope=mine")
    assert not [
        x
        for x in leases["items"]
        if x["asset_id"] == "uis-payments" and x["state"] in ("active", "pending")
    ], "this test is about a scientist without a lease"

    details = await lab.open_dataset("uis-payments", search="payments")
    preview = details.get_by_test_id("dshare-mock-preview")
    await expect(preview.get_by_test_id("dshare-mock-label")).to_have_text(
        "Mock data — synthetic, not the real rows"
    )
    table = preview.get_by_test_id("dshare-mock-table")
    await expect(table.get_by_test_id("dshare-mock-row")).to_have_count(10)
    heads = await table.locator("th").all_inner_texts()
    assert heads == [c["name"] for c in PAYMENT_COLUMNS]
    # The same rows the broker's API gives: the browser shows the broker's mock, as text.
    status, mock = await lab.api("dshare/api/datasets/uis-payments/mock?rows=10")
    assert status == 200, mock
    first = await table.get_by_test_id("dshare-mock-row").first.locator("td").all_inner_texts()
    assert first == [js_text(v) for v in mock["rows"][0]]
    assert re.fullmatch(r"C\d{9}", first[3])
    assert first[1] in ("PAYMENT", "TRANSFER", "CASH_OUT", "DEBIT")
    await expect(preview).to_contain_text("%dshare_run --mock")
    # For the README: a wider sidebar (as a person drags it) shows every mock column, and
    # no toast covers it.
    page = lab.page
    for close in await lab.toasts().locator(".jp-Notification-Toast-Close").all():
        await close.click()
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    box = await handle.bounding_box()
    if box is not None:
        await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        await page.mouse.down()
        await page.mouse.move(box["x"] + 560, box["y"] + box["height"] / 2, steps=8)
        await page.mouse.up()
    await table.scroll_into_view_if_needed()
    shot = await lab.shot("mock-preview")
    if os.environ.get("DSHARE_UPDATE_SCREENSHOTS"):
        shutil.copyfile(shot, DOCS_SCREENSHOT)

    text = await lab.open_dataset("uis-lorem-corpus", search="lorem")
    await expect(text.get_by_test_id("dshare-dataset-name")).to_have_text("UiS lorem corpus")
    await expect(text.get_by_test_id("dshare-mock-preview")).to_have_count(0)

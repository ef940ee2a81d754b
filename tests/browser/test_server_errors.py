"""When the server refuses, the person reads the server's own message in the UI.

The owner shortens a dataset's longest lease while a scientist has its page open; the page
still offers the old limit, so the broker (not the form) refuses the longer request."""

from __future__ import annotations

import uuid

import pytest
from hubclient import HubSession
from playwright.async_api import expect

from dshare_hub.demo import isolation

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_policy_refusal_from_the_ledger_is_shown_with_its_message(
    open_lab, deployment, logins
):
    asset_id = f"browser-policy-{uuid.uuid4().hex[:8]}"
    directory = deployment.layout.storage_root("UiS") / asset_id
    directory.mkdir(parents=True)
    # Under UiS's storage root, owned as provisioning owns raw data there.
    isolation.secure(deployment.layout)
    owner = HubSession(deployment.layout.public_url)
    await owner.login("uis-admin", logins["uis-admin"])
    await owner.start_server()
    status, created = await owner.api(
        "dshare/api/datasets",
        "POST",
        {
            "id": asset_id,
            "name": "UiS weather stations",
            "description": "Readings per station.",
            "policy": {"max_duration_s": 86400},
            "storage": {"type": "local", "details": {"path": str(directory)}},
        },
    )
    assert status == 201, created

    lab = await open_lab("uio-scientist")
    await lab.goto()
    details = await lab.open_dataset(asset_id)
    await expect(details).to_contain_text("Duration (hours, at most 1 day)")

    status, patched = await owner.api(
        f"dshare/api/datasets/{asset_id}", "PATCH", {"policy": {"max_duration_s": 3600}}
    )
    assert (status, patched["policy"]["max_duration_s"]) == (200, 3600), patched

    await details.get_by_test_id("dshare-lease-duration").fill("2")
    await details.get_by_test_id("dshare-lease-purpose").fill("station trends")
    await details.get_by_test_id("dshare-lease-submit").click()
    message = (
        f"POLICY_DENIED: duration_s 7200 exceeds the max_duration_s 3600 of asset "
        f"'{asset_id}'; ask for a shorter lease"
    )
    await expect(details.get_by_test_id("dshare-form-error")).to_have_text(
        f"The server refused the lease: {message}"
    )
    # JupyterLab cuts a toast at 140 characters; the form above holds the whole message.
    await expect(lab.toasts().filter(has_text="Requesting a lease failed")).to_contain_text(
        f"Requesting a lease failed: {message}"[:120]
    )
    await lab.shot("refused")
    status, mine = await lab.api(f"dshare/api/leases?scope=mine&dataset={asset_id}")
    assert (status, mine["items"]) == (200, []), "a refused lease was stored"

    # Reloading shows the owner's new limit, and a request within it is granted.
    await lab.page.get_by_test_id("dshare-refresh").click()
    await expect(details).to_contain_text("Duration (hours, at most 1 hour)")
    await details.get_by_test_id("dshare-lease-duration").fill("1")
    await details.get_by_test_id("dshare-lease-purpose").fill("station trends")
    await details.get_by_test_id("dshare-lease-submit").click()
    await expect(details.get_by_test_id("dshare-my-lease")).to_contain_text("Your lease ends in")
    await lab.shot("granted-within-new-limit")
    status, mine = await lab.api(f"dshare/api/leases?scope=mine&dataset={asset_id}")
    assert status == 200 and [x["state"] for x in mine["items"]] == ["active"], mine
    status, _ = await lab.api(f"dshare/api/leases/{mine['items'][0]['id']}/release", "POST", {})
    assert status == 200
    assert lab.page_errors == [] and lab.dialogs == []

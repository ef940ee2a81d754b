"""A UiS admin in the browser: decides a UiB scientist's request for an approval-only
dataset, and registers a new dataset through the form (after the broker refuses a bad
storage path, with its own words next to the field)."""

from __future__ import annotations

import json
import uuid

import pytest
from hubclient import HubSession
from playwright.async_api import expect

from dshare_hub.demo import isolation

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_admin_approves_a_pending_request(open_lab, deployment, logins):
    requester = HubSession(deployment.layout.public_url)
    await requester.login("uib-scientist", logins["uib-scientist"])
    await requester.start_server()
    status, asked = await requester.api(
        "dshare/api/leases",
        "POST",
        {"dataset_id": "uis-patient-visits", "duration_s": 7200, "purpose": "visit statistics"},
    )
    assert status == 201, asked
    assert asked["state"] == "pending"

    lab = await open_lab("uis-admin")
    await lab.goto()
    explorer = await lab.open_explorer()
    await expect(explorer.get_by_test_id("dshare-me")).to_have_text("uis-admin · UiS · admin")
    await explorer.get_by_test_id("dshare-tab-admin").click()
    item = explorer.locator(f'[data-testid="dshare-pending-item"][data-lease-id="{asked["id"]}"]')
    await expect(item).to_contain_text("uib-scientist (UiB) wants UiS patient visits for 2 hours")
    await expect(item).to_contain_text("purpose: visit statistics")
    await lab.shot("pending-request")

    await item.get_by_role(
        "button", name="Approve uib-scientist's lease on UiS patient visits"
    ).click()
    # The notification's apostrophe is typographic (U+2019).
    approved = "Approved uib-scientist\u2019s lease on UiS patient visits."
    await expect(lab.toasts().filter(has_text=approved)).to_be_visible()
    await expect(item).to_have_count(0)
    await lab.shot("approved")

    status, mine = await requester.api("dshare/api/leases?scope=mine&dataset=uis-patient-visits")
    assert status == 200, mine
    granted = {x["id"]: x for x in mine["items"]}[asked["id"]]
    assert granted["state"] == "active" and granted["expires_at"]
    # Exclusive dataset: give it back so other suites find it free.
    status, released = await requester.api(f"dshare/api/leases/{asked['id']}/release", "POST", {})
    assert (status, released["state"]) == (200, "released")
    assert lab.page_errors == [] and lab.dialogs == []


async def test_admin_registers_a_dataset_through_the_form(open_lab, deployment):
    tag = uuid.uuid4().hex[:8]
    name = f"UiS sensor logs {tag}"
    directory = deployment.layout.storage_root("UiS") / f"sensor-logs-{tag}"
    directory.mkdir(parents=True)
    (directory / "day-1.csv").write_text("time,value\n1,2\n")
    # Under UiS's storage root, owned as provisioning owns raw data there.
    isolation.secure(deployment.layout)

    lab = await open_lab("uis-admin")
    await lab.goto()
    explorer = await lab.open_explorer()
    await explorer.get_by_test_id("dshare-tab-admin").click()
    await explorer.get_by_test_id("dshare-register").click()
    form = explorer.get_by_test_id("dshare-dataset-form")
    await form.get_by_test_id("dshare-field-name").fill(name)
    await form.get_by_test_id("dshare-field-description").fill("Hourly readings from the lab.")
    await form.get_by_test_id("dshare-field-tags").fill("sensors, timeseries")
    await form.get_by_test_id("dshare-field-columns").fill("time:integer\nvalue:number:sensitive")
    await form.get_by_test_id("dshare-field-skeleton").fill("day-1.csv 16")
    await form.get_by_test_id("dshare-field-maxDurationHours").fill("12")
    await form.get_by_test_id("dshare-field-allowedOrgs").fill("UiO")
    await form.get_by_test_id("dshare-field-approvalRequired").check()
    path_field = form.get_by_test_id("dshare-field-storage.path")
    await path_field.fill(f"sensor-logs-{tag}")
    await form.get_by_test_id("dshare-dataset-submit").click()

    refusal = (
        "INVALID_ARGUMENT: storage.details.path: local storage needs an absolute directory "
        "path (field: storage.details.path)"
    )
    await expect(form.get_by_test_id("dshare-form-error")).to_have_text(refusal)
    await expect(path_field).to_have_attribute("aria-invalid", "true")
    # JupyterLab cuts a toast at 140 characters; the form holds the whole message.
    await expect(lab.toasts().filter(has_text="Registering the dataset failed")).to_contain_text(
        f"Registering the dataset failed: {refusal}"[:120]
    )
    await lab.shot("refused-relative-path")
    status, found = await lab.api(f"dshare/api/datasets?q={tag}")
    assert (status, found["items"]) == (200, []), "a refused registration stored something"

    await path_field.fill(str(directory))
    await form.get_by_test_id("dshare-dataset-submit").click()
    await expect(lab.toasts().filter(has_text=f"Registered {name}.")).to_be_visible()
    await expect(form).to_have_count(0)
    await lab.shot("registered")

    await explorer.get_by_test_id("dshare-tab-datasets").click()
    status, found = await lab.api(f"dshare/api/datasets?q={tag}")
    assert status == 200 and len(found["items"]) == 1, found
    dataset = found["items"][0]
    details = await lab.open_dataset(dataset["id"], search=tag)
    await expect(details.get_by_test_id("dshare-dataset-name")).to_have_text(name)
    policy = details.get_by_test_id("dshare-policy")
    await expect(policy).to_contain_text("Longest lease: 12 hours")
    await expect(policy).to_contain_text("Organizations: UiO")
    await expect(policy).to_contain_text("Owner approves each lease")
    await expect(details.get_by_test_id("dshare-history-entry")).to_contain_text(
        "uis-admin (UiS) registered"
    )
    await lab.shot("registered-details")

    assert dataset["owner_org"] == "UiS"
    assert dataset["tags"] == ["sensors", "timeseries"]
    assert dataset["columns"] == [
        {"name": "time", "type": "integer", "tags": []},
        {"name": "value", "type": "number", "tags": ["sensitive"]},
    ]
    assert dataset["skeleton"] == [{"path": "day-1.csv", "size": 16}]
    assert dataset["policy"]["max_duration_s"] == 12 * 3600
    assert dataset["policy"]["allowed_orgs"] == ["UiO"]
    assert dataset["policy"]["approval_required"] is True
    # Where the data lives is sealed by the broker and never comes back.
    assert str(directory) not in json.dumps(dataset)
    assert lab.page_errors == [] and lab.dialogs == []

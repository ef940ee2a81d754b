"""A person at a browser: Chromium driven by Playwright through JupyterHub's login form,
JupyterLab and the DataExplorer sidebar, with a screenshot of every step."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, Locator, Page, ViewportSize, expect

# What the issue prescribes for Debian's Chromium in a container without a GPU or a sandbox.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT: ViewportSize = {"width": 1400, "height": 900}

# Spawning a server and loading JupyterLab's bundles on 2 cores takes a while the first time.
SPAWN_TIMEOUT_MS = 120_000
UI_TIMEOUT_MS = 30_000


@dataclass
class Lab:
    """One user's JupyterLab in its own browser profile."""

    context: BrowserContext
    page: Page
    base: str  # the hub's public URL, ending in /
    user: str
    shots: Path
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    _shot_count: int = 0

    @property
    def lab_url(self) -> str:
        return f"{self.base}user/{self.user}/lab"

    async def login(self, password: str) -> None:
        """Type the credentials into the hub's login form and wait for JupyterLab."""
        await self.page.goto(f"{self.base}hub/login")
        await self.page.fill("#username_input", self.user)
        await self.page.fill("#password_input", password)
        await self.shot("login-form")
        await self.page.click("#login_submit")
        await self.page.wait_for_url(
            re.compile(rf"/user/{re.escape(self.user)}/lab"), timeout=SPAWN_TIMEOUT_MS
        )
        await self.wait_for_lab()
        # The "get Jupyter news?" prompt would cover the page in every screenshot.
        status, _ = await self.api(
            "lab/api/settings/@jupyterlab/apputils-extension:notification",
            "PUT",
            {"raw": json.dumps({"fetchNews": "false"})},
        )
        assert status == 204, f"could not turn off the news prompt: {status}"

    async def wait_for_lab(self) -> None:
        await self.page.get_by_test_id("dshare-explorer").wait_for(
            state="attached", timeout=SPAWN_TIMEOUT_MS
        )

    async def goto(self, tail: str = "") -> None:
        """Open JupyterLab (optionally at lab/tree/<tail>) with a fresh workspace."""
        url = f"{self.lab_url}/tree/{tail}?reset" if tail else f"{self.lab_url}?reset"
        await self.page.goto(url)
        await self.wait_for_lab()

    async def open_explorer(self) -> Locator:
        explorer = self.page.get_by_test_id("dshare-explorer")
        # The sidebar tab toggles: click it only when the panel is not shown already.
        if not await explorer.is_visible():
            await self.page.get_by_role("tab", name="DataExplorer").click()
        await expect(explorer).to_be_visible()
        return explorer

    async def open_dataset(self, dataset_id: str, search: str | None = None) -> Locator:
        explorer = await self.open_explorer()
        back = explorer.get_by_role("button", name="Back to datasets")
        if await back.is_visible():
            await back.click()
        if search is not None:
            await explorer.get_by_test_id("dshare-search").fill(search)
        item = explorer.locator(
            f'[data-testid="dshare-dataset-item"][data-dataset-id="{dataset_id}"]'
        )
        await item.get_by_role("button").click()
        details = explorer.get_by_test_id("dshare-details")
        await expect(details.get_by_test_id("dshare-policy")).to_be_visible()
        return details

    def toasts(self) -> Locator:
        return self.page.locator(".Toastify__toast")

    async def shot(self, name: str) -> Path:
        self._shot_count += 1
        path = self.shots / f"{self._shot_count:02d}-{name}.png"
        await self.page.screenshot(path=str(path))
        return path

    async def api(
        self, path: str, method: str = "GET", payload: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        """Call the user's server with the browser's cookies, as the page's scripts do."""
        cookies = await self.context.cookies(f"{self.base}user/{self.user}/")
        xsrf = next((c["value"] for c in cookies if c["name"] == "_xsrf"), "")
        response = await self.context.request.fetch(
            f"{self.base}user/{self.user}/{path.lstrip('/')}",
            method=method,
            data=json.dumps(payload) if payload is not None else None,
            headers={"X-XSRFToken": xsrf, "Content-Type": "application/json"},
        )
        text = await response.text()
        try:
            return response.status, json.loads(text) if text else None
        except ValueError:
            return response.status, text

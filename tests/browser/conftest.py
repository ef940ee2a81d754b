"""Browser fixtures: Debian's Chromium with a fresh profile per person, screenshots kept
with the test output ($DSHARE_TEST_OUTPUT, else the session's temporary directory)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from browserlab import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, Lab
from playwright.async_api import Dialog, Playwright, async_playwright

OpenLab = Callable[[str], Awaitable[Lab]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install it with `bash scripts/system-deps.sh test`",
            pytrace=False,
        )
    return CHROMIUM


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def screenshot_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = os.environ.get("DSHARE_TEST_OUTPUT")
    root = Path(base) / "browser" if base else tmp_path_factory.mktemp("browser")
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest_asyncio.fixture(loop_scope="session")
async def open_lab(
    request: pytest.FixtureRequest,
    playwright: Playwright,
    chromium_path: str,
    deployment,
    logins: dict[str, str],
    screenshot_root: Path,
    tmp_path: Path,
) -> AsyncIterator[OpenLab]:
    """Log a person in through the hub's form in their own, fresh Chromium profile."""
    labs: list[Lab] = []
    test_dir = screenshot_root / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(test_dir, ignore_errors=True)

    async def open_(user: str) -> Lab:
        profile = tmp_path / f"profile-{user}"
        context = await playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium_path,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
            color_scheme="light",
        )
        context.set_default_timeout(30_000)
        page = context.pages[0] if context.pages else await context.new_page()
        shots = test_dir / user
        shots.mkdir(parents=True, exist_ok=True)
        lab = Lab(context, page, deployment.layout.public_url, user, shots)
        page.on("pageerror", lambda e: lab.page_errors.append(str(e)))

        async def on_dialog(dialog: Dialog) -> None:
            if dialog.type == "beforeunload":
                # JupyterLab asks before leaving a page with unsaved notebooks; leave it.
                await dialog.accept()
                return
            # Anything else (alert, confirm, prompt) came from a page script: record it.
            lab.dialogs.append(f"{dialog.type}: {dialog.message}")
            await dialog.dismiss()

        page.on("dialog", on_dialog)
        labs.append(lab)
        await lab.login(logins[user])
        return lab

    yield open_
    for lab in labs:
        # The last picture of each page, whatever happened: the first thing to look at
        # when a step failed.
        try:
            await lab.shot("final")
        finally:
            await lab.context.close()

"""Fixtures shared across suites: one real embedded deployment (JupyterHub, proxy, three
brokers) per session, started only when a test asks for it, and the demo logins."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Helpers shared by the hub and browser suites (a person's view of the hub).
sys.path.insert(0, str(Path(__file__).parent / "support"))

from ports import free_port, free_port_block

from dshare_hub.demo.deployment import Deployment
from dshare_hub.demo.layout import DemoLayout


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The embedded deployment as `dshare demo` runs it: every user an OS user of their own.

    Its root is under /tmp (pytest's own tmp dir is 0700 root, which no user's server could
    enter), and every OS account it makes carries a per-session prefix, so a demo on the
    same machine is never touched; those accounts are removed at the end.
    """
    root = Path(tempfile.mkdtemp(prefix="dshare-test-", dir="/tmp"))
    root.chmod(0o711)
    layout = DemoLayout(
        root=root / "data",
        port=free_port(),
        hub_port=free_port(),
        broker_base_port=free_port_block(3),
        proxy_api_port=free_port(),
        executor_port=free_port(),
        account_prefix=f"dt{secrets.token_hex(2)}-",
    )
    # The hub's log stays where only root reads it.
    out_dir = Path(os.environ.get("DSHARE_TEST_OUTPUT") or tmp_path_factory.mktemp("dshare"))
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / f"hub-{root.name}.log"
    running = Deployment(layout)
    try:
        with log_path.open("w") as log:
            running.log_file = log
            with running:
                running.log_path = log_path  # type: ignore[attr-defined]
                yield running
    finally:
        running.remove_accounts()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def logins(deployment: Deployment) -> dict[str, str]:
    pairs = (line.split() for line in deployment.layout.logins_file.read_text().splitlines())
    return {name: password for name, password in pairs}

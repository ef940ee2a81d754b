"""Fixtures shared across suites: one real embedded deployment (JupyterHub, proxy, three
brokers) per session, started only when a test asks for it, and the demo logins."""

from __future__ import annotations

import os
import sys
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
    root = tmp_path_factory.mktemp("dshare")
    layout = DemoLayout(
        root=root / "data",
        port=free_port(),
        hub_port=free_port(),
        broker_base_port=free_port_block(3),
        proxy_api_port=free_port(),
    )
    out_dir = Path(os.environ.get("DSHARE_TEST_OUTPUT", root))
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / f"hub-{root.name}.log"
    with log_path.open("w") as log, Deployment(layout, log_file=log) as running:
        running.log_path = log_path  # type: ignore[attr-defined]
        yield running


@pytest.fixture(scope="session")
def logins(deployment: Deployment) -> dict[str, str]:
    pairs = (line.split() for line in deployment.layout.logins_file.read_text().splitlines())
    return {name: password for name, password in pairs}

"""Fixtures of the proof suite: its own hub with killable brokers, counts, recorded figures.

`make test` runs this suite at its quick counts; `make proof` sets DSHARE_PROOF_FULL=1 for
the heavier ones and DSHARE_PROOF_RESULTS to a directory where each test leaves what it
measured, for scripts/proof.sh to turn into docs/proof-report.md.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from proof_support import FULL, Record
from proof_world import World, start_world


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Record:
    """record(name, figures): keep what a test measured for the proof report."""

    def save(name: str, figures: dict[str, Any]) -> None:
        target = os.environ.get("DSHARE_PROOF_RESULTS")
        if not target:
            return
        path = Path(target)
        path.mkdir(parents=True, exist_ok=True)
        figures = {"test": request.node.nodeid, "full": FULL, **figures}
        (path / f"{name}.json").write_text(json.dumps(figures, indent=2, sort_keys=True))

    return save


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A hub with UiS and UiO brokers that this module alone uses (and may kill)."""
    running = start_world(tmp_path_factory.mktemp("proof-world"))
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def people(world: World) -> dict[str, str]:
    """Tokens of the four kinds of signed-in caller."""
    return {
        "uis_admin": world.make_user("siri", "UiS", "admin"),
        "uis_sci": world.make_user("sven", "UiS", "scientist"),
        "uio_admin": world.make_user("olga", "UiO", "admin"),
        "uio_sci": world.make_user("ola", "UiO", "scientist"),
    }

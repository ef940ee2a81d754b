"""Fixtures of the proof suite: its own hub with killable brokers, counts, recorded figures.

`make test` runs this suite at its quick counts; `make proof` sets DSHARE_PROOF_FULL=1 for
the heavier ones and DSHARE_PROOF_RESULTS to a directory where each test leaves what it
measured, for scripts/proof.sh to turn into docs/proof-report.md.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from world import World, start_world

FULL = os.environ.get("DSHARE_PROOF_FULL") == "1"


def count(quick: int, full: int) -> int:
    """How many iterations: `quick` inside make test, `full` under make proof."""
    return full if FULL else quick


Record = Callable[[str, dict[str, Any]], None]


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


def register(
    world: World,
    token: str,
    dataset_id: str,
    data_dir: Path,
    *,
    exclusive: bool = False,
    max_duration_s: int = 3600,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Register a local dataset of UiS as its admin; return the Dataset."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "words.txt").write_text("fjord fjord mountain\n")
    body = {
        "id": dataset_id,
        "name": f"proof {dataset_id}",
        "description": "proof suite data",
        "tags": ["proof"],
        "policy": {"max_duration_s": max_duration_s, "exclusive": exclusive},
        "storage": {"type": "local", "details": {"path": str(data_dir), **(details or {})}},
    }
    reply = world.broker("UiS", "POST", "/datasets", token, body)
    assert reply.status == 201, reply.text
    return dict(reply.body)

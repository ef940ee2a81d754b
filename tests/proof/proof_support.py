"""Helpers of the proof suite (a uniquely named module: every suite has a conftest)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proof_world import World

FULL = os.environ.get("DSHARE_PROOF_FULL") == "1"


def count(quick: int, full: int) -> int:
    """How many iterations: `quick` inside make test, `full` under make proof."""
    return full if FULL else quick


Record = Callable[[str, dict[str, Any]], None]


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

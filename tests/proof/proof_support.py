"""Helpers of the proof suite (a uniquely named module: every suite has a conftest)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proof_world import World

from dshare_hub.keys import KekSource
from dshare_hub.keys.envelope import decrypt, wrap_aad

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


def data_keys(layout: Any, org: str) -> list[bytes]:
    """The org's plaintext data keys: its key store's wrapped keys opened with its KEK."""
    path = layout.keystore_url(org).removeprefix("sqlite:///")
    if not Path(path).exists():
        return []
    ring = KekSource(kek_file=str(layout.kek_file(org))).keyring()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT asset_id, version, owner_org, kek_id, wrapped FROM dshare_data_keys "
            "WHERE wrapped IS NOT NULL"
        ).fetchall()
    finally:
        conn.close()
    keys = []
    for asset_id, version, owner, kek_id, wrapped in rows:
        kek = ring.get(kek_id)
        assert kek is not None, f"{org}: a data key is wrapped with a KEK its keyring lacks"
        key = decrypt(kek.key, wrapped, wrap_aad(asset_id, owner, version, kek_id))
        assert key is not None, f"{org}: a wrapped data key does not open with its KEK"
        keys.append(key)
    return keys

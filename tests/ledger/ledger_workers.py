"""Process entry points for the race and crash tests (importable by spawned processes)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dshare_hub.ledger import LedgerError
from dshare_hub.ledger.core import LedgerCore
from dshare_hub.ledger.identity import load_identity


def lease_once(
    db: str, identity_dir: str, org: str, actor: str, asset_id: str, barrier: Any, results: Any
) -> None:
    """Wait for every racer, then request one lease; report (actor, outcome, detail)."""
    core = LedgerCore(db)
    identity = load_identity(Path(identity_dir), org)
    try:
        barrier.wait(timeout=120)
        try:
            raw = core.submit(identity, "RequestLease", [asset_id, "600", "race"], actor)
            results.put((actor, "granted", json.loads(raw)["id"]))
        except LedgerError as exc:
            results.put((actor, exc.code, exc.message))
    finally:
        core.close()


def register_forever(db: str, identity_dir: str, org: str, ready: Any) -> None:
    """Commit assets until killed (the crash test kills this process with SIGKILL)."""
    core = LedgerCore(db)
    identity = load_identity(Path(identity_dir), org)
    i = 0
    while True:
        asset = {
            "id": f"crash-{os.getpid()}-{i}",
            "name": "n",
            "storage_type": "local",
            "sealed_storage": "s",
        }
        core.submit(identity, "RegisterAsset", [json.dumps(asset)], "crasher")
        i += 1
        if i == 20:
            ready.set()

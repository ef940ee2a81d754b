"""Helpers shared by the ledger suites (a uniquely named module, not conftest)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dshare_hub.ledger import LedgerError


async def refused(call: Any, code: str, message: str) -> LedgerError:
    """Await `call` and check it is refused with exactly `code` and `message`."""
    with pytest.raises(LedgerError) as info:
        await call
    assert (info.value.code, info.value.message) == (code, message)
    return info.value


def asset_json(asset_id: str, **over: Any) -> str:
    """A valid RegisterAsset argument; keyword arguments replace fields."""
    asset: dict[str, Any] = {
        "id": asset_id,
        "name": f"Dataset {asset_id}",
        "description": "Word counts of a newspaper archive",
        "tags": ["text"],
        "storage_type": "local",
        "sealed_storage": "v1.sealed.Zm9vYmFy",
        "columns": [{"name": "word", "type": "string", "tags": []}],
        "skeleton": [{"path": "data/part-0.csv", "size": 1024}],
        "policy": {"max_duration_s": 3600},
    }
    asset.update(over)
    return json.dumps(asset)

"""Where the reference schemas are: the steering repo's shared/ folder beside this checkout
(as CI lays it out), or $DSHARE_SHARED_DIR."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def schemas_dir() -> Path:
    candidates = [
        Path(os.environ["DSHARE_SHARED_DIR"]) if os.environ.get("DSHARE_SHARED_DIR") else None,
        ROOT.parent / "shared",
        Path("/work/shared"),
    ]
    for shared in candidates:
        if shared is not None and (shared / "schemas").is_dir():
            return shared / "schemas"
    raise FileNotFoundError(
        f"no shared/schemas beside the checkout ({ROOT.parent / 'shared'}): the reference "
        "schemas come from the steering repo's shared/ folder; set DSHARE_SHARED_DIR to it"
    )

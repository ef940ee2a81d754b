from __future__ import annotations

from pathlib import Path

import pytest

LISTINGS = Path(__file__).parent / "listings"


@pytest.fixture
def listing():
    def read(name: str) -> str:
        return (LISTINGS / f"{name}.yaml").read_text()

    return read

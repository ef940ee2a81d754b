"""What a lessee of another organization must see of the demo's payments table: nameOrig
and nameDest hashed (64 hex digits, one hash per raw value), every other column intact."""

from __future__ import annotations

import csv
import io
import re

HASHED = ("nameOrig", "nameDest")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def assert_redacted(seen_text: str, raw_text: str) -> dict[str, str]:
    """Check `seen_text` against the owner's raw table; returns {raw id: hash}."""
    seen, raw = rows(seen_text), rows(raw_text)
    assert seen[0] == raw[0], (seen[0], raw[0])
    assert len(seen) == len(raw)
    hashed = [raw[0].index(name) for name in HASHED]
    mapping: dict[str, str] = {}
    for got, want in zip(seen[1:], raw[1:], strict=True):
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            if i in hashed:
                assert HEX64.match(g), f"column {raw[0][i]} not hashed: {g!r}"
                assert mapping.setdefault(w, g) == g, "one raw value, two hashes"
            else:
                assert g == w, f"column {raw[0][i]} changed: {g!r} != {w!r}"
    assert len(set(mapping.values())) == len(mapping), "two raw values, one hash"
    return mapping

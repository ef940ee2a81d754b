"""Merge an override YAML file over a Fabric sample config: maps merge, the rest replaces.

    python merge_yaml.py BASE OVERRIDE OUT [KEY=VALUE ...]

Each KEY=VALUE replaces the placeholder @KEY@ in the override before merging (absolute
paths that cannot be written into a checked-in file).
"""

from __future__ import annotations

import sys
from typing import Any

import yaml


def merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = merge(base[key], value) if key in base else value
        return out
    return override


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    base_path, override_path, out_path, *pairs = argv
    with open(override_path, encoding="utf-8") as f:
        text = f.read()
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            print(f"merge_yaml.py: {pair!r} is not KEY=VALUE", file=sys.stderr)
            return 2
        text = text.replace(f"@{key}@", value)
    if any(f"@{k}@" in text for k in ("FABRIC_HOME", "FABRIC_DATA")):
        print(f"merge_yaml.py: {override_path} still has a placeholder", file=sys.stderr)
        return 2
    with open(base_path, encoding="utf-8") as f:
        base = yaml.safe_load(f)
    merged = merge(base, yaml.safe_load(text))
    with open(out_path, "w", encoding="utf-8") as f:
        yaml.safe_dump(merged, f, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

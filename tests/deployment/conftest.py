"""Shared paths and loaders for the deployment checks (values, manifests, images, Fabric)."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from shared_dir import schemas_dir

ROOT = Path(__file__).resolve().parents[2]
Z2JH = ROOT / "z2jh-values"
IMAGE = ROOT / "image"
FABRIC = ROOT / "fabric-network"
SCHEMAS = schemas_dir()
K8S_VERSION = "1.32.0"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def helm_merge(base: Any, overlay: Any) -> Any:
    """Merge values as helm does with several -f files: maps merge, anything else replaces."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = copy.deepcopy(base)
        for key, value in overlay.items():
            out[key] = helm_merge(out[key], value) if key in out else copy.deepcopy(value)
        return out
    return copy.deepcopy(overlay)


def _load(name: str) -> ModuleType:
    # A script of z2jh-values/, importable by its name (dshare_chart imports dshare_manifests).
    spec = importlib.util.spec_from_file_location(name, Z2JH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def manifests_module() -> ModuleType:
    return _load("dshare_manifests")


@pytest.fixture(scope="session")
def chart_module(manifests_module: ModuleType) -> ModuleType:
    return _load("dshare_chart")

"""dshare's Helm chart (charts/dshare): rendered from the manifests' builders, linted by helm,
the same objects as manifests/ with the default values, and configurable as its values say.

helm is the real one, built from its Go module by scripts/k8s-tools.sh. The chart installed
into a real API server: tests/cluster/test_helm_install.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from .conftest import K8S_VERSION, ROOT

HELM = Path(os.environ.get("DSHARE_K8S_BIN", ROOT / ".k8s-bin")) / "helm"
CHART = ROOT / "charts" / "dshare"


def helm(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    if not HELM.exists():
        pytest.fail(f"{HELM} is missing: run `bash scripts/k8s-tools.sh` (make test does)")
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    return subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def render(tmp_path: Path, *args: str) -> list[dict[str, Any]]:
    done = helm("template", "dshare", str(CHART), *args, home=tmp_path)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


def test_templates_are_rendered_from_the_builders(chart_module, capsys) -> None:
    assert chart_module.main([]) == 0, capsys.readouterr().err


def test_helm_lints_the_chart(tmp_path: Path) -> None:
    done = helm("lint", str(CHART), "--strict", home=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


def test_default_values_give_exactly_the_manifests(tmp_path: Path, manifests_module) -> None:
    got = {_key(o): o for o in render(tmp_path, "--namespace", manifests_module.HUB_NAMESPACE)}
    want = {
        _key(o): o
        for name, objects in manifests_module.rendered().items()
        if not name.startswith("per-user-namespace/")  # the hub applies those per user
        for o in objects
    }
    assert sorted(got) == sorted(want)
    assert [k for k in want if got[k] != want[k]] == []


def test_other_orgs_and_namespace_reach_every_object(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"orgs": [{"name": "Alpha"}, {"name": "Beta"}]}))
    objects = render(tmp_path, "--namespace", "data-hub", "-f", str(values))
    text = yaml.safe_dump_all(objects)
    for org in ("UiS", "UiO", "UiB", "uis", "uio", "uib"):
        assert org not in text
    assert "system:serviceaccount:dshare:" not in text
    namespaced = {o["metadata"].get("namespace") for o in objects} - {None}
    assert namespaced == {"data-hub", "dshare-secrets-alpha", "dshare-secrets-beta"}
    accounts = sorted(o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount")
    assert accounts == ["dshare-alpha", "dshare-beta"]
    binding = next(
        o
        for o in objects
        if o["kind"] == "ClusterRoleBinding" and o["metadata"]["name"] == "dshare-broker"
    )
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "dshare-alpha", "namespace": "data-hub"},
        {"kind": "ServiceAccount", "name": "dshare-beta", "namespace": "data-hub"},
    ]
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"orgs": [{"name": "Bad Name"}]}, ["orgs/0/name", "does not match"]),
        ({"orgs": []}, ["orgs", "minItems"]),
        ({"brokers": 3}, ["additional properties", "brokers"]),
    ],
    ids=["org name", "no org", "unknown key"],
)
def test_bad_values_are_refused_with_the_field(
    tmp_path: Path, values: dict[str, Any], words: list[str]
) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    done = helm("template", "dshare", str(CHART), "-f", str(path), home=tmp_path)
    assert done.returncode != 0
    message = done.stderr.lower()
    assert all(w.lower() in message for w in words), done.stderr

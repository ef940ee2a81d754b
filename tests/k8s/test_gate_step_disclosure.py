"""The disclosure checks in the Kubernetes gate step: the policy the broker writes into
DSHARE_GATE carries the schema's tags, so the step holds a per-person table as the
embedded executor does, and releases counts over groups."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROWS = "".join(f"C{1000 + i},{'AB'[i % 2]},{10 + i}\n" for i in range(40))
POLICY = {
    "owner_org": "UiO",
    "dataset_id": "people",
    "dataset_name": "People",
    "release": {"checks": ["min_cell_count", "no_identifiers"], "unknown": "release"},
    "columns": [
        {"name": "customer", "tags": ["pii"]},
        {"name": "group", "tags": []},
        {"name": "amount", "tags": []},
    ],
}


def _gate(tmp: Path, policy: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    config = {
        "run_id": "r-1",
        "run_dir": str(tmp / "run"),
        "home": str(tmp / "home"),
        "data": {"L1": str(tmp / "data")},
        "policies": {"L1": policy},
        "report": str(tmp / "report.json"),
    }
    env = {**os.environ, "DSHARE_GATE": json.dumps(config)}
    run = [sys.executable, "-m", "dshare_hub.k8s.gate_step"]
    seeded = subprocess.run([*run, "seed"], env=env, capture_output=True, text=True, timeout=60)
    assert seeded.returncode == 0, seeded.stderr
    work = tmp / "run" / "work"
    (work / "people.csv").write_text("customer,amount\nC1003,13\nC1004,14\n")
    (work / "groups.csv").write_text("group,n\nA,20\nB,20\n")
    return subprocess.run([*run, "gate"], env=env, capture_output=True, text=True, timeout=120)


def test_the_step_holds_identifiers_and_releases_counts(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "people.csv").write_text("customer,group,amount\n" + ROWS)
    done = _gate(tmp_path, POLICY)
    assert done.returncode == 0, done.stderr
    outputs = json.loads((tmp_path / "report.json").read_text())["outputs"]
    verdict = {o["path"]: o["decision"] for o in outputs}
    assert verdict == {"people.csv": "held", "groups.csv": "released"}
    held = next(o for o in outputs if o["path"] == "people.csv")
    assert [c["message"] for c in held["checks"] if not c["passed"]] == [
        "people.csv: column 1 ('customer') is tagged pii in the dataset's schema. Remove "
        "identifier columns. Release counts or aggregates over groups, not identifiers."
    ]
    assert (tmp_path / "home" / "groups.csv").is_file()
    assert not (tmp_path / "home" / "people.csv").exists()


def test_a_bad_schema_in_the_config_stops_the_step_naming_the_field(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "data").mkdir()
    done = _gate(tmp_path, POLICY | {"columns": "customer"})
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "dshare gate: DSHARE_GATE.policies.L1.columns: must be the dataset's columns, a list "
        "of {name, tags}"
    )

"""The seed step of a run over data that requires approved code (Kubernetes): it copies
only the approved files of the home, each checked against the SHA-256 the owners
approved, because the home may change between the broker's check and the seed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = b"print('count')\n"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _seed(tmp: Path, code_files: dict[str, str]) -> subprocess.CompletedProcess[str]:
    config: dict[str, Any] = {
        "run_id": "r-1",
        "run_dir": str(tmp / "run"),
        "home": str(tmp / "home"),
        "data": {},
        "policies": {},
        "scan_cap": 8 * 1024 * 1024,
        "seed_cap": 64 * 1024 * 1024,
        "report": str(tmp / "report.json"),
        "code_files": code_files,
    }
    return subprocess.run(
        [sys.executable, "-m", "dshare_hub.k8s.gate_step", "seed"],
        env={**os.environ, "DSHARE_GATE": json.dumps(config)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",
    )


def _home(tmp: Path) -> Path:
    home = tmp / "home"
    (home / "lib").mkdir(parents=True)
    (home / "count.py").write_bytes(SCRIPT)
    (home / "lib" / "helper.py").write_text("import os\n")
    (home / "b.py").write_text("print('run me')\n")
    return home


def test_only_the_approved_files_are_seeded(tmp_path: Path) -> None:
    _home(tmp_path)
    done = _seed(tmp_path, {"count.py": _sha(SCRIPT)})
    assert done.returncode == 0, done.stderr
    work = tmp_path / "run" / "work"
    assert sorted(str(p.relative_to(work)) for p in work.rglob("*")) == ["count.py"]


def test_a_file_changed_after_the_check_stops_the_run(tmp_path: Path) -> None:
    home = _home(tmp_path)
    (home / "count.py").write_text("exec(open('b.py').read())\n")
    done = _seed(tmp_path, {"count.py": _sha(SCRIPT), "lib/helper.py": _sha(b"import os\n")})
    assert done.returncode == 3
    assert done.stderr.strip() == (
        "dshare seed: the approved code changed in the home after the run was accepted: "
        "count.py; nothing ran. Put the approved version back or ask for approval again"
    )


def test_an_approved_file_replaced_by_a_link_or_removed_stops_the_run(tmp_path: Path) -> None:
    home = _home(tmp_path)
    (home / "count.py").unlink()
    (home / "count.py").symlink_to(home / "b.py")
    (home / "lib" / "helper.py").unlink()
    done = _seed(tmp_path, {"count.py": _sha(SCRIPT), "lib/helper.py": _sha(b"import os\n")})
    assert done.returncode == 3
    assert "count.py, lib/helper.py; nothing ran" in done.stderr

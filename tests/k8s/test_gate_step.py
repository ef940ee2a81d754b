"""dshare's seed, gate and decide steps as their pods run them: a real process, with
directories standing in for the pod's mounts, and the scientist as the attacker who
wrote the home (planted links) and the jobs' files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

CORPUS = "the quick brown fox jumps over the lazy dog while the owls keep watch at night\n"
POLICY = {"owner_org": "UiO", "dataset_id": "corpus", "dataset_name": "Corpus", "release": {}}


def step(command: str, config: dict[str, Any] | str) -> subprocess.CompletedProcess[str]:
    raw = config if isinstance(config, str) else json.dumps(config)
    return subprocess.run(
        [sys.executable, "-m", "dshare_hub.k8s.gate_step", command],
        env={**os.environ, "DSHARE_GATE": raw},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",
    )


def world(tmp: Path, data: bool = True) -> dict[str, Any]:
    (tmp / "home").mkdir()
    (tmp / "data").mkdir()
    (tmp / "data" / "corpus.txt").write_text(CORPUS * 4)
    return {
        "run_id": "r-1",
        "run_dir": str(tmp / "run"),
        "home": str(tmp / "home"),
        "data": {"L1": str(tmp / "data")} if data else {},
        "policies": {"L1": POLICY} if data else {},
        "report": str(tmp / "report.json"),
    }


def report(config: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(Path(config["report"]).read_text()))


def test_seed_copies_regular_files_only(tmp_path: Path) -> None:
    config = world(tmp_path)
    home = tmp_path / "home"
    (home / "src").mkdir()
    (home / "src" / "count.py").write_text("print(1)\n")
    (home / "secret-link").symlink_to("/etc/hostname")
    (home / "linked-dir").symlink_to(tmp_path / "data")
    (home / ".dshare" / "runs" / "r-0" / "logs").mkdir(parents=True)
    (home / ".dshare" / "runs" / "r-0" / "logs" / "job-1.log").write_text("old\n")
    done = step("seed", config)
    assert done.returncode == 0, done.stderr
    work = tmp_path / "run" / "work"
    assert sorted(str(p.relative_to(work)) for p in work.rglob("*")) == ["src", "src/count.py"]
    seeded = json.loads((tmp_path / "run" / "seeded.json").read_text())
    assert list(seeded) == ["src/count.py"]
    assert (tmp_path / "run" / "logs").is_dir() and (tmp_path / "run" / "staged").is_dir()
    # Argo may run the step again: it starts from the home, not from the last copy.
    (work / "stray.txt").write_text("x")
    assert step("seed", config).returncode == 0
    assert not (work / "stray.txt").exists()


def test_a_home_over_the_cap_is_refused_saying_what_to_do(tmp_path: Path) -> None:
    config = world(tmp_path) | {"seed_cap": 10}
    (tmp_path / "home" / "big.bin").write_bytes(b"x" * 11)
    done = step("seed", config)
    assert done.returncode == 3
    assert done.stderr.strip() == (
        "dshare seed: the home is larger than 10 bytes; remove large files from it, or ask "
        "the operator to raise BrokerApp.max_workspace_bytes"
    )


def _run_jobs(tmp: Path, config: dict[str, Any]) -> None:
    (tmp / "home" / "count.py").write_text("print(1)\n")
    assert step("seed", config).returncode == 0
    work = tmp / "run" / "work"
    (work / "out").mkdir()
    (work / "out" / "counts.csv").write_text("word,count\nfox,4\n")
    (work / "copy.txt").write_text(CORPUS * 2)
    (tmp / "run" / "logs" / "job-1.log").write_text("counted 1 file\n")


def test_gate_releases_new_files_and_logs_and_holds_a_copy_of_the_data(tmp_path: Path) -> None:
    config = world(tmp_path)
    _run_jobs(tmp_path, config)
    done = step("gate", config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "dshare gate: done; 3 output(s), 1 held, 0 not delivered"
    verdict = {o["path"]: (o["decision"], o.get("delivered")) for o in report(config)["outputs"]}
    assert verdict == {
        "out/counts.csv": ("released", True),
        "copy.txt": ("held", None),
        ".dshare/runs/r-1/logs/job-1.log": ("released", True),
    }
    home = tmp_path / "home"
    assert (home / "out" / "counts.csv").read_text() == "word,count\nfox,4\n"
    assert (home / ".dshare/runs/r-1/logs/job-1.log").read_text() == "counted 1 file\n"
    assert not (home / "copy.txt").exists()  # unchanged count.py is no output either
    assert (tmp_path / "run" / "staged" / "copy.txt").read_text() == CORPUS * 2
    held = next(o for o in report(config)["outputs"] if o["path"] == "copy.txt")
    assert [c["name"] for c in held["checks"] if not c["passed"]] == ["verbatim_input"]
    assert held["owners"] == ["UiO"]
    assert report(config)["warnings"] == []


def test_a_run_without_data_releases_its_files_and_no_log(tmp_path: Path) -> None:
    config = world(tmp_path, data=False)
    _run_jobs(tmp_path, config)
    assert step("gate", config).returncode == 0
    assert {o["path"] for o in report(config)["outputs"]} == {"out/counts.csv", "copy.txt"}


def test_links_planted_in_the_home_are_never_followed(tmp_path: Path) -> None:
    config = world(tmp_path, data=False)
    _run_jobs(tmp_path, config)
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep\n")
    # After the seed, as the scientist could while the run goes on.
    (tmp_path / "home" / "copy.txt").symlink_to(victim)
    (tmp_path / "home" / "out").symlink_to(outside)
    assert step("gate", config).returncode == 0
    outputs = {o["path"]: o for o in report(config)["outputs"]}
    for path in ("copy.txt", "out/counts.csv"):
        assert outputs[path]["delivered"] is False, path
        assert outputs[path]["delivery_error"] == (
            "a symbolic link or a file is in the way in the home"
        )
    assert victim.read_text() == "keep\n"
    assert list(outside.iterdir()) == []
    assert report(config)["warnings"] == [
        "copy.txt could not be written to the home: a symbolic link or a file is in the way "
        "in the home",
        "out/counts.csv could not be written to the home: a symbolic link or a file is in "
        "the way in the home",
    ]


def test_decide_delivers_or_deletes_a_held_file(tmp_path: Path) -> None:
    config = world(tmp_path)
    _run_jobs(tmp_path, config)
    assert step("gate", config).returncode == 0
    staged = tmp_path / "run" / "staged" / "copy.txt"
    done = step("decide", config | {"stage": "copy.txt", "approve": True})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "dshare decide: the held output was delivered"
    assert report(config) == {"stage": "copy.txt", "delivered": True, "error": ""}
    assert (tmp_path / "home" / "copy.txt").read_text() == CORPUS * 2
    assert not staged.exists()

    (tmp_path / "run" / "work" / "copy2.txt").write_text(CORPUS * 2)
    assert step("gate", config).returncode == 0
    done = step("decide", config | {"stage": "copy2.txt", "approve": False})
    assert (done.returncode, done.stdout.strip()) == (
        0,
        "dshare decide: the held output was deleted",
    )
    assert report(config) == {"stage": "copy2.txt", "delivered": False, "error": ""}
    assert not (tmp_path / "home" / "copy2.txt").exists()
    assert not (tmp_path / "run" / "staged" / "copy2.txt").exists()


def test_bad_configuration_names_the_field(tmp_path: Path) -> None:
    config = world(tmp_path)
    cases = {
        ("gate", "not json"): "dshare gate: DSHARE_GATE: is not JSON",
        ("gate", json.dumps({k: v for k, v in config.items() if k != "run_dir"})): (
            "dshare gate: DSHARE_GATE.run_dir: must be a non-empty string"
        ),
        ("decide", json.dumps(config | {"stage": "../x", "approve": True})): (
            "dshare decide: DSHARE_GATE.stage: must be the held output's path inside the home"
        ),
        ("decide", json.dumps(config | {"stage": "nothing.txt", "approve": True})): (
            "dshare decide: DSHARE_GATE.stage: no held output 'nothing.txt' waits on this run"
        ),
    }
    for (command, raw), message in cases.items():
        done = step(command, raw)
        assert (done.returncode, done.stderr.strip()) == (2, message), raw


def test_a_missing_seed_record_or_unreadable_data_still_gates_and_says_so(
    tmp_path: Path,
) -> None:
    config = world(tmp_path) | {"data": {"L1": str(tmp_path / "gone")}}
    _run_jobs(tmp_path, config)
    (tmp_path / "run" / "seeded.json").unlink()
    done = step("gate", config)
    assert done.returncode == 0, done.stderr
    gated = report(config)
    assert gated["warnings"] == [
        "the record of the seeded home is missing: every file counts as new",
        "the data of lease L1 could not be read for the gate",
    ]
    # Data the gate cannot read is data it cannot clear anything against: all is held.
    verdict = {o["path"]: o["decision"] for o in gated["outputs"]}
    assert set(verdict.values()) == {"held"}
    assert "count.py" in verdict
    assert not (tmp_path / "home" / "out").exists()


def test_a_bad_policy_or_cap_is_refused_naming_the_field(tmp_path: Path) -> None:
    config = world(tmp_path)
    _run_jobs(tmp_path, config)
    Path(config["report"]).unlink()  # the seed's
    bad_mode = POLICY | {"release": {"mode": "whenever"}}
    cases = {
        ("gate", json.dumps(config | {"policies": {"L1": bad_mode}})): (
            "dshare gate: DSHARE_GATE.policies.L1.release.mode: must be one of checks, review, auto"
        ),
        ("gate", json.dumps(config | {"scan_cap": "lots"})): (
            "dshare gate: DSHARE_GATE.scan_cap: must be a positive number of bytes"
        ),
        ("seed", json.dumps(config | {"seed_cap": 0})): (
            "dshare seed: DSHARE_GATE.seed_cap: must be a positive number of bytes"
        ),
        ("seed", json.dumps(config | {"data": []})): (
            "dshare seed: DSHARE_GATE.data: must be an object keyed by lease id"
        ),
        ("decide", json.dumps(config | {"stage": "copy.txt", "approve": "yes"})): (
            "dshare decide: DSHARE_GATE.approve: must be true or false"
        ),
    }
    for (command, raw), message in cases.items():
        done = step(command, raw)
        assert (done.returncode, done.stderr.strip()) == (2, message), raw
    assert not Path(config["report"]).exists()

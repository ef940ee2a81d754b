"""Skeleton paths are made safe; writing, refreshing and removing never loses user data."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from dshare_hub.spawner.skeleton import MANIFEST, normalize_skeleton, write_skeletons


def _tree(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) + ("/" if p.is_dir() else "")
        for p in root.rglob("*")
        if p.name != MANIFEST
    )


def test_normalize_keeps_safe_relative_paths_only(caplog) -> None:
    entries = [
        {"path": "a/b.csv", "size": 3},
        {"path": "a//c.csv"},
        {"path": "dir/"},
        {"path": "../up"},
        {"path": "/abs"},
        {"path": "a/./b"},  # harmless: normalized to a/b
        {"path": "x\\y"},
        {"path": " lead"},
        {"path": ""},
        {"size": 1},
        "plain.txt",
    ]
    with caplog.at_level(logging.WARNING):
        out = normalize_skeleton(entries, log=logging.getLogger("t"))
    assert out == ["a/b", "a/b.csv", "a/c.csv", "dir/", "plain.txt"]
    assert "skipping unsafe skeleton path '../up'" in caplog.text


def test_normalize_caps_the_number_of_entries() -> None:
    out = normalize_skeleton([{"path": f"f{i}"} for i in range(50)], limit=10)
    assert len(out) == 10


def test_write_creates_structure_with_empty_files(tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    result = write_skeletons(root, {"Census": ["a/b.csv", "c/", "top.txt"]})
    assert result.written == ["Census"]
    assert _tree(root) == ["Census/", "Census/a/", "Census/a/b.csv", "Census/c/", "Census/top.txt"]
    assert (root / "Census/a/b.csv").stat().st_size == 0
    assert json.loads((root / MANIFEST).read_text()) == {"Census": ["a/b.csv", "c/", "top.txt"]}


def test_refresh_removes_unleased_datasets_but_keeps_user_files(tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    write_skeletons(root, {"Census": ["a/b.csv", "c/"], "Weather": ["w.csv"]})
    (root / "Census/a/notes.txt").write_text("my work")
    (root / "Census/a/b.csv").write_text("I wrote into a skeleton file")
    (root / "mine").mkdir()
    result = write_skeletons(root, {"Weather": ["w.csv", "new/"]})
    assert result.removed == ["Census"]
    assert sorted(result.kept) == [str(root / "Census/a/b.csv")]
    assert _tree(root) == [
        "Census/",
        "Census/a/",
        "Census/a/b.csv",
        "Census/a/notes.txt",
        "Weather/",
        "Weather/new/",
        "Weather/w.csv",
        "mine/",
    ]
    assert (root / "Census/a/notes.txt").read_text() == "my work"
    # Nothing leased any more: the skeletons go, the user's own directory stays.
    (root / "Census/a/notes.txt").unlink()
    (root / "Census/a/b.csv").unlink()
    write_skeletons(root, {})
    assert _tree(root) == ["mine/"]


def test_existing_files_are_never_truncated(tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    (root / "Census").mkdir(parents=True)
    (root / "Census/b.csv").write_text("data")
    write_skeletons(root, {"Census": ["b.csv"]})
    assert (root / "Census/b.csv").read_text() == "data"


def test_symlinks_planted_by_the_user_are_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    outside = tmp_path / "outside"
    outside.mkdir()
    root.mkdir()
    (root / "Census").symlink_to(outside, target_is_directory=True)
    (root / "Weather").mkdir()
    (root / "Weather/sub").symlink_to(outside, target_is_directory=True)
    write_skeletons(root, {"Census": ["x.csv"], "Weather": ["sub/y.csv", "ok.csv"]})
    assert list(outside.iterdir()) == []
    assert (root / "Weather/ok.csv").exists()


def test_interrupted_refresh_is_finished_by_the_next(tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    write_skeletons(root, {"Census": ["a.csv"]})
    # A crash after the union manifest was written but before the final one.
    (root / MANIFEST).write_text(json.dumps({"Census": ["a.csv"], "Weather": ["w.csv"]}))
    (root / "Weather").mkdir()
    (root / "Weather/w.csv").touch()
    write_skeletons(root, {"Census": ["a.csv"]})
    assert _tree(root) == ["Census/", "Census/a.csv"]

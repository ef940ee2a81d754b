"""Delivery writes as the scientist: a link planted in the home leads only where they
could write themselves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dshare_hub.executor.deliver import deliver, safe_relative

from .conftest import OTHER_UID, SCIENTIST_UID, home_of


def staged(world: Path, name: str, data: bytes) -> Path:
    path = world / "staged" / name
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_bytes(data)
    path.chmod(0o600)  # root's, as the executor stages it
    return path


def test_files_land_at_their_path_owned_by_the_scientist(world: Path) -> None:
    home = home_of(world)
    (home / "old.txt").write_text("old")
    os.chown(home / "old.txt", SCIENTIST_UID, SCIENTIST_UID)
    result = deliver(
        str(home),
        SCIENTIST_UID,
        SCIENTIST_UID,
        {
            "results/deep/count.txt": staged(world, "a", b"42\n"),
            "old.txt": staged(world, "b", b"new"),
        },
    )
    assert result == {"results/deep/count.txt": "", "old.txt": ""}
    out = home / "results" / "deep" / "count.txt"
    assert out.read_bytes() == b"42\n"
    assert out.stat().st_uid == SCIENTIST_UID
    assert (home / "results").stat().st_uid == SCIENTIST_UID
    assert (home / "old.txt").read_text() == "new"


def test_a_planted_symlink_cannot_make_delivery_write_elsewhere(world: Path) -> None:
    home = home_of(world)
    victim = home_of(world, OTHER_UID, "other-home")
    (victim / "notes.txt").write_text("mine")
    os.chown(victim / "notes.txt", OTHER_UID, OTHER_UID)
    rootdir = world / "root-only"
    rootdir.mkdir(mode=0o755)
    (home / "into-other").symlink_to(victim, target_is_directory=True)
    (home / "into-root").symlink_to(rootdir, target_is_directory=True)
    (home / "file-link.txt").symlink_to(victim / "notes.txt")
    result = deliver(
        str(home),
        SCIENTIST_UID,
        SCIENTIST_UID,
        {
            "into-other/notes.txt": staged(world, "a", b"overwritten"),
            "into-root/planted.txt": staged(world, "b", b"planted"),
            "file-link.txt": staged(world, "c", b"overwritten"),
            "../escape.txt": staged(world, "d", b"x"),
        },
    )
    assert all(result.values()), result  # every one failed, with a reason
    assert (victim / "notes.txt").read_text() == "mine"
    assert not (rootdir / "planted.txt").exists()
    assert not (world / "escape.txt").exists()


def test_delivery_as_root_is_refused(world: Path) -> None:
    with pytest.raises(ValueError):
        deliver(str(world), 0, 0, {})


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("a.txt", True),
        ("d/a.txt", True),
        ("/a", False),
        ("../a", False),
        ("a/../b", False),
        ("", False),
        (".", False),
    ],
)
def test_only_normalized_relative_paths_are_delivered(path: str, ok: bool) -> None:
    assert safe_relative(path) is ok

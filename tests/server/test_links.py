"""~/datasets links to interactive views (dshare_server.links): made, kept, pruned, and never
at the expense of what the user put there."""

from __future__ import annotations

import os
from pathlib import Path

from dshare_server.links import links_from_views, prune_dangling, sync_links


def _view(tmp_path: Path, name: str) -> Path:
    view = tmp_path / "views" / name
    view.mkdir(parents=True)
    (view / "data.csv").write_text("a,b\n")
    return view


def test_a_link_replaces_a_skeleton_and_goes_when_not_wanted(tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    (root / "Pay" / "sub").mkdir(parents=True)
    (root / "Pay" / "sub" / "data.csv").touch()  # a skeleton: empty files and dirs
    view = _view(tmp_path, "v1")
    result = sync_links(root, {"Pay": str(view)})
    assert result.linked == ["Pay"] and not result.kept
    assert (root / "Pay" / "data.csv").read_text() == "a,b\n"
    assert sync_links(root, {"Pay": str(view)}).linked == ["Pay"]  # idempotent
    result = sync_links(root, {})
    assert result.pruned == ["Pay"] and not os.path.lexists(root / "Pay")
    assert not (root / ".dshare-views.json").exists()


def test_the_users_files_and_links_are_never_replaced_or_pruned(tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    (root / "Pay").mkdir(parents=True)
    (root / "Pay" / "notes.txt").write_text("my work")
    (root / "Mine").symlink_to(tmp_path / "nowhere")  # the user's own, dangling
    view = _view(tmp_path, "v1")
    result = sync_links(root, {"Pay": str(view), "Mine": str(view)})
    assert sorted(result.kept) == ["Mine", "Pay"] and not result.linked
    assert (root / "Pay" / "notes.txt").read_text() == "my work"
    assert prune_dangling(root).pruned == []
    assert os.readlink(root / "Mine") == str(tmp_path / "nowhere")


def test_a_link_whose_view_is_gone_is_pruned_without_a_broker(tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    view = _view(tmp_path, "v1")
    sync_links(root, {"Pay": str(view)})
    (view / "data.csv").unlink()
    view.rmdir()
    assert prune_dangling(root).pruned == ["Pay"]
    assert not os.path.lexists(root / "Pay")


def test_unsafe_names_and_paths_from_a_reply_are_skipped() -> None:
    items = [
        {"dir": "Pay", "path": "/views/uis/v-1"},
        {"dir": "../up", "path": "/views/uis/v-2"},
        {"dir": ".hidden", "path": "/views/uis/v-3"},
        {"dir": "rel", "path": "views/uis/v-4"},
        {"dir": "a/b", "path": "/x"},
        "junk",
    ]
    assert links_from_views(items) == {"Pay": "/views/uis/v-1"}
    assert links_from_views(None) == {}

"""`~/datasets/<name>` as a link to an interactive view, written as the user.

The owner's broker makes a view of an interactive lease (a directory only the lessee's OS
user may read); the user's side only ever links to the path it is given. Links this code
made are listed in `~/datasets/.dshare-views.json`, so it removes only its own: a link
the user made, or a directory holding the user's files, is left alone (and reported).

Used by the spawner's child process (at spawn, as the user), by the server extension (a
periodic refresh and `POST /dshare/api/views`) and by `session.lease()` in a kernel. Pure
standard library: it runs wherever the user's code runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VIEWS_MANIFEST = ".dshare-views.json"


@dataclass
class LinkResult:
    linked: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # in the way: the user's own files


def safe_name(name: str) -> bool:
    """One visible path segment: no `/`, no leading dot, nothing odd."""
    return (
        0 < len(name) <= 200
        and "/" not in name
        and "\x00" not in name
        and not name.startswith(".")
        and name.strip() == name
    )


def links_from_views(items: Any) -> dict[str, str]:
    """{dir: path} from the broker's `POST views` reply items, unsafe entries skipped."""
    out: dict[str, str] = {}
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        name, path = item.get("dir"), item.get("path")
        if (
            isinstance(name, str)
            and isinstance(path, str)
            and safe_name(name)
            and path.startswith("/")
            and "\x00" not in path
        ):
            out[name] = path
    return out


def _read_manifest(root: Path) -> dict[str, str]:
    try:
        data = json.loads((root / VIEWS_MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items() if isinstance(v, str) and safe_name(str(k))}


def _write_manifest(root: Path, links: Mapping[str, str]) -> None:
    if not links:
        # Nothing linked: no manifest (a home without interactive leases stays as it was).
        (root / VIEWS_MANIFEST).unlink(missing_ok=True)
        return
    # Per process: the server's refresh and a kernel's lease() may write at the same time.
    tmp = root / f"{VIEWS_MANIFEST}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    tmp.write_text(json.dumps(dict(sorted(links.items())), sort_keys=True))
    os.replace(tmp, root / VIEWS_MANIFEST)


def _is_our_link(path: Path, target: str) -> bool:
    try:
        return path.is_symlink() and os.readlink(path) == target
    except OSError:
        return False


def _clear_skeleton(path: Path) -> bool:
    """Remove a skeleton (empty files, empty directories) at `path`; True if it is gone.
    Anything else (a file with data, a link) stays, and so does `path` then."""
    for _top, dirs, files, dir_fd in os.fwalk(path, topdown=False, follow_symlinks=False):
        for name in files:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISREG(info.st_mode) and info.st_size == 0:
                os.unlink(name, dir_fd=dir_fd)
        for name in dirs:
            with contextlib.suppress(OSError):  # not empty: the user's
                os.rmdir(name, dir_fd=dir_fd)
    try:
        path.rmdir()
    except OSError:
        return False
    return True


def _usable_root(root: Path, create: bool) -> bool:
    if root.is_symlink():
        return False  # the user's choice; never write through it
    if not root.exists():
        if not create:
            return False
        root.mkdir(parents=True, mode=0o755)
    return root.is_dir()


def prune_links(root: Path, wanted: Mapping[str, str]) -> LinkResult:
    """Remove the links made here before that are not in `wanted` (or point elsewhere)."""
    result = LinkResult()
    if not _usable_root(root, create=False):
        return result
    previous = _read_manifest(root)
    for name, target in previous.items():
        if wanted.get(name) == target:
            continue
        if _is_our_link(root / name, target):
            (root / name).unlink()
            result.pruned.append(name)
    if previous:
        _write_manifest(root, {k: v for k, v in previous.items() if wanted.get(k) == v})
    return result


def prune_dangling(root: Path) -> LinkResult:
    """Remove the links made here whose view is gone (the lease ended): no broker needed."""
    if not _usable_root(root, create=False):
        return LinkResult()
    previous = _read_manifest(root)
    alive = {k: v for k, v in previous.items() if os.path.exists(v)}
    return prune_links(root, alive)


def sync_links(root: Path, wanted: Mapping[str, str]) -> LinkResult:
    """Make `root/<dir>` a link to each wanted view; remove our links no longer wanted.

    A skeleton in the way (empty files and directories) is replaced; the user's own files
    or links are not, and the dataset is listed in `kept`."""
    result = prune_links(root, wanted)
    if not wanted or not _usable_root(root, create=True):
        return result
    managed = {k: v for k, v in _read_manifest(root).items() if wanted.get(k) == v}
    for name, target in sorted(wanted.items()):
        path = root / name
        if _is_our_link(path, target):
            managed[name] = target
            result.linked.append(name)
            continue
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            result.kept.append(name)
            continue
        if path.is_dir() and not _clear_skeleton(path):
            result.kept.append(name)
            continue
        tmp = root / f".{name}.{os.getpid()}.dshare-link"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(target, tmp, target_is_directory=True)
        os.replace(tmp, path)
        managed[name] = target
        result.linked.append(name)
    _write_manifest(root, managed)
    return result

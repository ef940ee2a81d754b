"""Directory skeletons of leased datasets: structure and empty files, never content.

A skeleton is another organization's metadata, so every path is checked before it touches a
file system: relative, no `..`, no empty or odd segments. Writing is idempotent and never
overwrites or deletes a file that holds data (a user may have saved work there).

The home belongs to the user, so a spawner running as root does not write there itself: it
runs this module as the user (`python -m dshare_hub.spawner.skeleton`, the request as JSON
on stdin), and a symlink the user planted can only lead where the user may write anyway.

Datasets whose owner allows interactive use are not skeletons but links to the view the
owner's broker made for this user (`dshare_server.links`), written here too, as the user.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from dshare_server.links import prune_links, sync_links

MANIFEST = ".dshare-skeletons.json"
MAX_ENTRIES = 10_000


def normalize_skeleton(
    entries: Iterable[Any], *, log: logging.Logger | Any = None, limit: int = MAX_ENTRIES
) -> list[str]:
    """Safe relative POSIX paths from `[{path, size}]` entries; directories end with `/`.

    Unsafe entries are skipped (and logged): a bad path in one dataset's metadata must not
    stop the user's server from starting.
    """
    out: set[str] = set()
    for entry in entries:
        raw = entry.get("path") if isinstance(entry, Mapping) else entry
        if not isinstance(raw, str):
            continue
        is_dir = raw.endswith("/")
        parts = PurePosixPath(raw).parts
        if (
            not raw.strip()
            or raw.startswith("/")
            or "\x00" in raw
            or "\\" in raw
            or any(p in ("..", ".") or p.strip() != p or not p for p in parts)
        ):
            if log is not None:
                log.warning("skipping unsafe skeleton path %r", raw[:200])
            continue
        path = "/".join(parts)
        out.add(path + "/" if is_dir else path)
        if len(out) >= limit:
            if log is not None:
                log.warning("skeleton truncated at %d entries", limit)
            break
    return sorted(out)


@dataclass
class SkeletonResult:
    """What a refresh did: datasets written, datasets removed, user files left in place."""

    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    magic_error: str = ""
    linked: list[str] = field(default_factory=list)


def _chown(path: Path, owner: tuple[int, int] | None) -> None:
    if owner is not None:
        os.chown(path, *owner, follow_symlinks=False)


def _write_manifest(root: Path, content: Mapping[str, Sequence[str]]) -> None:
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps({k: list(v) for k, v in sorted(content.items())}, sort_keys=True))
    os.replace(tmp, root / MANIFEST)


def _read_manifest(root: Path) -> dict[str, list[str]]:
    try:
        data = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): [str(p) for p in v] for k, v in data.items() if isinstance(v, list)}


def _inside(base: Path, rel: str) -> Path | None:
    target = base / rel
    # Refuse anything reached through a symlink the user may have planted.
    for parent in [*reversed(target.relative_to(base).parents), target.relative_to(base)]:
        if (base / parent).is_symlink():
            return None
    return target


def _remove_skeleton(base: Path, paths: Sequence[str], result: SkeletonResult) -> None:
    """Remove the empty files and then empty directories a skeleton made; keep the rest."""
    if base.is_symlink() or not base.is_dir():
        return
    for rel in sorted(paths, key=lambda p: -p.count("/")):
        target = _inside(base, rel.rstrip("/"))
        if target is None or not target.exists():
            continue
        if target.is_file() and not rel.endswith("/"):
            if target.stat().st_size == 0:
                target.unlink()
            else:
                result.kept.append(str(target))
    for directory in sorted(
        (p for p in base.rglob("*") if p.is_dir() and not p.is_symlink()),
        key=lambda p: -len(p.parts),
    ):
        if not any(directory.iterdir()):
            directory.rmdir()
    if not any(base.iterdir()):
        base.rmdir()


def write_skeletons(
    root: Path,
    skeletons: Mapping[str, Sequence[str]],
    *,
    owner: tuple[int, int] | None = None,
) -> SkeletonResult:
    """Make `root/<dataset dir>/...` match `skeletons`; remove datasets no longer there.

    Crash-safe: the manifest first records the union of old and new entries, so an
    interrupted refresh leaves nothing the next one would not find and clean.
    """
    result = SkeletonResult()
    root.mkdir(parents=True, exist_ok=True, mode=0o755)
    _chown(root, owner)
    previous = _read_manifest(root)
    union = {
        k: sorted(set(previous.get(k, [])) | set(skeletons.get(k, [])))
        for k in set(previous) | set(skeletons)
    }
    _write_manifest(root, union)
    for name, old_paths in sorted(previous.items()):
        stale = set(old_paths) - set(skeletons.get(name, []))
        if name not in skeletons:
            _remove_skeleton(root / name, old_paths, result)
            result.removed.append(name)
        elif stale:
            _remove_skeleton_entries(root / name, sorted(stale), result)
    for name, paths in sorted(skeletons.items()):
        base = root / name
        if base.is_symlink():
            continue
        base.mkdir(exist_ok=True, mode=0o755)
        _chown(base, owner)
        for rel in paths:
            target = _inside(base, rel.rstrip("/"))
            if target is None:
                continue
            directory = target if rel.endswith("/") else target.parent
            for d in [*reversed(directory.relative_to(base).parents), directory.relative_to(base)]:
                if str(d) == ".":
                    continue
                if not (base / d).exists():
                    (base / d).mkdir(mode=0o755)
                    _chown(base / d, owner)
            if not rel.endswith("/") and not target.exists():
                # O_EXCL: never truncate or follow something that appeared meanwhile.
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444)
                os.close(fd)
                _chown(target, owner)
        result.written.append(name)
    # A dataset dir kept for the user's files stays tracked, so its skeleton part is
    # cleaned once the user empties it.
    leftovers = {
        name: paths
        for name, paths in previous.items()
        if name not in skeletons and (root / name).is_dir() and not (root / name).is_symlink()
    }
    _write_manifest(root, {**leftovers, **skeletons})
    return result


def _remove_skeleton_entries(base: Path, paths: Sequence[str], result: SkeletonResult) -> None:
    for rel in sorted(paths, key=lambda p: -p.count("/")):
        target = _inside(base, rel.rstrip("/"))
        if target is None or not target.exists():
            continue
        if rel.endswith("/"):
            if target.is_dir() and not any(target.iterdir()):
                target.rmdir()
        elif target.is_file():
            if target.stat().st_size == 0:
                target.unlink()
            else:
                result.kept.append(str(target))


DATASETS_DIR = "datasets"
# An IPython startup file loads the %dshare_run magic in every kernel, as the single-user
# image's kernel config does on Kubernetes.
MAGIC_STARTUP = Path(".ipython", "profile_default", "startup", "00-dshare.py")
MAGIC_MARKER = Path(".ipython", ".dshare-magic-written")
MAGIC_STARTUP_SOURCE = """\
# Written by dshare's spawner: loads %dshare_run, %dshare_status and %dshare_logs.
# Delete this file to stop it; it is not written again while the home holds it.
get_ipython().extension_manager.load_extension("dshare_server")
"""


def write_magic_startup(home: Path) -> bool:
    """Write the startup file unless it is there or was written once and since removed."""
    startup = home / MAGIC_STARTUP
    marker = home / MAGIC_MARKER
    if startup.exists() or marker.exists():
        return False
    startup.parent.mkdir(parents=True, exist_ok=True)
    startup.write_text(MAGIC_STARTUP_SOURCE)
    marker.touch()
    return True


def prepare_home(
    home: Path,
    skeletons: Mapping[str, Sequence[str]],
    *,
    magic: bool,
    links: Mapping[str, str] | None = None,
) -> SkeletonResult:
    """Everything a spawn writes into a home, done with the caller's own permissions.

    `links` ({dataset dir: view path}) become links; a link of an ended lease goes before
    the skeletons are written (so its skeleton can take the place again), and the links
    after them (so the skeleton a link replaces is cleaned by its manifest first).
    The magic's startup file is a convenience: a home where it cannot be written (say
    ~/.ipython is not the user's) still starts, with the reason in `magic_error`.
    """
    links = dict(links or {})
    root = home / DATASETS_DIR
    pruned = prune_links(root, links)
    result = write_skeletons(root, {k: v for k, v in skeletons.items() if k not in links})
    linked = sync_links(root, links)
    result.linked = linked.linked
    result.removed += pruned.pruned
    result.kept += [str(root / name) for name in linked.kept]
    if magic:
        try:
            write_magic_startup(home)
        except OSError as e:
            result.magic_error = f"{e.strerror}: {e.filename}"
    return result


def main() -> int:
    """Child entry point: {"home", "skeletons", "magic"} on stdin, the result on stdout."""
    if os.geteuid() == 0:
        print("dshare skeleton writer: refusing to run as root", file=sys.stderr)
        return 2
    request = json.loads(sys.stdin.read())
    own_home = pwd.getpwuid(os.getuid()).pw_dir
    if os.path.realpath(request["home"]) != os.path.realpath(own_home):
        # Run through sudo by a non-root hub: it writes the caller's own home only.
        print(f"dshare skeleton writer: {request['home']} is not this user's home", file=sys.stderr)
        return 2
    skeletons = {str(k): [str(p) for p in v] for k, v in request["skeletons"].items()}
    links = {str(k): str(v) for k, v in (request.get("links") or {}).items()}
    try:
        result = prepare_home(
            Path(request["home"]), skeletons, magic=bool(request.get("magic")), links=links
        )
    except OSError as e:
        print(f"cannot write ~/{DATASETS_DIR}: {e.strerror}: {e.filename}", file=sys.stderr)
        return 1
    json.dump(
        {
            "written": result.written,
            "removed": result.removed,
            "kept": result.kept,
            "magic_error": result.magic_error,
            "linked": result.linked,
        },
        sys.stdout,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

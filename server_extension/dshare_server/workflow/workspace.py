"""The snapshot of a scientist's home that a run starts from.

Jobs run elsewhere (the executor's sandbox), on a copy of the home as it was when the run
was submitted, so the thesis's scripts find their files where they left them and write
where they write. What the jobs write comes back only through the output gate.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

# Not part of a run: dataset skeletons (the real data is mounted over them), dshare's own
# run records, and per-user tool state that can be large and is never an input.
EXCLUDED_TOP = frozenset(
    {"datasets", ".dshare", ".ipython", ".local", ".cache", ".jupyter", ".npm", ".config"}
)
EXCLUDED_ANYWHERE = frozenset({".ipynb_checkpoints", "__pycache__", "node_modules", ".git"})
MAX_RAW_BYTES = 256 * 1024 * 1024


class WorkspaceTooLarge(ValueError):
    pass


def _walk(home: Path) -> list[tuple[Path, int]]:
    out: list[tuple[Path, int]] = []
    stack = [home]
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue  # unreadable: the jobs could not have read it either
        for entry in entries:
            rel = Path(entry.path).relative_to(home)
            if (len(rel.parts) == 1 and entry.name in EXCLUDED_TOP) or (
                entry.name in EXCLUDED_ANYWHERE
            ):
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
                out.append((rel, 0))
            elif entry.is_file(follow_symlinks=False) or entry.is_symlink():
                size = entry.stat(follow_symlinks=False).st_size
                out.append((rel, size))
    return out


def pack_home(home: str | os.PathLike[str], *, max_raw_bytes: int = MAX_RAW_BYTES) -> bytes:
    """A gzip tar of the home's files (symlinks as links, never followed)."""
    root = Path(home)
    entries = _walk(root)
    total = sum(size for _, size in entries)
    if total > max_raw_bytes:
        top: dict[str, int] = {}
        for rel, size in entries:
            top[rel.parts[0]] = top.get(rel.parts[0], 0) + size
        biggest = sorted(top.items(), key=lambda kv: -kv[1])[:3]
        listed = ", ".join(f"{name} ({size / 2**20:.0f} MiB)" for name, size in biggest)
        raise WorkspaceTooLarge(
            f"your home holds {total / 2**20:.0f} MiB of files, more than the "
            f"{max_raw_bytes / 2**20:.0f} MiB a run takes with it; the largest: {listed}. "
            "Move what the jobs do not need out of the home"
        )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        for rel, _ in sorted(entries):
            try:
                tar.add(root / rel, arcname=str(rel), recursive=False)
            except OSError:
                continue
    return buffer.getvalue()

"""Workspace archives as a scientist's server (or a hostile client) would send them."""

from __future__ import annotations

import io
import tarfile


def tgz(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    """A gzip tar of `files` (path -> bytes), their parent folders first, then symbolic
    links (path -> target)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        parents = {p.rsplit("/", i)[0] for p in files for i in range(1, p.count("/") + 1)}
        for folder in sorted(parents):
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        for path, target in (links or {}).items():
            info = tarfile.TarInfo(path)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return out.getvalue()

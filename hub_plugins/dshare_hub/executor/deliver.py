"""Copying released files into the scientist's home, as the scientist.

A child process runs as the scientist's uid and gid (no supplementary groups) and writes
each file at the path the job wrote it. Whatever the scientist planted in their home (a
symlink to another user's directory, say) is followed only with the scientist's own
rights, so delivery can write nowhere the scientist could not write themselves. The
root executor hands the staged files over as open descriptors; the child never sees the
executor's state directory.
"""

from __future__ import annotations

import json
import os
import posixpath
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from .identity import SETPRIV

# As the scientist: {"home": ..., "files": [[fd, relative path], ...]} on stdin; one
# JSON line out: {path: "" on success, or why it failed}.
_WRITE = r"""
import json, os, sys
job = json.loads(sys.stdin.read())
home, result = job["home"], {}
for fd, rel in job["files"]:
    dest = os.path.join(home, rel)
    try:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with os.fdopen(fd, "rb") as src, open(dest, "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        result[rel] = ""
    except OSError as error:
        result[rel] = error.strerror or type(error).__name__
print(json.dumps(result))
"""


def safe_relative(path: str) -> bool:
    """A path the job could have written inside its home: relative, no `..`, no NUL."""
    if not path or "\0" in path or path.startswith("/"):
        return False
    norm = posixpath.normpath(path)
    return norm == path and not norm.startswith("..") and norm != "."


def deliver(
    home: str, uid: int, gid: int, files: Mapping[str, Path], timeout: float = 300
) -> dict[str, str]:
    """Write ``files`` (relative path -> staged file) into ``home`` as uid:gid.

    Returns relative path -> "" when delivered, else the reason (an OS error's text).
    """
    if uid == 0 or gid == 0:
        raise ValueError("delivery as root is refused: give the scientist's own uid and gid")
    rels = [r for r in files if safe_relative(r)]
    fds = []
    try:
        for rel in rels:
            fds.append(os.open(files[rel], os.O_RDONLY | os.O_NOFOLLOW))
        job = {"home": home, "files": [[fd, rel] for fd, rel in zip(fds, rels, strict=True)]}
        done = subprocess.run(
            [
                SETPRIV,
                f"--reuid={uid}",
                f"--regid={gid}",
                "--clear-groups",
                "--no-new-privs",
                "--",
                sys.executable,
                "-I",
                "-c",
                _WRITE,
            ],
            input=json.dumps(job).encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
            cwd="/",
            pass_fds=fds,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
    finally:
        for fd in fds:
            os.close(fd)
    try:
        result: dict[str, str] = json.loads(done.stdout)
    except ValueError:
        result = {}
    out = {rel: result.get(rel, "the delivery process failed") for rel in rels}
    for rel in files:
        if rel not in out:
            out[rel] = "not a path inside the home"
    return out

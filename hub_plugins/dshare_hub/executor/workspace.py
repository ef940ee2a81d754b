"""The per-run workspace: the scientist's home as it was at submit, owned by the job uid.

`<state_dir>/runs/<run_id>/workspace`, 0700 and owned by the run's job uid. It is seeded
from the broker's tar of the home by a child process running AS that uid (so a hostile
archive can at worst write what the job itself could), with tarfile's "data" filter.
What was seeded is recorded (path -> sha256, size); after the run, the regular files that
are new or changed against that record are the outputs. They are read by root without
following any symlink, so a job cannot make the executor read something else.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .identity import JobIdentity

WORKSPACE = "workspace"
OUTPUTS = "outputs"
_CHUNK = 1 << 20

# Runs in the child as the job uid, with the standard library only (-I: no site, no
# environment). Entries the data filter refuses (device files, links pointing out of the
# home, `..`) are skipped and named on stdout; absolute names are made relative by it.
_EXTRACT = r"""
import io, json, sys, tarfile
dest, limit = sys.argv[1], int(sys.argv[2])
skipped, total = [], 0
def keep(member, path):
    global total
    try:
        member = tarfile.data_filter(member, path)
    except tarfile.FilterError as error:
        why = {
            "SpecialFileError": "not a regular file, directory or link",
            "AbsolutePathError": "an absolute path",
            "OutsideDestinationError": "would land outside the home",
            "AbsoluteLinkError": "a link to an absolute path",
            "LinkOutsideDestinationError": "a link pointing outside the home",
        }.get(type(error).__name__, "refused by the archive filter")
        skipped.append(f"{member.name}: {why}")
        return None
    if member.isfile():
        total += member.size
        if total > limit:
            sys.exit(3)
    return member
data = sys.stdin.buffer.read()
try:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        tar.extractall(dest, filter=keep)
except (tarfile.TarError, EOFError, OSError) as error:
    print(json.dumps({"error": type(error).__name__}))
    sys.exit(2)
print(json.dumps({"skipped": skipped}))
"""


class WorkspaceError(Exception):
    """The workspace could not be prepared; the message is safe to show the scientist."""


@dataclass(frozen=True)
class FileInfo:
    sha256: str
    size: int

    def as_dict(self) -> dict[str, object]:
        return {"sha256": self.sha256, "size": self.size}


Manifest = dict[str, FileInfo]


def prepare(run_dir: Path, uid: int) -> Path:
    """Create the run's directory (root, traversable only) and its workspace (uid, 0700).

    bubblewrap 0.8 resolves a bound descriptor back to its path, so the job uid needs
    search (x) permission on the parents; 0711 lets it through without listing anything.
    """
    run_dir.mkdir(mode=0o711, parents=True, exist_ok=True)
    os.chmod(run_dir, 0o711)  # noqa: S103 - search only, see above
    ws = run_dir / WORKSPACE
    ws.mkdir(mode=0o700, exist_ok=True)
    os.lchown(ws, uid, uid)
    os.chmod(ws, 0o700)
    return ws


def seed(
    workspace: Path, archive: bytes, identity: JobIdentity, max_bytes: int
) -> tuple[Manifest, list[str]]:
    """Extract the home archive as the job uid; returns what is there and what was skipped."""
    if archive:
        ident = JobIdentity(identity.uid)  # no data groups while unpacking the home
        done = subprocess.run(
            [
                *ident.setpriv(),
                sys.executable,
                "-I",
                "-c",
                _EXTRACT,
                str(workspace),
                str(max_bytes),
            ],
            input=archive,
            capture_output=True,
            timeout=300,
            check=False,
            cwd="/",
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
        if done.returncode == 3:
            raise WorkspaceError(
                f"the home directory expands to more than {max_bytes} bytes; remove large "
                "files from the home (or ask the operator to raise Executor.workspace_max_bytes)"
            )
        if done.returncode != 0:
            raise WorkspaceError(
                "the archive of the home directory could not be unpacked "
                f"({_child_error(done.stdout)}); submit the run again"
            )
        skipped = list(json.loads(done.stdout or b"{}").get("skipped", []))
    else:
        skipped = []
    return snapshot(workspace), skipped


def _child_error(out: bytes) -> str:
    try:
        return str(json.loads(out).get("error", "unknown error"))
    except (ValueError, AttributeError):
        return "unknown error"


def _hash_fd(fd: int) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while chunk := os.read(fd, _CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _open_regular(name: str, dir_fd: int) -> int | None:
    """An fd of ``name`` in ``dir_fd`` if it is a regular file, never through a symlink."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return None  # a symlink (ELOOP), a vanished entry, a socket
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def snapshot(top: Path) -> Manifest:
    out: Manifest = {}
    for dirpath, _dirs, files, dir_fd in os.fwalk(top, follow_symlinks=False):
        rel_dir = os.path.relpath(dirpath, top)
        for name in files:
            fd = _open_regular(name, dir_fd)
            if fd is None:
                continue
            try:
                sha, size = _hash_fd(fd)
            finally:
                os.close(fd)
            out[name if rel_dir == "." else os.path.join(rel_dir, name)] = FileInfo(sha, size)
    return out


def collect(workspace: Path, seeded: Manifest, staging: Path) -> Manifest:
    """Copy the new or changed regular files into ``staging`` (root, 0700); returns them.

    Call only once no process of the job uid is left, so nothing changes underneath.
    """
    staging.mkdir(mode=0o700, exist_ok=True)
    os.chmod(staging, 0o700)
    outputs: Manifest = {}
    for dirpath, _dirs, files, dir_fd in os.fwalk(workspace, follow_symlinks=False):
        rel_dir = os.path.relpath(dirpath, workspace)
        for name in files:
            rel = name if rel_dir == "." else os.path.join(rel_dir, name)
            fd = _open_regular(name, dir_fd)
            if fd is None:
                continue
            try:
                info = _stage(fd, staging, rel)
            finally:
                os.close(fd)
            if seeded.get(rel) == info:
                (staging / rel).unlink()
                continue
            outputs[rel] = info
    return outputs


def log_path(run_id: str, job: str) -> str:
    """Where a job's log lands in the home once the gate released it (what the server
    extension's log route reads first)."""
    return f".dshare/runs/{run_id}/logs/{job}.log"


def collect_logs(logs: Path, run_id: str, staging: Path) -> Manifest:
    """Stage every job's log as an output: a log can carry leased data as well as a file
    can, so it leaves the run only through the gate too."""
    outputs: Manifest = {}
    if not logs.is_dir():
        return outputs
    dir_fd = os.open(logs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for log in sorted(logs.glob("*.log")):
            fd = _open_regular(log.name, dir_fd)
            if fd is None:
                continue
            try:
                rel = log_path(run_id, log.stem)
                info = _stage(fd, staging, rel)
            finally:
                os.close(fd)
            if info.size:
                outputs[rel] = info
            else:
                (staging / rel).unlink()  # a job that printed nothing has nothing to release
    finally:
        os.close(dir_fd)
    return outputs


def _stage(fd: int, staging: Path, rel: str) -> FileInfo:
    target = staging / rel
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(out, "wb") as sink:
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
            size += len(chunk)
            sink.write(chunk)
    return FileInfo(digest.hexdigest(), size)

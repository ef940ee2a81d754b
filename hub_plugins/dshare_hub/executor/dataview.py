"""A run's own view of a leased dataset: the same files, under a name that says nothing.

A bind mount shows where its source lies in the job's own /proc/<pid>/mountinfo, and a
storage path is one of the owner's secrets. So a job is not given the owner's directory
but a tree of hard links to its files inside the run's directory: same inodes (nothing
is copied, the owner's modes still decide who reads), a path that names only the run.
Only where the run's directory is on another file system than the data are the files
copied (and that costs what the data weighs; keep the executor's state on the data's
file system).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from .mounts import OpenMount

DATA = "data"


class ViewError(Exception):
    """The view could not be made; the message names no path."""


def _copy(name: str, src_dir: int, dst: str, gid: int) -> None:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir)
    try:
        out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
        with os.fdopen(fd, "rb", closefd=False) as src, os.fdopen(out, "wb") as sink:
            shutil.copyfileobj(src, sink, 1024 * 1024)
        os.chown(dst, 0, gid, follow_symlinks=False)
    finally:
        os.close(fd)


def make_view(run_dir: Path, lease_id: str, source_fd: int, gid: int) -> Path:
    """Mirror the directory `source_fd` (opened by root through the owner's handle) as
    `<run_dir>/data/<lease_id>`: directories 0750 root:`gid`, files hard-linked."""
    top = run_dir / DATA
    top.mkdir(mode=0o711, exist_ok=True)
    os.chmod(top, 0o711)  # noqa: S103 - traversal only: job uids reach their own view
    target = top / lease_id
    if target.exists() or target.is_symlink():
        shutil.rmtree(target)
    # fwalk opens each directory relative to the one above, never following a link.
    for dirpath, _dirs, files, dir_fd in os.fwalk(".", dir_fd=source_fd, follow_symlinks=False):
        here = os.path.normpath(os.path.join(target, dirpath))
        os.mkdir(here, 0o750)
        os.chown(here, 0, gid)
        os.chmod(here, 0o750)  # noqa: S103 - the data group's, as the owner's directories are
        for name in files:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            dst = os.path.join(here, name)
            if stat.S_ISLNK(info.st_mode):
                # A link is kept as a link: inside the sandbox it resolves there.
                os.symlink(os.readlink(name, dir_fd=dir_fd), dst)
            elif stat.S_ISREG(info.st_mode):
                try:
                    os.link(name, dst, src_dir_fd=dir_fd, follow_symlinks=False)
                except OSError as error:
                    if error.errno != errno.EXDEV:
                        raise ViewError(
                            f"a file of the dataset cannot be linked ({error.strerror}); "
                            "ask the operator to check the executor's log"
                        ) from None
                    _copy(name, dir_fd, dst, gid)
            # Devices, fifos and sockets are not data: a job never sees them.
    return target


def open_each(views: Iterable[tuple[str, Callable[[], Path]]]) -> dict[str, int]:
    """Each (claim, make) view made and opened for bwrap: {claim: O_PATH descriptor}.
    When one cannot be made, none of those before it stays open."""
    fds: dict[str, int] = {}
    try:
        for claim, make in views:
            fds[claim] = os.open(make(), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


def open_views(run_dir: Path, opened: list[OpenMount]) -> dict[str, int]:
    """Each lease's view, opened for bwrap: {claim: O_PATH descriptor}."""
    return open_each(
        (m.claim, partial(make_view, run_dir, m.lease_id, m.fd, m.data_gid)) for m in opened
    )


def remove_views(run_dir: Path) -> None:
    """Unlink every view of the run, mock views too (the owner's files stay: only links
    go)."""
    shutil.rmtree(run_dir / DATA, ignore_errors=True)

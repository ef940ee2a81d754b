"""bubblewrap command lines for local jobs: what a job may see, and nothing else.

The sandbox shows the system's programs and the server's Python read-only, the user's
home read-write at the notebook's home path, each dataset read-only at the path the
workflow asked for, a private /tmp, and no network, no other processes.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")


@dataclass(frozen=True)
class Bind:
    source: str  # host directory
    target: str  # path inside the job
    read_only: bool
    # An open directory to bind instead of `source`: the caller (the executor, as root)
    # opened and checked it, so what is bound is what was checked.
    fd: int | None = None


@functools.cache
def bwrap_path() -> str | None:
    """The bwrap binary if it can really create the namespaces we need here, else None."""
    path = shutil.which("bwrap")
    if path is None:
        return None
    try:
        probe = subprocess.run(
            [
                path,
                "--dev-bind",
                "/",
                "/",
                "--unshare-net",
                "--unshare-pid",
                "--die-with-parent",
                "true",
            ],
            capture_output=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return path if probe.returncode == 0 else None


def _python_dirs() -> list[str]:
    dirs = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        os.path.dirname(os.path.realpath(sys.executable)),
    }
    return sorted(d for d in dirs if d and os.path.isdir(d))


def bwrap_command(
    bwrap: str,
    argv: Sequence[str],
    binds: Sequence[Bind],
    workdir: str,
    env: Mapping[str, str],
) -> list[str]:
    cmd = [
        bwrap,
        "--die-with-parent",
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--clearenv",
    ]
    targets = {b.target for b in binds}
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            cmd += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            cmd += ["--ro-bind", d, d]
    # The private /tmp comes before any bind: a Python environment or a home that lives
    # under /tmp (a CI checkout, pytest's tmp_path) must be bound on top of it, not hidden.
    cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]  # noqa: S108 - private tmpfs
    for d in _python_dirs():
        if not any(d == s or d.startswith(s + "/") for s in SYSTEM_DIRS) and d not in targets:
            cmd += ["--ro-bind", d, d]
    # Parents first, so a dataset bound inside the home is not hidden by the home's bind.
    for b in sorted(binds, key=lambda b: b.target.count("/")):
        if b.fd is not None:
            cmd += ["--ro-bind-fd" if b.read_only else "--bind-fd", str(b.fd), b.target]
        else:
            cmd += ["--ro-bind" if b.read_only else "--bind", b.source, b.target]
    for k, v in env.items():
        cmd += ["--setenv", k, v]
    cmd += ["--chdir", workdir, "--", *argv]
    return cmd

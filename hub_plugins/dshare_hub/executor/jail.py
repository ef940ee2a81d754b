"""Whether jobs can be sandboxed here: bubblewrap, run by a pool uid through setpriv.

Probed once at startup with the very command shape jobs get (same system binds, same
namespaces), so "the sandbox works" means what the jobs will need, not merely that a
bwrap binary exists. Without it no run starts: the executor never runs jobs unsandboxed.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from dshare_server.workflow.sandbox import bwrap_command

from .identity import JobIdentity
from .limits import JobLimits

HOW_TO_FIX = (
    "the job sandbox does not work on this machine: install bubblewrap "
    "(`apt-get install bubblewrap`) and make sure unprivileged user namespaces are enabled "
    "(sysctl kernel.unprivileged_userns_clone=1 and user.max_user_namespaces > 0; "
    "AppArmor's kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 24.04+)"
)


@dataclass(frozen=True)
class Sandbox:
    bwrap: str | None
    problem: str  # why it does not work, for the operator's log ("" when it works)

    @property
    def usable(self) -> bool:
        return self.bwrap is not None


def probe(uid: int, limits: JobLimits | None = None, timeout: float = 20.0) -> Sandbox:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Sandbox(None, "bwrap is not installed")
    for tool in ("setpriv", "prlimit"):
        if shutil.which(tool) is None:
            return Sandbox(None, f"{tool} (util-linux) is not installed")
    command = [
        *(limits or JobLimits()).prefix(),
        *JobIdentity(uid).setpriv(),
        *bwrap_command(bwrap, ["/bin/sh", "-c", "exit 0"], [], "/", {"PATH": "/usr/bin:/bin"}),
    ]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as error:
        return Sandbox(None, f"bwrap under setpriv could not run: {error}")
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip()[:500]
        return Sandbox(None, f"bwrap under setpriv failed ({done.returncode}): {detail}")
    return Sandbox(bwrap, "")

"""Per-run job identities: an unprivileged uid from the executor's pool, never the
scientist's and never root, with the data groups of the datasets the run mounts.

Each run's uid is written into its run.json before any job starts, so after a restart
the executor knows which uids may still have processes and frees them only once none is
left. The pool must be reserved for the executor: no login user, no other service.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SETPRIV = "setpriv"


@dataclass(frozen=True)
class JobIdentity:
    uid: int
    groups: tuple[int, ...] = ()

    @property
    def gid(self) -> int:
        return self.uid  # a private group per run: nothing else shares it

    def setpriv(self) -> list[str]:
        """The command prefix that drops root for this identity before bwrap starts."""
        groups = (
            [f"--groups={','.join(str(g) for g in self.groups)}"]
            if self.groups
            else ["--clear-groups"]
        )
        # no_new_privs: a setuid binary inside the sandbox cannot gain anything back.
        return [
            SETPRIV,
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            *groups,
            "--no-new-privs",
            "--",
        ]


class PoolExhausted(RuntimeError):
    pass


class UidPool:
    """Allocates uids from ``first``..``last`` (inclusive) that no active run holds."""

    def __init__(self, first: int, last: int) -> None:
        if first <= 0 or last < first:
            raise ValueError(f"the uid range {first}-{last} is empty or includes root")
        self.first, self.last = first, last

    def __contains__(self, uid: object) -> bool:
        return isinstance(uid, int) and self.first <= uid <= self.last

    def allocate(self, held: Iterable[int]) -> int:
        """The lowest free uid: not held by an active run and without live processes
        (a job of a run from before a restart could still be exiting)."""
        taken = set(held) | live_uids(self)
        for uid in range(self.first, self.last + 1):
            if uid not in taken:
                return uid
        raise PoolExhausted(
            f"all {self.last - self.first + 1} job identities are in use; "
            "wait for running runs to end or widen Executor.uid_range"
        )


def _proc_uids(status: str) -> set[int]:
    uids: set[int] = set()
    for line in status.splitlines():
        if line.startswith("State:") and line.split()[1:2] == ["Z"]:
            return set()  # a zombie runs nothing; it waits for its parent to reap it
        if line.startswith("Uid:"):
            uids = {int(v) for v in line.split()[1:]}
    return uids


def processes_of(uids: UidPool | set[int]) -> dict[int, set[int]]:
    """pid -> its uids (real, effective, saved, fs), for processes with a uid in ``uids``."""
    found: dict[int, set[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ids = _proc_uids((entry / "status").read_text())
        except OSError:
            continue  # exited meanwhile
        if any(u in uids for u in ids):
            found[int(entry.name)] = ids
    return found


def live_uids(pool: UidPool) -> set[int]:
    return {u for ids in processes_of(pool).values() for u in ids if u in pool}


def kill_uid(uid: int, timeout: float = 5.0) -> bool:
    """SIGKILL every process running as ``uid``; True when none is left.

    Only safe because pool uids belong to the executor alone: whatever runs as one of
    them is a job (or its leftovers).
    """
    if uid == 0:
        raise ValueError("refusing to kill processes of root")
    deadline = time.monotonic() + timeout
    while True:
        pids = processes_of({uid})
        if not pids:
            return True
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)

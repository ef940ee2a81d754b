"""What one job may take of the machine: processes, memory, file size.

Bubblewrap isolates what a job sees, not what it consumes; a fork bomb or a job eating the
host's memory would take the hub and the brokers down with it. `prlimit` (util-linux)
sets the limits as root before `setpriv` drops to the run's uid, so the job cannot raise
them again. RLIMIT_NPROC counts the processes of a real uid, and every run has a uid of
its own, so the process limit is per run. Memory and file size are per process and per
file: they bound a runaway job, not a run's total (cgroups would; the executor does not
manage them).
"""

from __future__ import annotations

from dataclasses import dataclass

PRLIMIT = "prlimit"


@dataclass(frozen=True)
class JobLimits:
    processes: int = 1024  # per run (its uid); 0: no limit
    memory_bytes: int = 8 * 1024**3  # address space per process; 0: no limit
    file_bytes: int = 4 * 1024**3  # largest file a job may write; 0: no limit

    def prefix(self) -> list[str]:
        """The command prefix that applies the limits (hard and soft) to what follows."""
        limits = [
            f"--{name}={value}"
            for name, value in (
                ("nproc", self.processes),
                ("as", self.memory_bytes),
                ("fsize", self.file_bytes),
            )
            if value > 0
        ]
        return [PRLIMIT, *limits, "--"] if limits else []

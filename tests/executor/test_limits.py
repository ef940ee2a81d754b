"""A job cannot take the machine down: the limits hold inside the real sandbox.

Each case runs the very command shape jobs get (prlimit, setpriv to a pool uid, bwrap)
with small limits, and a job that tries to go past them."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from dshare_hub.executor.identity import JobIdentity, kill_uid
from dshare_hub.executor.limits import JobLimits
from dshare_server.workflow.sandbox import bwrap_command

from .conftest import POOL

MiB = 1024 * 1024

FORK = """
import os, time
n = 0
try:
    for _ in range(300):
        if os.fork() == 0:
            time.sleep(3)
            os._exit(0)
        n += 1
    print("forked", n)
except OSError as e:
    print("stopped", n, e.errno)
"""
ALLOCATE = """
try:
    block = bytearray(512 * 1024 * 1024)
    print("allocated", len(block))
except MemoryError:
    print("refused")
"""


def run_job(code: str, limits: JobLimits, uid: int) -> subprocess.CompletedProcess[str]:
    bwrap = shutil.which("bwrap")
    assert bwrap, "bubblewrap is installed by scripts/system-deps.sh"
    command = [
        *limits.prefix(),
        *JobIdentity(uid).setpriv(),
        *bwrap_command(bwrap, ["/bin/sh", "-c", code], [], "/tmp", {"PATH": "/usr/bin:/bin"}),
    ]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    finally:
        kill_uid(uid)


def python(code: str) -> str:
    return f"{sys.executable} -c '{code}'"


def test_the_prefix_names_only_the_limits_that_are_set() -> None:
    assert JobLimits(processes=10, memory_bytes=0, file_bytes=5).prefix() == [
        "prlimit",
        "--nproc=10",
        "--fsize=5",
        "--",
    ]
    assert JobLimits(0, 0, 0).prefix() == []


def test_a_fork_bomb_stops_at_the_process_limit(sandbox) -> None:
    done = run_job(python(FORK), JobLimits(processes=20), POOL.first + 40)
    words = done.stdout.split()
    assert words[:1] == ["stopped"], (done.stdout, done.stderr)
    assert int(words[1]) < 20 and int(words[2]) == 11  # EAGAIN


def test_a_job_cannot_allocate_past_the_memory_limit(sandbox) -> None:
    done = run_job(python(ALLOCATE), JobLimits(memory_bytes=256 * MiB), POOL.first + 41)
    assert done.stdout.strip() == "refused", (done.stdout, done.stderr)
    roomy = run_job(python(ALLOCATE), JobLimits(memory_bytes=2048 * MiB), POOL.first + 41)
    assert roomy.stdout.strip() == f"allocated {512 * MiB}", (roomy.stdout, roomy.stderr)


def test_a_job_cannot_write_a_file_past_the_size_limit(sandbox) -> None:
    code = "head -c 2097152 /dev/zero > big; echo $?; wc -c < big"
    done = run_job(code, JobLimits(file_bytes=MiB), POOL.first + 42)
    status, size = done.stdout.split()
    assert status != "0" and int(size) == MiB, (done.stdout, done.stderr)


@pytest.mark.parametrize("limits", [JobLimits(), JobLimits(0, 0, 0)])
def test_the_defaults_and_no_limits_run_ordinary_jobs(sandbox, limits: JobLimits) -> None:
    done = run_job("echo ok", limits, POOL.first + 43)
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr

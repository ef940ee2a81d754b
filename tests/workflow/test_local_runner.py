"""The local runner against real processes: order, parallelism, failures, sandbox, cancel."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from pathlib import Path

import pytest

from dshare_server.workflow import CompileContext, LocalRunner, compile_workflow, parse
from dshare_server.workflow.sandbox import bwrap_path

needs_bwrap = pytest.mark.skipif(
    bwrap_path() is None,
    reason="bubblewrap cannot create namespaces here (apt-get install bubblewrap)",
)


def build(text: str, claims: dict[str, str] | None = None) -> dict:
    spec = parse(text, leases=None)
    ctx = CompileContext(
        user="alice",
        run_id="r1",
        image="img",
        home_claim="claim-alice",
        service_account="sa",
        claims=claims or {i: f"c-{i}" for i in spec.lease_ids},
    )
    return compile_workflow(spec, ctx)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    (d / "a.txt").write_text("lorem ipsum lorem\n")
    return d


def run(runner: LocalRunner, manifest: dict, mounts: dict[str, str]):
    return asyncio.run(runner.run(manifest, mounts))


# Two jobs that each wait for the other's file: they can only both finish if they run
# at the same time, so this proves parallelism without measuring time.
_WAIT = "i=0; while [ ! -e {f} ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done; test -e {f}"
RENDEZVOUS = f"""
jobs:
- "touch a; {_WAIT.format(f="b")} && echo 1 >> order"
- "touch b; {_WAIT.format(f="a")} && echo 2 >> order"
- echo 3 >> order
- cat order
dags:
- 1 >> 3
- 2 >> 3
- 3 >> 4
"""


@pytest.mark.parametrize("sandbox", [pytest.param(True, marks=needs_bwrap), False])
def test_dag_runs_in_order_and_in_parallel(tmp_path, home, sandbox):
    runner = LocalRunner(tmp_path / "run", parallelism=2, sandbox=sandbox)
    result = run(runner, build(RENDEZVOUS), {"claim-alice": str(home)})
    assert result.state == "succeeded", result.message
    assert sorted((home / "order").read_text().split()[:2]) == ["1", "2"]
    assert (home / "order").read_text().split()[2] == "3"
    assert result.logs("job-4").split() == (home / "order").read_text().split()
    assert [j.exit_code for j in result.jobs.values()] == [0, 0, 0, 0]


def test_parallelism_one_runs_jobs_one_at_a_time(tmp_path, home):
    runner = LocalRunner(tmp_path / "run", parallelism=1, sandbox=False)
    text = RENDEZVOUS.replace("300", "4")  # the rendezvous gives up quickly
    result = run(runner, build(text), {"claim-alice": str(home)})
    assert result.state == "failed"
    assert result.jobs["job-1"].state == "failed"


def test_failed_job_skips_dependents_and_reports_exit_code_and_last_lines(tmp_path, home):
    text = """
jobs:
- "for i in $(seq 1 30); do echo line $i; done; exit 3"
- echo never
- echo never either
dags: ['1 >> 2 >> 3']
"""
    result = run(
        LocalRunner(tmp_path / "run", sandbox=False), build(text), {"claim-alice": str(home)}
    )
    assert result.state == "failed"
    assert [j.state for j in result.jobs.values()] == ["failed", "skipped", "skipped"]
    assert result.jobs["job-1"].exit_code == 3
    expected_tail = "\n".join(f"line {i}" for i in range(21, 31))
    assert result.message == f"job job-1 failed (exit code 3):\n{expected_tail}"
    assert (tmp_path / "run" / "logs" / "job-1.log").read_text().count("line") == 30


def test_timeout_kills_the_job(tmp_path, home):
    text = (
        "jobs:\n- {command: 'echo started; sleep 60', timeout: 1}\n- echo after\ndags: ['1 >> 2']\n"
    )
    result = run(
        LocalRunner(tmp_path / "run", sandbox=False), build(text), {"claim-alice": str(home)}
    )
    job = result.jobs["job-1"]
    assert (job.state, job.message, job.exit_code) == ("failed", "timed out after 1 s", None)
    assert result.jobs["job-2"].state == "skipped"
    assert result.message == "job job-1 failed (timed out after 1 s):\nstarted"


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(pid))
    return found


async def _wait_for(predicate, what: str) -> None:
    for _ in range(400):
        if predicate():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.mark.parametrize("sandbox", [pytest.param(True, marks=needs_bwrap), False])
@pytest.mark.parametrize("how", ["cancel", "task"])
def test_cancel_leaves_no_process_behind(tmp_path, home, sandbox, how):
    marker = f"{uuid.uuid4().int % 10**6 + 1000}.5"
    text = f"jobs:\n- 'sleep {marker} & sleep {marker}; wait'\n- echo next\ndags: ['1 >> 2']\n"

    async def scenario():
        runner = LocalRunner(tmp_path / "run", sandbox=sandbox)
        task = asyncio.ensure_future(runner.run(build(text), {"claim-alice": str(home)}))
        await _wait_for(lambda: len(_processes_with(marker)) >= 2, "both sleeps to start")
        if how == "cancel":
            runner.cancel()
            result = await task
        else:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            result = None
        await _wait_for(lambda: not _processes_with(marker), "the sleeps to be gone")
        return result

    result = asyncio.run(scenario())
    assert _processes_with(marker) == []
    if result is not None:
        assert result.state == "cancelled"
        assert [j.state for j in result.jobs.values()] == ["cancelled", "skipped"]


@needs_bwrap
def test_sandbox_refuses_network(tmp_path, home):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    (home / "probe.py").write_text(
        "import socket, sys\n"
        "socket.create_connection(('127.0.0.1', int(sys.argv[1])), 2)\n"
        "print('connected')\n"
    )
    manifest = build(f"jobs: ['python probe.py {port}']")
    try:
        jailed = run(
            LocalRunner(tmp_path / "a", sandbox=True), manifest, {"claim-alice": str(home)}
        )
        free = run(LocalRunner(tmp_path / "b", sandbox=False), manifest, {"claim-alice": str(home)})
    finally:
        server.close()
    # The same command connects without the sandbox, so the refusal is the sandbox's doing.
    assert free.state == "succeeded", free.message
    assert free.logs("job-1") == "connected\n"
    # Inside, 127.0.0.1 is the sandbox's own loopback: the host's listener is not there.
    assert jailed.state == "failed"
    assert "ConnectionRefusedError" in jailed.logs("job-1")


@needs_bwrap
def test_sandbox_mounts_datasets_read_only_and_home_read_write(tmp_path, home, dataset):
    text = """
jobs:
- command: "cat /home/jovyan/uis/a.txt > copy.txt; touch /home/jovyan/uis/new; echo $? > rc"
  volumes: [{id: lease1, name: uis, path: /home/jovyan/uis}]
- command: "rm -f /home/jovyan/uis/a.txt"
  volumes: [{id: lease1, name: uis, path: /home/jovyan/uis}]
"""
    result = run(
        LocalRunner(tmp_path / "run", sandbox=True),
        build(text),
        {"claim-alice": str(home), "c-lease1": str(dataset)},
    )
    assert (home / "copy.txt").read_text() == "lorem ipsum lorem\n"
    assert (home / "rc").read_text().strip() == "1"
    assert "Read-only file system" in result.logs("job-1")
    assert result.jobs["job-2"].state == "failed"
    assert sorted(p.name for p in dataset.iterdir()) == ["a.txt"]


@needs_bwrap
def test_sandbox_environment_has_no_server_secrets(tmp_path, home, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "secret-token-value")
    result = run(
        LocalRunner(tmp_path / "run", sandbox=True),
        build("jobs: [env]"),
        {"claim-alice": str(home)},
    )
    assert "secret-token-value" not in result.logs("job-1")
    assert "HOME=/home/jovyan" in result.logs("job-1")


def test_without_sandbox_it_warns_and_maps_paths(tmp_path, home, dataset):
    text = """
jobs:
- command: "cat uis/a.txt; echo $HOME"
  image: python:3.12
  volumes: [{id: lease1, name: uis, path: /home/jovyan/uis}]
"""
    result = run(
        LocalRunner(tmp_path / "run", sandbox=False),
        build(text),
        {"claim-alice": str(home), "c-lease1": str(dataset)},
    )
    assert result.state == "succeeded", result.message
    assert result.logs("job-1") == f"lorem ipsum lorem\n{home}\n"
    assert not (home / "uis").exists()  # the link is removed afterwards
    assert any(
        w.startswith("WARNING: bubblewrap (bwrap) is not available") for w in result.warnings
    )
    assert any(w.startswith("the `image` of jobs is ignored locally") for w in result.warnings)


def test_without_sandbox_mounts_outside_home_are_refused(tmp_path, home, dataset):
    from dshare_server.workflow import RunnerError

    text = "jobs:\n- command: ls /data\n  volumes: [{id: lease1, path: /data}]\n"
    with pytest.raises(RunnerError) as info:
        run(
            LocalRunner(tmp_path / "run", sandbox=False),
            build(text),
            {"claim-alice": str(home), "c-lease1": str(dataset)},
        )
    assert str(info.value) == (
        "job job-1 mounts a dataset at /data, outside /home/jovyan; without bubblewrap only "
        "paths inside the home can be provided"
    )


def test_missing_claim_directory_is_refused(tmp_path):
    from dshare_server.workflow import RunnerError

    with pytest.raises(RunnerError) as info:
        run(LocalRunner(tmp_path / "run", sandbox=False), build("jobs: [ls]"), {})
    assert str(info.value) == "no local directory was given for claim `claim-alice`"


def test_sandbox_binds_python_and_homes_under_tmp_on_top_of_the_private_tmp(monkeypatch):
    """A CI checkout or pytest's tmp_path lives under /tmp: the private /tmp must not hide
    the interpreter or the user's home bound there."""
    from dshare_server.workflow import sandbox

    monkeypatch.setattr(sandbox, "_python_dirs", lambda: ["/tmp/ci-checkout/.venv"])
    cmd = sandbox.bwrap_command(
        "/usr/bin/bwrap",
        ["python", "job.py"],
        [sandbox.Bind("/tmp/pytest-1/home", "/home/jovyan", read_only=False)],
        "/home/jovyan",
        {},
    )
    tmpfs = cmd.index("--tmpfs")
    assert cmd.index("/tmp/ci-checkout/.venv") > tmpfs
    assert cmd.index("/tmp/pytest-1/home") > tmpfs

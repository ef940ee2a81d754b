"""The magics in a real IPython shell, and `dshare run -f`, with the broker double."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml
from IPython.core.displaypub import CapturingDisplayPublisher
from IPython.core.interactiveshell import InteractiveShell

from dshare_server.magic import DShareMagics, load_ipython_extension
from dshare_server.workflow.cli import add_run_command
from dshare_server.workflow.dag_svg import COLOURS
from dshare_server.workflow.orchestrate import RunContext

from .broker_double import InMemoryBroker


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture
def shell(tmp_path, home):
    ip = InteractiveShell.instance()
    ip.display_pub = CapturingDisplayPublisher()
    load_ipython_extension(ip)
    magics: DShareMagics = ip.magics_manager.registry["DShareMagics"]
    broker = InMemoryBroker()
    magics.broker_factory = lambda: broker
    magics.context_factory = lambda: RunContext(
        user="alice",
        mode="local",
        home_dir=str(home),
        cwd=str(home),
        run_root=str(tmp_path / "runs"),
        sandbox=False,
    )
    yield ip, magics, broker
    InteractiveShell.clear_instance()


WORKFLOW = "jobs:\n- echo hello\n- echo world\ndags: ['1 >> 2']\n"


def test_cell_magic_runs_and_shows_the_dag_and_progress(shell, capsys):
    ip, _magics, broker = shell
    run = ip.run_cell_magic("dshare_run", "", WORKFLOW)
    assert run.state == "succeeded"
    assert run.logs("job-1") == "hello\n"
    assert broker.finished == [(run.id, "succeeded", broker.finished[0][2])]
    outputs = ip.display_pub.outputs
    svgs = [o for o in outputs if "image/svg+xml" in o["data"]]
    bars = [o for o in outputs if "text/html" in o["data"]]
    # Shown once, then updated in place (same display id).
    assert svgs[0]["update"] is False and svgs[-1]["update"] is True
    assert len({o["transient"]["display_id"] for o in svgs}) == 1
    final_svg = svgs[-1]["data"]["image/svg+xml"]
    assert final_svg.count(COLOURS["succeeded"]) == 2
    assert '<progress value="2" max="2">' in bars[-1]["data"]["text/html"]
    assert "workflow: succeeded - 2/2 jobs (2 succeeded)" in bars[-1]["data"]["text/plain"]


def test_line_magic_reads_the_file_and_names_the_run(shell, home, monkeypatch):
    ip, _magics, broker = shell
    (home / "my_flow.yaml").write_text(WORKFLOW)
    monkeypatch.chdir(home)
    run = ip.run_line_magic("dshare_run", "my_flow.yaml")
    assert run.state == "succeeded"
    assert broker.runs[run.id]["name"] == "my-flow"


def test_status_and_logs(shell, capsys):
    ip, _magics, _broker = shell
    run = ip.run_cell_magic("dshare_run", "", "jobs: ['echo out; exit 2', echo]\ndags: ['1>>2']")
    capsys.readouterr()
    ip.run_line_magic("dshare_status", run.id)
    assert capsys.readouterr().out == (
        f"run {run.id} workflow: failed\n"
        "  job-1                    failed     exit 2 exit code 2\n"
        "  job-2                    skipped    an upstream job did not succeed\n"
    )
    ip.run_line_magic("dshare_logs", f"{run.id} job-1")
    assert capsys.readouterr().out == "out\n"
    ip.run_line_magic("dshare_logs", f"{run.id} nope")
    assert capsys.readouterr().out == f"run {run.id} has no job `nope`; its jobs: job-1, job-2\n"
    ip.run_line_magic("dshare_status", "run-99")
    assert capsys.readouterr().out == f"no run `run-99` in this session; runs: {run.id}\n"


def test_spec_errors_are_printed_with_the_cell_as_file(shell, capsys):
    ip, _magics, broker = shell
    assert ip.run_cell_magic("dshare_run", "", "jobs: [ls]\ndags: ['1 >> 5']\n") is None
    out = capsys.readouterr().out
    assert out.startswith("cell:2:14: error: job 5 does not exist; the workflow has 1 job\n")
    assert broker.runs == {}


def test_dry_run_prints_yaml(shell, capsys):
    ip, _magics, broker = shell
    ip.run_cell_magic("dshare_run", "--dry-run", WORKFLOW)
    manifest = yaml.safe_load(capsys.readouterr().out)
    assert manifest["kind"] == "Workflow"
    assert [t["name"] for t in manifest["spec"]["templates"]] == [
        "dshare-dag",
        "job-1",
        "job-2",
    ]
    assert broker.runs == {}


def test_bad_arguments_and_missing_file(shell, capsys):
    ip, _magics, _broker = shell
    assert ip.run_line_magic("dshare_run", "") is None
    assert capsys.readouterr().out == (
        "%dshare_run: give a workflow file, or use %%dshare_run with the YAML below it\n"
    )
    assert ip.run_line_magic("dshare_run", "missing.yaml") is None
    assert capsys.readouterr().out == (
        "%dshare_run: cannot read missing.yaml: No such file or directory\n"
    )


def cli(tmp_path, home, broker):
    parser = argparse.ArgumentParser(prog="dshare")
    sub = parser.add_subparsers()
    add_run_command(
        sub,
        broker_factory=lambda: broker,
        context_factory=lambda: RunContext(
            user="alice",
            mode="local",
            home_dir=str(home),
            cwd=str(home),
            run_root=str(tmp_path / "r"),
            sandbox=False,
        ),
    )
    return parser


def test_cli_run(tmp_path, home, capsys):
    broker = InMemoryBroker()
    (home / "workflow.yaml").write_text(WORKFLOW)
    args = cli(tmp_path, home, broker).parse_args(["run", "-f", str(home / "workflow.yaml")])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "run run-1: succeeded"
    assert "job-2: succeeded (exit 0)" in out


def test_cli_refusal_exit_code_and_message(tmp_path, home, capsys):
    broker = InMemoryBroker()
    path = home / "workflow.yaml"
    path.write_text("jobs: [ls]\ndags: ['1 >> 1']\n")
    args = cli(tmp_path, home, broker).parse_args(["run", "-f", str(path)])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:2:8: error: job `job-1` depends on itself in `1 >> 1`\n")


def test_cli_dry_run(tmp_path, home, capsys):
    broker = InMemoryBroker()
    path = home / "workflow.yaml"
    path.write_text(WORKFLOW)
    args = cli(tmp_path, home, broker).parse_args(["run", "-f", str(path), "--dry-run"])
    assert args.func(args) == 0
    assert yaml.safe_load(capsys.readouterr().out)["spec"]["entrypoint"] == "dshare-dag"


def test_no_wait_returns_while_the_run_goes_on(shell, home, capsys):
    ip, magics, broker = shell
    run = ip.run_cell_magic(
        "dshare_run",
        "--no-wait",
        "jobs: ['i=0; while [ ! -e go ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done']",
    )
    assert capsys.readouterr().out.endswith(f"run {run.id} started; see %dshare_status {run.id}\n")
    assert run.state == "running"
    (home / "go").touch()
    magics.threads[run.id].join()
    assert run.state == "succeeded"
    assert broker.finished == [(run.id, "succeeded", broker.finished[0][2])]

"""The `dshare` command: every area's subcommands are listed, and each runs on its own."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dshare_hub.cli import COMMAND_PROVIDERS, main


def dshare(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dshare_hub.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_help_lists_every_command():
    result = dshare("--help")
    assert result.returncode == 0, result.stderr
    for command in COMMAND_PROVIDERS:
        assert f"\n    {command} " in result.stdout, f"`dshare --help` does not list {command}"


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: dshare" in capsys.readouterr().out


@pytest.mark.parametrize("command", sorted(COMMAND_PROVIDERS))
def test_each_command_has_help(command):
    result = dshare(command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"usage: dshare {command}" in result.stdout

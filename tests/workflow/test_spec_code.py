"""The workflow's `code:` list: files and folders the jobs run besides those their commands
name, part of the code identity owners approve (errors with line and column)."""

from __future__ import annotations

import pytest

from dshare_server.workflow.problems import SpecError
from dshare_server.workflow.spec import parse


def _problems(text: str) -> list[tuple[int, int, str, str]]:
    with pytest.raises(SpecError) as info:
        parse(text, leases=None)
    return [(p.line, p.column, p.message, p.hint) for p in info.value.problems]


HINT = "list files or folders of your home the jobs run, e.g. `code: [count.py, lib/]`"


def test_code_paths_are_kept_in_order_without_duplicates():
    spec = parse(
        "code: [lib/, count.py, /home/jovyan/conf.json, count.py]\njobs: [python count.py]\n",
        leases=None,
    )
    assert spec.code == ("lib/", "count.py", "conf.json")


def test_no_code_list_is_empty():
    assert parse("jobs: [echo hi]\n", leases=None).code == ()


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        (
            "code: count.py\njobs: [echo]\n",
            [(1, 7, "`code` must be a list of paths, not a string", HINT)],
        ),
        (
            "jobs: [echo]\ncode:\n  - ../etc/passwd\n  - /etc/shadow\n  - {a: 1}\n",
            [
                (
                    3,
                    5,
                    "`code` entry `../etc/passwd` is not a path inside your home",
                    "give a path relative to the working directory, without `..`",
                ),
                (
                    4,
                    5,
                    "`code` entry `/etc/shadow` is not a path inside your home",
                    "give a path relative to the working directory, without `..`",
                ),
                (5, 5, "each `code` entry must be a string, not a mapping", HINT),
            ],
        ),
    ],
)
def test_bad_code_entries_name_their_place(text, problems):
    assert _problems(text) == problems

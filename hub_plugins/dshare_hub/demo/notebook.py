"""What a demo scientist finds in their home: the thesis's parallel experiment, ready to run.

The workflow names datasets by id; `%dshare_run` resolves each to the user's active lease
of it, so the file stays valid across leases. The scripts are the thesis's listings 5.3
and 5.4, unchanged but for the organization in each.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .content import ORGS

WORKFLOW = """\
# The thesis's experiment 5.3.2: count `lorem` in each organization's corpus in parallel,
# then aggregate. Job indices start at 1. Lease the three corpora first (DataExplorer
# sidebar, or the first cell of experiment.ipynb).
name: lorem-count
jobs:
- command: 'ls /home/jovyan/'
{jobs}- command: 'python final-result.py'

dags:
- 1 >> 2
- 1 >> 3
- 1 >> 4
- 2 >> 5
- 3 >> 5
- 4 >> 5
"""

JOB = """\
- command: 'python {low}.py'
  volumes:
  - id: '{low}-lorem-corpus'
    name: '{low}'
    path: '/home/jovyan/{low}'
"""

COUNT_SCRIPT = """\
import os

path = '/home/jovyan/{low}'
files = []
for (dirpath, dirnames, filenames) in os.walk(path):
    for i in filenames:
        files.append(os.path.join(dirpath, i))
    break

count = 0
for i in files:
    f = open(i, 'r')
    for line in f:
        count += line.count('lorem')

f = open('/home/jovyan/{low}-count.txt', 'a')
f.write('{org}: ' + str(count) + '\\n')
f.close()
"""

FINAL_SCRIPT = """\
import os

files = ['uis-count.txt', 'uio-count.txt', 'uib-count.txt']

result = ''
for i in files:
    f = open(i, 'r')
    for line in f:
        result += line

f = open('/home/jovyan/result.txt', 'a')
f.write(result)
f.close()
"""


def _cell(kind: str, source: str) -> dict[str, Any]:
    cell: dict[str, Any] = {"cell_type": kind, "metadata": {}, "source": source}
    if kind == "code":
        cell.update({"execution_count": None, "outputs": []})
    return cell


def notebook() -> dict[str, Any]:
    corpora = ", ".join(repr(f"{org.lower()}-lorem-corpus") for org in ORGS)
    cells = [
        _cell(
            "markdown",
            "# Counting `lorem` across three organizations\n\n"
            "Each organization keeps its corpus; you never see where it is stored. Lease the "
            "three corpora, run the workflow where the data is mounted, read the result.",
        ),
        _cell(
            "code",
            "from dshare_server.session import lease\n\n"
            f"for dataset in [{corpora}]:\n"
            "    print(lease(dataset, hours=2, purpose='thesis experiment 5.3.2'))",
        ),
        _cell("code", "%load_ext dshare_server\n%dshare_run workflow.yaml"),
        _cell("code", "print(open('result.txt').read())"),
    ]
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def write_experiment(home: Path) -> None:
    """Put the experiment into a scientist's home, leaving anything they changed alone."""
    home.mkdir(parents=True, exist_ok=True)
    files = {
        "workflow.yaml": WORKFLOW.format(jobs="".join(JOB.format(low=org.lower()) for org in ORGS)),
        "final-result.py": FINAL_SCRIPT,
        "experiment.ipynb": json.dumps(notebook(), indent=1) + "\n",
    }
    for org in ORGS:
        files[f"{org.lower()}.py"] = COUNT_SCRIPT.format(low=org.lower(), org=org)
    for name, text in files.items():
        path = home / name
        if not path.exists():
            path.write_text(text)

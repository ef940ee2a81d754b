"""Durable run records: `<state_dir>/runs/<run_id>/run.json`, written atomically.

The record is the executor's memory: the run's job uid (so a restart does not hand it
to another run while its processes may live), job states, outputs with their gate
verdicts and the owners' decisions. A crash leaves either the old or the new record.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

RUN_FILE = "run.json"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ACTIVE_STATES = ("pending", "running")


def valid_run_id(run_id: object) -> bool:
    return isinstance(run_id, str) and bool(_SAFE_ID.match(run_id))


class RunStore:
    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.state_dir = Path(state_dir)
        self.runs = self.state_dir / "runs"
        # Traversable, not listable: job uids reach their own workspace by path (see
        # workspace.prepare); everything else inside is root's alone.
        for d in (self.state_dir, self.runs):
            d.mkdir(mode=0o711, parents=True, exist_ok=True)
            os.chmod(d, 0o711)  # noqa: S103 - search only, see above

    def run_dir(self, run_id: str) -> Path:
        if not valid_run_id(run_id):
            raise ValueError("not a valid run id")
        return self.runs / run_id

    def save(self, record: dict[str, Any]) -> None:
        run_dir = self.run_dir(record["id"])
        run_dir.mkdir(mode=0o711, exist_ok=True)
        target = run_dir / RUN_FILE
        tmp = run_dir / (RUN_FILE + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)

    def load(self, run_id: str) -> dict[str, Any] | None:
        try:
            path = self.run_dir(run_id) / RUN_FILE
            record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record

    def load_all(self) -> list[dict[str, Any]]:
        records = []
        for entry in sorted(self.runs.iterdir()):
            if entry.is_dir() and valid_run_id(entry.name):
                record = self.load(entry.name)
                if record is not None:
                    records.append(record)
        return records

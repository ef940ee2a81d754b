"""Mock runs: a workflow run on mocks of datasets, before any lease, with no real data.

A mock run's mounts are of kind "mock": each carries a dataset's public schema (what the
ledger shows everyone: columns with their mock ranges, the skeleton) and nothing that
leads to data. The executor writes the mock files itself into the run's own directory
from that schema, and never opens an owner's handle for the run: a mock submission that
names a handle, or mixes real and mock mounts, is refused before anything is created.

What a mock run writes derives from the scientist's own home and synthetic rows only, so
it is released without checks; it is delivered under `mock-runs/<run_id>/` in the home,
beside a MOCK.txt that says what it is, never at the paths real results are written.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from dshare_chaincode import validate
from dshare_chaincode.errors import ContractError

from .. import mockdata
from ..webapi import ApiError, bad
from . import dataview
from . import workspace as ws
from .gate import fit_ledger
from .outputs import Gated

KIND = "mock"
MOCK_FIELDS = ("columns", "dataset_id", "dataset_name", "kind", "owner_org", "rows", "skeleton")
MOCK_DIR = "mock-runs"  # in the home: where a mock run's outputs are delivered
MARKER = "MOCK.txt"


def marker_text(run_id: str) -> str:
    return (
        f"These files are the outputs of mock run {run_id}.\n"
        "Its jobs read mock data: synthetic rows made from each dataset's public schema, "
        "not the real rows.\nThey test the code; they are not results. Lease the datasets "
        "and run the workflow without --mock for real results.\n"
    )


def is_mock_mount(mount: Any) -> bool:
    return isinstance(mount, dict) and mount.get("kind") == KIND


def check_mock_mount(claim: str, mount: Any) -> dict[str, Any]:
    """A mock mount, validated as the ledger validates a schema; refuses anything else."""
    field = f"mounts.{claim}"
    if not is_mock_mount(mount):
        raise bad(
            f"{field}.kind",
            "a mock run mounts mocks only: every mount must be of kind 'mock' "
            "(a dataset's public schema, no handle)",
        )
    unknown = sorted(set(mount) - set(MOCK_FIELDS))
    if unknown:
        raise bad(
            f"{field}.{unknown[0]}",
            "is not a field of a mock mount; a mock mount carries a dataset's public schema "
            f"only ({', '.join(MOCK_FIELDS)}), never a handle to its data",
        )
    rows = mount.get("rows")
    if not isinstance(rows, int) or isinstance(rows, bool) or not 0 <= rows <= mockdata.MAX_ROWS:
        raise bad(f"{field}.rows", f"must be a whole number of rows from 0 to {mockdata.MAX_ROWS}")
    try:
        dataset_id = validate.ident(mount.get("dataset_id"), f"{field}.dataset_id")
        columns = validate.columns(mount.get("columns", []), f"{field}.columns")
        skeleton = validate.skeleton(mount.get("skeleton", []), f"{field}.skeleton")
    except ContractError as error:
        raise bad(str(error.key), error.message.split(": ", 1)[1]) from None
    return {
        "kind": KIND,
        "dataset_id": dataset_id,
        "dataset_name": str(mount.get("dataset_name") or ""),
        "owner_org": str(mount.get("owner_org") or ""),
        "columns": columns,
        "skeleton": skeleton,
        "rows": rows,
    }


def check_room(records: Iterable[Mapping[str, Any]], org: str, user: str, limit: int) -> None:
    """Refuses a mock run while the scientist has `limit` going (0: no limit): they need
    no lease, and each holds a job identity of the pool every run draws from."""
    going = sum(
        1
        for r in records
        if r.get("mock")
        and r.get("org") == org
        and r.get("user") == user
        and not r.get("gate_done")
    )
    if limit and going >= limit:
        raise ApiError(
            "TOO_MANY_RUNS",
            f"you have {going} mock runs going and at most {limit} may run at once; wait for "
            "one to finish, or interrupt the kernel that runs it to cancel it",
        )


def _write_view(top: Path, name: str, mount: Mapping[str, Any]) -> Path:
    """The mock of one dataset as `<top>/<name>`: root's, readable by everyone (it is
    synthetic and public), writable by no job."""
    target = top / name
    if target.exists() or target.is_symlink():
        shutil.rmtree(target)
    target.mkdir(mode=0o755)
    asset = {"id": mount["dataset_id"], **mount}
    for entry in mount["skeleton"]:
        if str(entry["path"]).endswith("/"):  # the skeleton's folders, empty ones too
            (target / posixpath.normpath(entry["path"])).mkdir(
                mode=0o755, parents=True, exist_ok=True
            )
    for rel, data in mockdata.mock_files(asset, int(mount["rows"])).items():
        # The skeleton was validated (relative, no '..'); normpath keeps it inside.
        dest = target / posixpath.normpath(rel)
        dest.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    for dirpath, _dirs, _files in os.walk(target):
        os.chmod(dirpath, 0o755)  # noqa: S103 - synthetic data, readable by the job uid
    return target


def open_mock_views(run_dir: Path, mounts: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Each mock mount's view, written and opened for bwrap: {claim: O_PATH descriptor}.
    Beside where lease views go (a mock run has none), so remove_views removes them."""
    top = run_dir / dataview.DATA
    top.mkdir(mode=0o711, exist_ok=True)
    os.chmod(top, 0o711)  # noqa: S103 - traversal only
    return dataview.open_each(
        (claim, partial(_write_view, top, f"mock-{n}", mount))
        for n, (claim, mount) in enumerate(sorted(mounts.items()))
    )


def delivered_path(run_id: str, rel: str) -> str:
    return f"{MOCK_DIR}/{run_id}/{rel}"


def gate_mock(*, run_id: str, workspace: Path, seeded: ws.Manifest, staging: Path) -> Gated:
    """Release everything a mock run wrote, without checks, under `mock-runs/<run_id>/`."""
    found = ws.collect(workspace, seeded, staging)
    kept, warnings = fit_ledger({delivered_path(run_id, rel): i for rel, i in found.items()})
    gated = Gated(warnings=warnings)
    for rel, info in sorted(found.items()):
        path = delivered_path(run_id, rel)
        if path not in kept:
            (staging / rel).unlink(missing_ok=True)
            continue
        gated.outputs.append(
            {
                "path": path,
                "stage": path,
                **info.as_dict(),
                "decision": "released",
                "checks": [],
                "owners": [],
                "decisions": {},
                "mock": True,
            }
        )
        gated.released[path] = staging / rel
    marker = staging.parent / MARKER
    marker.write_text(marker_text(run_id))
    gated.released[delivered_path(run_id, MARKER)] = marker
    return gated

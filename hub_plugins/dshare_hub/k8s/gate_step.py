"""dshare's own steps in a run's Workflow: `python -m dshare_hub.k8s.gate_step seed|gate|decide`.

They run in the broker's image, never the scientist's, as the notebook's uid, with the
volumes `trusted.make_trusted_workflow` mounts and their places in `DSHARE_GATE` (JSON):

- seed: copies the home's regular files (never through a link) into the staging claim,
  which the jobs then use as their home, and records what it copied;
- gate (the exit handler): what the jobs wrote that is new or changed, and their logs
  when the run read data, through the same gate as the embedded executor
  (`executor.outputs`); the released files go into the home, the held ones stay on the
  staging claim; the verdict is written to `report`, Argo's output parameter;
- decide: one held file delivered into the home, or deleted.

The home is the scientist's: anything in it may be a link planted to make this step
write elsewhere (its own report, say). Writes into the home open every component
without following links, so a planted link makes delivery fail, never go astray.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..executor import workspace as ws
from ..executor.deliver import safe_relative
from ..executor.gate import parse_policy
from ..executor.outputs import corpora_of, gate_run, open_dirs
from ..webapi import ApiError

WORK, LOGS, STAGED, SEEDED = "work", "logs", "staged", "seeded.json"
SKIPPED = ".dshare/runs/"  # earlier runs' released logs: not the jobs' business
_CHUNK = 1 << 20


class StepError(Exception):
    """Bad configuration: exit 2, the message names the field."""


class TooLarge(Exception):
    """The home is larger than the seed may copy: exit 3."""


def _config() -> dict[str, Any]:
    raw = os.environ.get("DSHARE_GATE")
    if not raw:
        raise StepError("DSHARE_GATE: not set; it must be the step's JSON configuration")
    try:
        config = json.loads(raw)
    except ValueError:
        raise StepError("DSHARE_GATE: is not JSON") from None
    if not isinstance(config, dict):
        raise StepError("DSHARE_GATE: must be a JSON object")
    for key in ("run_id", "run_dir", "home", "report"):
        if not isinstance(config.get(key), str) or not config[key]:
            raise StepError(f"DSHARE_GATE.{key}: must be a non-empty string")
    for key in ("data", "policies"):
        if not isinstance(config.setdefault(key, {}), dict):
            raise StepError(f"DSHARE_GATE.{key}: must be an object keyed by lease id")
    return config


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(value, out)
    os.replace(tmp, path)


def _copy_fd(src: int, dst: int) -> None:
    while chunk := os.read(src, _CHUNK):
        os.write(dst, chunk)


def seed(config: dict[str, Any]) -> dict[str, Any]:
    home, run_dir = Path(config["home"]), Path(config["run_dir"])
    cap = int(config.get("seed_cap") or 64 * 1024 * 1024)
    work = run_dir / WORK
    if work.exists():  # Argo retried the step: start again from the home
        shutil.rmtree(work)
    for sub in (work, run_dir / LOGS, run_dir / STAGED):
        sub.mkdir(parents=True, exist_ok=True)
    total = 0
    for dirpath, _dirs, files, dir_fd in os.fwalk(home, follow_symlinks=False):
        rel_dir = os.path.relpath(dirpath, home)
        if (rel_dir + "/").startswith(SKIPPED):
            continue
        for name in files:
            rel = name if rel_dir == "." else os.path.join(rel_dir, name)
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
            except OSError:
                continue  # a link, a socket, a vanished file
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    continue
                total += os.fstat(fd).st_size
                if total > cap:
                    raise TooLarge(
                        f"the home is larger than {cap:,} bytes; remove large files from "
                        "it, or ask the operator to raise BrokerApp.max_workspace_bytes"
                    )
                target = work / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
                try:
                    _copy_fd(fd, out)
                finally:
                    os.close(out)
            finally:
                os.close(fd)
    seeded = ws.snapshot(work)
    _write_json(run_dir / SEEDED, {rel: info.as_dict() for rel, info in seeded.items()})
    return {"seeded": len(seeded)}


def deliver_into(home: Path, rel: str, source: Path) -> str:
    """Write ``source`` at ``home/rel``, never following a link; "" or why it failed."""
    if not safe_relative(rel):
        return "not a path inside the home"
    *parents, name = rel.split("/")
    fds = [os.open(home, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)]
    try:
        for part in parents:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fds[-1])
            fds.append(os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fds[-1]))
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        out = os.open(name, flags, 0o644, dir_fd=fds[-1])
        try:
            src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                _copy_fd(src, out)
            finally:
                os.close(src)
        finally:
            os.close(out)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):  # a link or a file stands in the way
            return "a symbolic link or a file is in the way in the home"
        return error.strerror or type(error).__name__
    finally:
        for fd in fds:
            os.close(fd)
    return ""


def gate(config: dict[str, Any]) -> dict[str, Any]:
    home, run_dir = Path(config["home"]), Path(config["run_dir"])
    scan_cap = int(config.get("scan_cap") or 8 * 1024 * 1024)
    warnings: list[str] = []
    try:
        saved = json.loads((run_dir / SEEDED).read_text())
        seeded = {rel: ws.FileInfo(v["sha256"], int(v["size"])) for rel, v in saved.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        seeded = {}
        warnings.append("the record of the seeded home is missing: every file counts as new")
    try:
        policies = {k: parse_policy(k, v) for k, v in config["policies"].items()}
    except ApiError as error:
        raise StepError(f"DSHARE_GATE.{error.field}: {error.message}") from None
    dirs = open_dirs(config["data"])

    def unreadable(lease_id: str) -> None:
        warnings.append(f"the data of lease {lease_id} could not be read for the gate")

    try:
        corpora = corpora_of(dirs, policies, scan_cap, unreadable)
    finally:
        for fd in dirs.values():
            os.close(fd)
    gated = gate_run(
        run_id=config["run_id"],
        workspace=run_dir / WORK,
        seeded=seeded,
        staging=run_dir / STAGED,
        logs=run_dir / LOGS if config["data"] else None,
        policies=policies,
        corpora=corpora,
        scan_cap=scan_cap,
    )
    warnings += gated.warnings
    for out in gated.outputs:
        staged = gated.released.get(out["stage"])
        if staged is None:
            continue
        why = deliver_into(home, out["stage"], staged)
        out["delivered"] = not why
        if why:
            out["delivery_error"] = why
            warnings.append(f"{out['path']} could not be written to the home: {why}")
        else:
            staged.unlink()
    return {"outputs": gated.outputs, "warnings": warnings}


def decide(config: dict[str, Any]) -> dict[str, Any]:
    stage, approve = config.get("stage"), config.get("approve")
    if not isinstance(stage, str) or not safe_relative(stage):
        raise StepError("DSHARE_GATE.stage: must be the held output's path inside the home")
    if not isinstance(approve, bool):
        raise StepError("DSHARE_GATE.approve: must be true or false")
    staged = Path(config["run_dir"]) / STAGED / stage
    if not staged.is_file() or staged.is_symlink():
        raise StepError(f"DSHARE_GATE.stage: no held output {stage!r} waits on this run")
    why = deliver_into(Path(config["home"]), stage, staged) if approve else ""
    if not why:
        staged.unlink()
    return {"stage": stage, "delivered": approve and not why, "error": why}


STEPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "seed": seed,
    "gate": gate,
    "decide": decide,
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in STEPS:
        print(f"usage: python -m dshare_hub.k8s.gate_step {'|'.join(STEPS)}", file=sys.stderr)
        return 2
    try:
        config = _config()
        result = STEPS[args[0]](config)
    except StepError as error:
        print(f"dshare {args[0]}: {error}", file=sys.stderr)
        return 2
    except TooLarge as error:
        print(f"dshare {args[0]}: {error}", file=sys.stderr)
        return 3
    _write_json(Path(config["report"]), result)
    # Counts only: a file's name may copy the data.
    outputs = result.get("outputs") or []
    held = sum(1 for o in outputs if o.get("decision") == "held")
    print(f"dshare {args[0]}: done; {len(outputs)} output(s), {held} held")
    return 0


if __name__ == "__main__":
    sys.exit(main())

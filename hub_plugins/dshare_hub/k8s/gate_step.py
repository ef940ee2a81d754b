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

The scientist's code never runs here: that is why these steps alone may mount the home
(and the gate the leased data too), and why the scientist's own files are the attack.
The home is the scientist's: anything in it may be a link planted to make this step
write elsewhere (its own report, say). Writes into the home open every component
without following links, so a planted link makes delivery fail, never go astray.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
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
from ..executor.gate import Policy, parse_policy
from ..executor.outputs import corpora_of, gate_run, open_dirs, wants_corpus
from ..executor.winnow import Corpus
from ..webapi import ApiError

WORK, LOGS, STAGED, SEEDED = "work", "logs", "staged", "seeded.json"
SKIPPED = ".dshare/runs/"  # earlier runs' released logs: not the jobs' business
_CHUNK = 1 << 20
CAPS = {"scan_cap": 8 * 1024 * 1024, "seed_cap": 64 * 1024 * 1024}


class StepError(Exception):
    """The step cannot go on: bad configuration (exit 2, naming the field) or a home over
    the seed's cap (exit 3). The message is the scientist's to read."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


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
    for key, default in CAPS.items():
        cap = config.get(key)
        if cap is None:
            config[key] = default
        elif not isinstance(cap, int) or isinstance(cap, bool) or cap <= 0:
            raise StepError(f"DSHARE_GATE.{key}: must be a positive number of bytes")
    return config


def _policies(raw: dict[str, Any]) -> dict[str, Policy]:
    policies = {}
    for lease_id, policy in raw.items():
        try:
            policies[lease_id] = parse_policy(lease_id, policy)
        except ApiError as error:
            where = (error.field or "policy").removeprefix("policy")
            why = error.message.removeprefix(f"{error.field}: ")
            raise StepError(f"DSHARE_GATE.policies.{lease_id}{where}: {why}") from None
    return policies


def _write_json(path: Path, value: Any) -> None:
    # A fresh name each time: a tmp left by a killed attempt must not block the retry.
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(value, out)
    os.replace(tmp, path)


def seed(config: dict[str, Any]) -> dict[str, Any]:
    home, run_dir = Path(config["home"]), Path(config["run_dir"])
    cap: int = config["seed_cap"]
    work = run_dir / WORK
    if work.exists():  # Argo retried the step: start again from the home
        shutil.rmtree(work)
    for sub in (work, run_dir / LOGS, run_dir / STAGED):
        sub.mkdir(parents=True, exist_ok=True)
    # Approved code only: the files the owners approved, as they were approved; the home
    # may have changed since the broker checked, so each is hashed as it is copied.
    approved: dict[str, str] | None = config.get("code_files")
    copied: dict[str, str] = {}
    total = 0
    for dirpath, dirs, files, dir_fd in os.fwalk(home, follow_symlinks=False):
        rel_dir = os.path.relpath(dirpath, home)
        if (rel_dir + "/").startswith(SKIPPED):
            dirs.clear()
            continue
        for name in files:
            rel = name if rel_dir == "." else os.path.join(rel_dir, name)
            if approved is not None and rel not in approved:
                continue
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
            except OSError:
                continue  # a link, a socket, a vanished file
            with os.fdopen(fd, "rb") as src:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    continue
                total += info.st_size
                if total > cap:
                    raise StepError(
                        f"the home is larger than {cap:,} bytes; remove large files from "
                        "it, or ask the operator to raise BrokerApp.max_workspace_bytes",
                        3,
                    )
                (work / rel).parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with open(work / rel, "xb") as out:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                copied[rel] = digest.hexdigest()
    if approved is not None:
        changed = sorted(p for p, sha in approved.items() if copied.get(p) != sha)
        if changed:
            raise StepError(
                "the approved code changed in the home after the run was accepted: "
                f"{', '.join(changed)}; nothing ran. Put the approved version back or ask "
                "for approval again",
                3,
            )
    seeded = ws.snapshot(work)
    _write_json(run_dir / SEEDED, {rel: info.as_dict() for rel, info in seeded.items()})
    return {"seeded": len(seeded)}


def deliver_into(home: Path, rel: str, source: Path) -> str:
    """Write ``source`` at ``home/rel``, never following a link; "" or why it failed."""
    if not safe_relative(rel):
        return "not a path inside the home"
    *parents, name = rel.split("/")
    fds: list[int] = []
    try:
        fds.append(os.open(home, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW))
        for part in parents:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fds[-1])
            fds.append(os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fds[-1]))
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        with (
            os.fdopen(os.open(source, os.O_RDONLY | os.O_NOFOLLOW), "rb") as src,
            os.fdopen(os.open(name, flags, 0o644, dir_fd=fds[-1]), "wb") as out,
        ):
            shutil.copyfileobj(src, out, _CHUNK)
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
    scan_cap: int = config["scan_cap"]
    warnings: list[str] = []
    try:
        saved = json.loads((run_dir / SEEDED).read_text())
        seeded = {rel: ws.FileInfo(v["sha256"], int(v["size"])) for rel, v in saved.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        seeded = {}
        warnings.append("the record of the seeded home is missing: every file counts as new")
    policies = _policies(config["policies"])

    def unreadable(lease_id: str) -> None:
        # The lease id only: a path or an error's text could carry the data's names.
        warnings.append(f"the data of lease {lease_id} could not be read for the gate")

    dirs: dict[str, int] = {}
    corpora: dict[str, Corpus | None] = {}
    try:
        for lease_id, path in config["data"].items():
            try:
                dirs |= open_dirs({lease_id: path})
            except OSError:
                unreadable(lease_id)
                if lease_id in policies and wants_corpus(policies[lease_id]):
                    corpora[lease_id] = None  # judged as unreadable data: held
        corpora |= corpora_of(dirs, policies, scan_cap, unreadable)
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


Step = Callable[[dict[str, Any]], dict[str, Any]]
STEPS: dict[str, Step] = {"seed": seed, "gate": gate, "decide": decide}


def _summary(step: str, result: dict[str, Any]) -> str:
    # Counts only: the pod's log reaches people whom the data's file names must not.
    if step == "seed":
        return f"copied {result['seeded']} file(s) from the home"
    if step == "decide":
        if result["error"]:
            return "the held output could not be delivered; see the report"
        return "the held output was " + ("delivered" if result["delivered"] else "deleted")
    outputs = result["outputs"]
    held = sum(1 for o in outputs if o["decision"] == "held")
    failed = sum(1 for o in outputs if o.get("delivered") is False)
    return f"done; {len(outputs)} output(s), {held} held, {failed} not delivered"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in STEPS:
        print(f"usage: python -m dshare_hub.k8s.gate_step {'|'.join(STEPS)}", file=sys.stderr)
        return 2
    step = args[0]
    try:
        config = _config()
        result = STEPS[step](config)
        _write_json(Path(config["report"]), result)
    except StepError as error:
        print(f"dshare {step}: {error}", file=sys.stderr)
        return error.code
    except OSError as error:
        # The error's text, never its file's name: a name may copy the data.
        print(f"dshare {step}: failed: {error.strerror or type(error).__name__}", file=sys.stderr)
        return 1
    print(f"dshare {step}: {_summary(step, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

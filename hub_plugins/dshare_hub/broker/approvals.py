"""Owner-approved code, the broker's side: a run's code identity, computed here from what
this broker compiled and from the workspace it ships, never taken from the client.

The identity has two parts (`dshare_chaincode.approvals.code_identity`):

- the jobs: the canonical form of the parsed workflow the compiler turns into job
  containers (names, commands, images as resolved, env, resources, timeouts, mounts by
  dataset and path, the DAG, the working directory), without what differs from run to run
  (run id, claim names, lease ids and expiry, the deadline);
- the files: SHA-256 of every workspace file the jobs can run, which are the files their
  commands name (any word of a command, also inside `sh -c "..."`, that is the path of a
  file of the snapshot) plus the files and folders the workflow lists under `code:`.

A job can run any file it finds (`sh -c "python $(echo b.py)"`, a module imported by a
sibling, a file read and exec'd), so a run over data that requires approved code ships
ONLY the files of its identity: the workspace is cut down to them before the runner sees
it. What is not in the identity does not exist in the job's sandbox.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import posixpath
import shlex
import tarfile
from dataclasses import dataclass, field
from typing import Any

from dshare_chaincode.approvals import MAX_CONTENT, code_identity
from dshare_server.workflow.spec import Spec
from dshare_server.workflow.workspace import MAX_RAW_BYTES

from .errors import ApiError, bad
from .service import ADMIN, READ, Broker
from .views import Caller, check_id, require_object

MAX_MEMBERS = 200_000
MAX_TEXT_FILE = 256 * 1024  # bytes of one file shown to the owner's admins
MAX_DIFF_LINES = 4000
DECISION_FIELDS = ("decision", "reason")


@dataclass
class Snapshot:
    """What a workspace tar holds: regular files by path, directories, everything else."""

    files: dict[str, tarfile.TarInfo] = field(default_factory=dict)
    dirs: dict[str, tarfile.TarInfo] = field(default_factory=dict)


def _norm(name: str) -> str:
    return posixpath.normpath(name.lstrip("/")).removeprefix("./")


def read_snapshot(workspace: bytes, max_raw_bytes: int = MAX_RAW_BYTES) -> Snapshot:
    """The members of the scientist's workspace tar, headers only, with their sizes capped."""
    snap = Snapshot()
    if not workspace:
        return snap
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(workspace), mode="r:*") as tar:
            for count, member in enumerate(tar):
                if count >= MAX_MEMBERS:
                    raise bad("workspace", f"holds more than {MAX_MEMBERS:,} entries")
                total += max(0, member.size)
                if total > max_raw_bytes:
                    raise bad(
                        "workspace",
                        f"unpacks to more than {max_raw_bytes:,} bytes; move what the jobs "
                        "do not need out of the home",
                    )
                name = _norm(member.name)
                if name in ("", ".") or name.startswith("../"):
                    continue
                if member.isfile():
                    snap.files[name] = member
                elif member.isdir():
                    snap.dirs[name] = member
    except (tarfile.TarError, EOFError, OSError):
        raise bad("workspace", "is not a readable gzip tar of the home") from None
    return snap


def _words(command: str) -> list[str]:
    """Every word of a command, also of the commands given to a shell with -c."""
    out: list[str] = []
    queue = [command]
    while queue and len(out) < 10_000:
        text = queue.pop()
        # Shell operators (`;`, `&&`, `|`) split words as the shell would.
        lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        try:
            words = list(lexer)
        except ValueError:
            words = text.split()
        for word in words:
            out.append(word)
            if any(c.isspace() for c in word) or ";" in word:
                queue.append(word)
            if "=" in word:
                out.append(word.split("=", 1)[1])
    return out


def command_files(spec: Spec, snap: Snapshot, working_dir: str, home_path: str) -> set[str]:
    """The snapshot's files that the jobs' commands name, as paths in the home."""
    named: set[str] = set()
    for job in spec.jobs:
        for word in _words(job.command):
            for prefix in (home_path.rstrip("/") + "/", "~/", "$HOME/", "${HOME}/"):
                if word.startswith(prefix):
                    rel = word[len(prefix) :]
                    break
            else:
                if word.startswith("/"):
                    continue
                rel = posixpath.join(working_dir or ".", word)
            path = _norm(rel)
            if path in snap.files:
                named.add(path)
    return named


def listed_files(spec: Spec, snap: Snapshot, working_dir: str) -> set[str]:
    """The files of the `code:` entries (a folder stands for every file under it)."""
    out: set[str] = set()
    missing = []
    for entry in spec.code:
        path = _norm(posixpath.join(working_dir or ".", entry))
        if path in snap.files:
            out.add(path)
            continue
        under = [p for p in snap.files if p.startswith(path.rstrip("/") + "/")]
        if not under:
            missing.append(entry)
        out.update(under)
    if missing:
        raise bad(
            "spec",
            f"code: {', '.join(missing)} is not a file or folder of your home (symbolic links "
            "are not followed); fix the path or remove it from `code:`",
        )
    return out


def job_identity(spec: Spec, leases: dict[str, Any], image: str, working_dir: str) -> str:
    """SHA-256 of the jobs as compiled, without what changes from one run to the next."""
    jobs = []
    for job in spec.jobs:
        doc = job.canonical()
        doc["image"] = job.image or image
        doc["volumes"] = [
            [str(leases[v.lease_id].get("asset_id") or v.lease_id), v.path] for v in job.volumes
        ]
        jobs.append(doc)
    blob = json.dumps(
        {
            "name": spec.name,
            "env": dict(sorted(spec.env.items())),
            "jobs": jobs,
            "edges": sorted(spec.edges),
            "working_dir": working_dir or ".",
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    return hashlib.sha256(blob).hexdigest()


@dataclass
class Code:
    """A run's code identity with what the owner's admins read and what the run ships."""

    job_sha256: str
    files: dict[str, str]  # path -> sha256
    contents: dict[str, str | None]  # path -> text (None: binary or too large to show)
    workspace: bytes  # the workspace cut down to the identity's files

    @property
    def code_sha256(self) -> str:
        return code_identity(self.job_sha256, self.files)

    def ledger_arg(self) -> str:
        return json.dumps({"job_sha256": self.job_sha256, "files": self.files})


def code_of(
    spec: Spec,
    leases: dict[str, Any],
    workspace: bytes,
    *,
    image: str,
    working_dir: str,
    home_path: str,
) -> Code:
    """Hash the run's code and pack the workspace it will run with (only those files)."""
    snap = read_snapshot(workspace)
    chosen = command_files(spec, snap, working_dir, home_path) | listed_files(
        spec, snap, working_dir
    )
    data: dict[str, bytes] = {}
    if chosen:
        # In archive order: a gzip stream read backwards is decompressed again from the start.
        with tarfile.open(fileobj=io.BytesIO(workspace), mode="r:*") as src:
            for member in src:
                path = _norm(member.name)
                if path in chosen and member.isfile() and path not in data:
                    handle = src.extractfile(member)
                    data[path] = handle.read() if handle is not None else b""
    files: dict[str, str] = {}
    contents: dict[str, str | None] = {}
    shown = 0
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=1) as dst:
        # Folders first, so the run finds the tree (and its working directory) it expects.
        wanted_dirs = {_norm(working_dir)} if working_dir else set()
        for path in chosen:
            parent = posixpath.dirname(path)
            while parent:
                wanted_dirs.add(parent)
                parent = posixpath.dirname(parent)
        for path in sorted(wanted_dirs & set(snap.dirs)):
            dst.addfile(_header(path, snap.dirs[path]))
        for path in sorted(data):
            body = data[path]
            files[path] = hashlib.sha256(body).hexdigest()
            text = _text(body)
            if text is not None and shown + len(text) <= MAX_CONTENT:
                shown += len(text)
                contents[path] = text
            else:
                contents[path] = None
            dst.addfile(_header(path, snap.files[path], len(body)), io.BytesIO(body))
    job = job_identity(spec, leases, image, working_dir)
    return Code(job_sha256=job, files=files, contents=contents, workspace=out.getvalue())


def _header(path: str, like: tarfile.TarInfo, size: int = 0) -> tarfile.TarInfo:
    """A new header for a shipped entry. The scientist's own headers are not copied: their
    pax records (a GNU sparse map, a size) would make the executor unpack other bytes than
    the ones hashed here."""
    info = tarfile.TarInfo(path)
    info.type = tarfile.DIRTYPE if like.isdir() else tarfile.REGTYPE
    info.mode = like.mode & 0o755
    info.mtime = max(0, int(like.mtime))
    info.size = size
    return info


def _text(data: bytes) -> str | None:
    if len(data) > MAX_TEXT_FILE or b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def unified_diff(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """The workflow and every file of `new` against `old` (an earlier approved request)."""
    before = old or {"spec": "", "files": {}, "contents": {}}
    lines: list[str] = []

    def add(name: str, a: str | None, b: str | None, sha_a: str, sha_b: str) -> None:
        if a is None or b is None:
            if sha_a != sha_b:
                lines.append(f"--- a/{name}\n+++ b/{name}\n")
                lines.append(
                    f"@@ binary or too large to show: sha256 {sha_a or '-'} -> {sha_b or '-'}\n"
                )
            return
        lines.extend(
            difflib.unified_diff(
                a.splitlines(keepends=True),
                b.splitlines(keepends=True),
                fromfile=f"a/{name}" if sha_a else "/dev/null",
                tofile=f"b/{name}" if sha_b else "/dev/null",
            )
        )

    add("workflow.yaml", before["spec"], new["spec"], "spec" if old else "", "spec")
    for path in sorted(set(before["files"]) | set(new["files"])):
        sha_a, sha_b = before["files"].get(path, ""), new["files"].get(path, "")
        if sha_a == sha_b:
            continue
        text_a = before["contents"].get(path) if sha_a else ""
        text_b = new["contents"].get(path) if sha_b else ""
        add(path, text_a, text_b, sha_a, sha_b)
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    cut = text.splitlines(keepends=True)
    if len(cut) > MAX_DIFF_LINES:
        text = "".join(cut[:MAX_DIFF_LINES]) + f"... {len(cut) - MAX_DIFF_LINES} more lines\n"
    return text


def approval_view(record: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "id",
        "owner_org",
        "dataset_ids",
        "org",
        "user",
        "code_sha256",
        "state",
        "requested_at",
        "decided_at",
        "decided_by",
        "reason",
    )
    view = {k: record.get(k) for k in keep}
    view["files"] = [
        {
            "path": p,
            "sha256": s,
            **({"content": record["contents"].get(p)} if "contents" in record else {}),
        }
        for p, s in sorted((record.get("files") or {}).items())
    ]
    if "spec" in record:
        view["spec"] = record["spec"]
    return view


class CodeApprovals:
    """POST/GET /approvals and the check a run passes before anything is materialized.
    `image` is the runner's default image and `home_path` the home as jobs see it: both
    are part of what the jobs run."""

    def __init__(self, broker: Broker, *, image: str, home_path: str) -> None:
        self.broker = broker
        self.image = image
        self.home_path = home_path

    async def requiring(
        self, leases: dict[str, Any], lease_ids: list[str], actor: str
    ) -> dict[str, list[str]]:
        """Owner organization -> its datasets among the run's that require approved code."""
        out: dict[str, list[str]] = {}
        for lease_id in lease_ids:
            asset = await self.broker.asset_record(str(leases[lease_id]["asset_id"]), actor)
            if (asset.get("policy") or {}).get("code_approval_required"):
                out.setdefault(str(asset["owner_org"]), []).append(str(asset["id"]))
        return {owner: sorted(set(ids)) for owner, ids in out.items()}

    def code(self, spec: Spec, leases: dict[str, Any], workspace: bytes, working_dir: str) -> Code:
        return code_of(
            spec,
            leases,
            workspace,
            image=self.image,
            working_dir=working_dir,
            home_path=self.home_path,
        )

    async def for_run(
        self, caller: Caller, spec: Spec, leases: dict[str, Any], workspace: bytes, working_dir: str
    ) -> tuple[Code | None, bytes]:
        """The code identity to record with the run and the workspace the run ships; None
        and the whole workspace when no dataset of the run requires approved code."""
        if not await self.requiring(leases, spec.lease_ids, caller.user):
            return None, workspace
        code = self.code(spec, leases, workspace, working_dir)
        return code, code.workspace

    async def request(
        self,
        caller: Caller,
        text: str,
        spec: Spec,
        leases: dict[str, Any],
        workspace: bytes,
        working_dir: str,
    ) -> dict[str, Any]:
        """Ask every owner whose datasets require it to approve this workflow's code (the
        caller's LEASE scope was checked by RunService.request_approval)."""
        needing = await self.requiring(leases, spec.lease_ids, caller.user)
        if not needing:
            raise ApiError(
                "INVALID_STATE",
                "no dataset this workflow reads requires approved code; run it as it is",
                "spec",
            )
        code = self.code(spec, leases, workspace, working_dir)
        made: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        for owner, dataset_ids in sorted(needing.items()):
            try:
                record = await self.broker._submit(
                    "RequestCodeApproval",
                    json.dumps(dataset_ids),
                    code.ledger_arg(),
                    text,
                    json.dumps(code.contents),
                    actor=caller.user,
                )
            except ApiError as error:
                # Already approved or waiting for this owner: the others are still asked.
                if error.code != "INVALID_STATE":
                    raise
                skipped.append({"owner_org": owner, "code": error.code, "message": error.message})
                continue
            made.append(approval_view(record))
        if not made:
            raise ApiError("INVALID_STATE", skipped[0]["message"])
        return {"items": made, "skipped": skipped, "code_sha256": code.code_sha256}

    async def list_requests(self, caller: Caller, params: dict[str, str]) -> dict[str, Any]:
        self.broker.require(caller, READ)
        scope = params.get("scope", "mine")
        if scope == "mine":
            result = await self.broker._evaluate(
                "ListCodeApprovals", json.dumps({"user": caller.user}), actor=caller.user
            )
            return {"items": [approval_view(r) for r in result["items"]]}
        if scope != "review":
            raise ApiError("INVALID_ARGUMENT", "scope: must be mine or review", "scope")
        self.broker.require_admin(caller, "review code for its datasets")
        result = await self.broker._evaluate(
            "ListCodeApprovals", json.dumps({"owner_org": self.broker.org}), actor=caller.user
        )
        summaries: list[dict[str, Any]] = result["items"]
        newest = summaries[-50:]
        items = []
        full: dict[str, dict[str, Any]] = {}
        for summary in newest:
            record = await self.broker._evaluate(
                "GetCodeApproval", summary["id"], actor=caller.user
            )
            full[record["id"]] = record
        for summary in newest:
            record = full[summary["id"]]
            previous = self._previous(record, summaries)
            earlier = None
            if previous is not None:
                earlier = full.get(previous["id"]) or await self.broker._evaluate(
                    "GetCodeApproval", previous["id"], actor=caller.user
                )
            view = approval_view(record)
            view["previous"] = (
                None
                if earlier is None
                else {"id": earlier["id"], "decided_at": earlier["decided_at"]}
            )
            view["diff"] = unified_diff(earlier, record)
            items.append(view)
        return {"items": items}

    @staticmethod
    def _previous(record: dict[str, Any], summaries: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The latest approval of this owner, before `record`, for one of its datasets."""
        candidates = [
            s
            for s in summaries
            if s["id"] != record["id"]
            and s["state"] == "approved"
            and (s["decided_at"] or "") < (record["decided_at"] or "\uffff")
            and set(s["dataset_ids"]) & set(record["dataset_ids"])
        ]
        return max(candidates, key=lambda s: (s["decided_at"], s["id"])) if candidates else None

    async def decide(self, caller: Caller, approval_id: str, body: Any) -> dict[str, Any]:
        self.broker.require(caller, ADMIN)
        self.broker.require_admin(caller, "decide on code for its datasets")
        data = require_object(body, "{decision, reason}")
        unknown = sorted(set(data) - set(DECISION_FIELDS))
        if unknown:
            raise bad(unknown[0], f"unknown field; allowed fields: {', '.join(DECISION_FIELDS)}")
        decision, reason = data.get("decision"), data.get("reason", "")
        if decision not in ("approve", "deny"):
            raise bad("decision", "must be 'approve' or 'deny'")
        if not isinstance(reason, str):
            raise bad("reason", "must be a string")
        if decision == "deny" and not reason.strip():
            raise bad("reason", "say why the code is denied: the scientist reads it")
        record = await self.broker._submit(
            "DecideCodeApproval",
            check_id(approval_id, "approval_id"),
            decision,
            reason,
            actor=caller.user,
        )
        return approval_view(record)

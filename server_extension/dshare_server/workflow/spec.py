"""The workflow.yaml parser: jupyterflow's format, the thesis's volumes, and dshare's extras.

The file is composed (never constructed) with a safe YAML loader so every value keeps its
line and column; problems are collected rather than stopping at the first one, and the
whole file is refused if any is found. Nothing here touches the filesystem or network.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import posixpath
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import yaml

from .leases import LeaseView
from .problems import Problem, SpecError

MAX_BYTES = 1024 * 1024
# Composing shares aliased nodes; walking them expands them. This bounds the expansion
# (a "billion laughs" file) while leaving room for a 1,000-job, 5,000-edge workflow.
MAX_NODE_VISITS = 200_000
MAX_JOBS = 5_000
DEFAULT_HOME = "/home/jovyan"

TOP_KEYS = ("jobs", "dags", "name", "deadline", "env", "code")
MAX_CODE_PATHS = 1000
JOB_KEYS = ("command", "name", "image", "env", "resources", "volumes", "timeout")
RESOURCE_KEYS = ("cpu", "memory")
VOLUME_KEYS = ("id", "name", "path")

_YAML_TAG = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {
    _YAML_TAG + t for t in ("str", "int", "float", "bool", "null", "seq", "map", "timestamp")
}
_JOB_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_WORKFLOW_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,48}[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$", re.ASCII)
# No lease lasts longer; beyond it a deadline is a typo, and datetime would overflow.
MAX_DEADLINE_S = 366 * 24 * 3600
_CPU = re.compile(r"^(\d+(\.\d+)?|\d+m)$")
_MEMORY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_RESERVED_PREFIX = "dshare-"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class VolumeRef:
    lease_id: str
    name: str
    path: str


@dataclass(frozen=True)
class Job:
    index: int  # 1-based, as users write it in `dags:`
    name: str
    command: str
    image: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    cpu: str | None = None
    memory: str | None = None
    volumes: tuple[VolumeRef, ...] = ()
    timeout_s: int | None = None
    line: int = 0

    def canonical(self) -> dict[str, object]:
        return {
            "name": self.name,
            "command": self.command,
            "image": self.image,
            "env": dict(sorted(self.env.items())),
            "cpu": self.cpu,
            "memory": self.memory,
            "volumes": [[v.lease_id, v.path] for v in self.volumes],
            "timeout_s": self.timeout_s,
        }


@dataclass(frozen=True)
class Spec:
    jobs: tuple[Job, ...]
    edges: tuple[tuple[str, str], ...]  # (upstream job name, downstream job name)
    name: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    deadline: datetime | None = None
    deadline_text: str | None = None
    warnings: tuple[str, ...] = ()
    # Workspace files and folders the jobs run besides those their commands name
    # (imported modules, configuration): part of the code identity owners approve.
    code: tuple[str, ...] = ()

    def dependencies(self, job_name: str) -> list[str]:
        return [a for a, b in self.edges if b == job_name]

    @property
    def lease_ids(self) -> list[str]:
        """Distinct leased volume ids in first-use order (what the broker must mount)."""
        seen: dict[str, None] = {}
        for job in self.jobs:
            for vol in job.volumes:
                seen.setdefault(vol.lease_id, None)
        return list(seen)

    def sha256(self) -> str:
        """Hash of what will run: the broker records it on the ledger with the run."""
        doc = {
            "name": self.name,
            "env": dict(sorted(self.env.items())),
            "deadline": self.deadline_text,
            "jobs": [j.canonical() for j in self.jobs],
            "edges": sorted(self.edges),
        }
        blob = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


def parse_duration(text: str) -> int | None:
    """``90``, ``"90s"``, ``"15m"``, ``"1h30m"``, ``"2d"`` to seconds; None if malformed."""
    text = text.strip()
    if text.isascii() and text.isdigit():
        return int(text)
    m = _DURATION.match(text)
    if not text or not m:
        return None
    d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


def _nearest(word: str, choices: tuple[str, ...] | list[str]) -> str | None:
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return found[0] if found else None


class _Budget(Exception):
    """Raised when walking the file would expand more nodes than allowed."""


class _Parser:
    def __init__(
        self,
        text: str,
        leases: Mapping[str, LeaseView] | None,
        user: str | None,
        home_path: str,
        now: datetime,
    ) -> None:
        self.text = text
        self.leases = leases
        self.user = user
        self.home = posixpath.normpath(home_path)
        self.now = now
        self.problems: list[Problem] = []
        self.warnings: list[str] = []
        self.visits = 0

    # -- helpers -------------------------------------------------------------------------

    def add(self, node: yaml.Node | None, message: str, hint: str = "", offset: int = 0) -> None:
        if node is None:
            self.problems.append(Problem(1, 1, message, hint))
            return
        mark = node.start_mark
        self.problems.append(Problem(mark.line + 1, mark.column + 1 + offset, message, hint))

    def visit(self, node: yaml.Node) -> None:
        self.visits += 1
        if self.visits > MAX_NODE_VISITS:
            raise _Budget
        if node.tag not in _ALLOWED_TAGS:
            self.add(
                node,
                f"the YAML tag `{node.tag}` is not allowed",
                "workflow files are plain YAML: remove the tag",
            )

    def kind(self, node: yaml.Node) -> str:
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        tag = node.tag.removeprefix(_YAML_TAG)
        return {
            "str": "a string",
            "int": "a number",
            "float": "a number",
            "bool": "true/false",
            "null": "empty",
            "timestamp": "a date",
        }.get(tag, "a value")

    def items(
        self, node: yaml.MappingNode, allowed: tuple[str, ...], where: str
    ) -> Iterator[tuple[str, yaml.Node, yaml.Node]]:
        """Key/value pairs of a mapping; unknown and repeated keys become problems."""
        seen: set[str] = set()
        for key_node, value_node in node.value:
            self.visit(key_node)
            self.visit(value_node)
            if not isinstance(key_node, yaml.ScalarNode):
                self.add(key_node, f"keys in {where} must be plain words")
                continue
            key = str(key_node.value)
            if key not in allowed:
                near = _nearest(key, allowed)
                hint = f"did you mean `{near}`? " if near else ""
                hint += "valid keys: " + ", ".join(allowed)
                self.add(key_node, f"unknown key `{key}` in {where}", hint)
                continue
            if key in seen:
                self.add(key_node, f"`{key}` is given twice in {where}", "keep only one of them")
                continue
            seen.add(key)
            yield key, key_node, value_node

    def string(
        self, node: yaml.Node, what: str, *, allow_numbers: bool = False, hint: str = ""
    ) -> str | None:
        ok = {_YAML_TAG + "str"}
        if allow_numbers:
            ok |= {_YAML_TAG + t for t in ("int", "float", "bool")}
        if isinstance(node, yaml.ScalarNode) and node.tag in ok:
            return str(node.value)
        self.add(node, f"{what} must be a string, not {self.kind(node)}", hint)
        return None

    # -- sections ------------------------------------------------------------------------

    def parse(self) -> Spec:
        try:
            root = yaml.compose(self.text, Loader=_LOADER)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            what = exc.problem or "invalid YAML"
            if exc.context:
                what = f"{exc.context}, {what}"
            hint = "check the indentation and quoting around this place"
            if "expected a single document" in str(exc):
                hint = "a workflow file holds one document: remove the `---` separator"
            problem = Problem(line, col, f"YAML syntax error: {what}", hint)
            raise SpecError([problem], self.text) from None
        except yaml.YAMLError as exc:
            raise SpecError([Problem(1, 1, f"YAML syntax error: {exc}", "")], self.text) from None
        except RecursionError:
            raise SpecError(
                [Problem(1, 1, "the YAML is nested too deeply", "a workflow file is shallow")],
                self.text,
            ) from None
        if root is None:
            raise SpecError(
                [Problem(1, 1, "the workflow file is empty", "add a `jobs:` list of commands")],
                self.text,
            )
        try:
            return self.sections(root)
        except _Budget:
            raise SpecError(
                [
                    Problem(
                        1,
                        1,
                        f"the workflow file expands to more than {MAX_NODE_VISITS} YAML values",
                        "YAML aliases (`*name`) repeat whole sections: write the jobs out",
                    )
                ],
                self.text,
            ) from None

    def sections(self, root: yaml.Node) -> Spec:
        self.visit(root)
        if not isinstance(root, yaml.MappingNode):
            self.add(
                root,
                f"the workflow file must be a mapping with `jobs:` and `dags:`, "
                f"not {self.kind(root)}",
                "start the file with `jobs:` followed by a list of commands",
            )
            raise SpecError(self.problems, self.text)
        found: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, key_node, value in self.items(root, TOP_KEYS, "the workflow"):
            found[key] = (key_node, value)

        name = self.workflow_name(found["name"][1]) if "name" in found else None
        env = self.env(found["env"][1], "the workflow's `env`") if "env" in found else {}
        jobs: list[Job] = []
        if "jobs" not in found:
            self.add(
                None, "the workflow has no jobs", "add a `jobs:` list with at least one command"
            )
        else:
            jobs = self.jobs(found["jobs"][1])
        edges: list[tuple[str, str]] = []
        if "dags" in found and jobs:
            edges = self.dags(found["dags"][1], jobs)
        deadline, deadline_text = (None, None)
        if "deadline" in found:
            deadline, deadline_text = self.deadline(found["deadline"][1], jobs)
        code = self.code_paths(found["code"][1]) if "code" in found else []
        if self.problems:
            raise SpecError(self.problems, self.text)
        return Spec(
            code=tuple(code),
            jobs=tuple(jobs),
            edges=tuple(edges),
            name=name,
            env=env,
            deadline=deadline,
            deadline_text=deadline_text,
            warnings=tuple(self.warnings),
        )

    def code_paths(self, node: yaml.Node) -> list[str]:
        hint = "list files or folders of your home the jobs run, e.g. `code: [count.py, lib/]`"
        if not isinstance(node, yaml.SequenceNode):
            self.add(node, f"`code` must be a list of paths, not {self.kind(node)}", hint)
            return []
        if len(node.value) > MAX_CODE_PATHS:
            self.add(node, f"`code` lists more than {MAX_CODE_PATHS} paths", hint)
            return []
        out: list[str] = []
        for item in node.value:
            self.visit(item)
            value = self.string(item, "each `code` entry", hint=hint)
            if value is None:
                continue
            path = value.strip()
            if path.startswith(self.home + "/"):
                path = path[len(self.home) + 1 :]
            parts = path.split("/")
            if not path or path.startswith("/") or ".." in parts or "\x00" in path:
                self.add(
                    item,
                    f"`code` entry `{value}` is not a path inside your home",
                    "give a path relative to the working directory, without `..`",
                )
                continue
            if path not in out:
                out.append(path)
        return out

    def workflow_name(self, node: yaml.Node) -> str | None:
        value = self.string(node, "`name`")
        if value is None:
            return None
        if not _WORKFLOW_NAME.match(value):
            self.add(
                node,
                f"workflow name `{value}` is not valid",
                "use at most 50 lower-case letters, digits and '-', starting with a letter",
            )
            return None
        return value

    def env(self, node: yaml.Node, where: str) -> dict[str, str]:
        if not isinstance(node, yaml.MappingNode):
            self.add(node, f"{where} must be a mapping of NAME: value, not {self.kind(node)}")
            return {}
        out: dict[str, str] = {}
        seen: set[str] = set()
        for key_node, value_node in node.value:
            self.visit(key_node)
            self.visit(value_node)
            key = self.string(key_node, f"a variable name in {where}")
            if key is None:
                continue
            if key in seen:
                self.add(key_node, f"`{key}` is given twice in {where}", "keep only one of them")
                continue
            seen.add(key)
            if not _ENV_NAME.match(key):
                self.add(
                    key_node,
                    f"`{key}` is not a valid environment variable name",
                    "use letters, digits and '_', not starting with a digit",
                )
                continue
            if isinstance(value_node, yaml.ScalarNode) and value_node.tag == _YAML_TAG + "null":
                out[key] = ""
                continue
            value = self.string(
                value_node,
                f"the value of `{key}` in {where}",
                allow_numbers=True,
                hint="environment values are text: quote it",
            )
            if value is not None:
                out[key] = value
        return out

    def jobs(self, node: yaml.Node) -> list[Job]:
        if not isinstance(node, yaml.SequenceNode):
            self.add(
                node,
                f"`jobs` must be a list, not {self.kind(node)}",
                "write each job on its own line starting with `- `",
            )
            return []
        if not node.value:
            self.add(node, "the workflow has no jobs", "add at least one command under `jobs:`")
            return []
        if len(node.value) > MAX_JOBS:
            self.add(
                node,
                f"the workflow has {len(node.value)} jobs; at most {MAX_JOBS} are allowed",
                "split it into several workflows",
            )
            return []
        jobs: list[Job] = []
        for i, item in enumerate(node.value, start=1):
            self.visit(item)
            job = self.job(item, i)
            if job is not None:
                jobs.append(job)
        by_name: dict[str, Job] = {}
        for job in jobs:
            if job.name in by_name:
                first = by_name[job.name]
                self.problems.append(
                    Problem(
                        job.line,
                        1,
                        f"job name `{job.name}` is used by jobs {first.index} and {job.index}",
                        "give every job its own name (unnamed jobs are called job-<number>)",
                    )
                )
            else:
                by_name[job.name] = job
        # Partial results would mis-number the jobs that `dags:` refers to.
        return jobs if len(jobs) == len(node.value) else []

    def job(self, node: yaml.Node, index: int) -> Job | None:
        line = node.start_mark.line + 1
        where = f"job {index}"
        if isinstance(node, yaml.ScalarNode):
            command = self.string(node, f"the command of {where}", hint="quote the command")
            if command is None:
                return None
            if not command.strip():
                self.add(node, f"the command of {where} is empty", "write the command to run")
                return None
            return Job(index=index, name=f"job-{index}", command=command, line=line)
        if not isinstance(node, yaml.MappingNode):
            self.add(
                node,
                f"{where} must be a command or a mapping with `command:`, not {self.kind(node)}",
            )
            return None
        fields: dict[str, yaml.Node] = {}
        for key, _key_node, value in self.items(node, JOB_KEYS, where):
            fields[key] = value
        ok = True
        command = None
        if "command" not in fields:
            self.add(node, f"{where} has no `command`", "add `command: <what to run>`")
            ok = False
        else:
            command = self.string(fields["command"], f"`command` of {where}", hint="quote it")
            if command is not None and not command.strip():
                self.add(fields["command"], f"the command of {where} is empty")
                command = None
            ok = ok and command is not None
        name = f"job-{index}"
        if "name" in fields:
            given = self.string(fields["name"], f"`name` of {where}")
            if given is None:
                ok = False
            elif given.startswith(_RESERVED_PREFIX):
                self.add(
                    fields["name"],
                    f"job name `{given}` is reserved",
                    f"names starting with `{_RESERVED_PREFIX}` are used by dshare itself",
                )
                ok = False
            elif not _JOB_NAME.match(given):
                self.add(
                    fields["name"],
                    f"job name `{given}` is not valid",
                    "use at most 63 lower-case letters, digits and '-', starting with a letter",
                )
                ok = False
            else:
                name = given
        image = None
        if "image" in fields:
            image = self.string(fields["image"], f"`image` of {where}")
            ok = ok and image is not None
            if image is not None and (not image.strip() or any(c.isspace() for c in image)):
                self.add(fields["image"], f"`image` of {where} is not an image reference")
                ok = False
        env = self.env(fields["env"], f"the `env` of {where}") if "env" in fields else {}
        cpu = memory = None
        if "resources" in fields:
            cpu, memory = self.resources(fields["resources"], where)
        timeout = None
        if "timeout" in fields:
            timeout = self.duration(fields["timeout"], f"`timeout` of {where}")
            ok = ok and timeout is not None
        volumes: list[VolumeRef] = []
        if "volumes" in fields:
            volumes = self.volumes(fields["volumes"], where)
        if not ok or command is None:
            return None
        return Job(
            index=index,
            name=name,
            command=command,
            image=image,
            env=env,
            cpu=cpu,
            memory=memory,
            volumes=tuple(volumes),
            timeout_s=timeout,
            line=line,
        )

    def duration(self, node: yaml.Node, what: str) -> int | None:
        hint = "write seconds (`600`) or a duration such as `30s`, `15m`, `2h`, `1h30m`, `1d`"
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (
            _YAML_TAG + "int",
            _YAML_TAG + "str",
        ):
            self.add(node, f"{what} must be a duration, not {self.kind(node)}", hint)
            return None
        seconds = parse_duration(str(node.value))
        if seconds is None:
            self.add(node, f"{what} `{node.value}` is not a duration", hint)
            return None
        if seconds <= 0:
            self.add(node, f"{what} must be longer than 0 seconds", hint)
            return None
        return seconds

    def resources(self, node: yaml.Node, where: str) -> tuple[str | None, str | None]:
        if not isinstance(node, yaml.MappingNode):
            self.add(
                node,
                f"`resources` of {where} must be a mapping, not {self.kind(node)}",
                "for example `resources: {cpu: '1', memory: 2Gi}`",
            )
            return None, None
        cpu = memory = None
        for key, _k, value in self.items(node, RESOURCE_KEYS, f"`resources` of {where}"):
            text = self.string(value, f"`{key}` of {where}", allow_numbers=True)
            if text is None:
                continue
            pattern, example = (
                (_CPU, "`1`, `0.5` or `500m`")
                if key == "cpu"
                else (
                    _MEMORY,
                    "`512Mi` or `2Gi`",
                )
            )
            if not pattern.match(text):
                self.add(value, f"`{key}` of {where} `{text}` is not a quantity", f"use {example}")
                continue
            if key == "cpu":
                cpu = text
            else:
                memory = text
        return cpu, memory

    def volumes(self, node: yaml.Node, where: str) -> list[VolumeRef]:
        if not isinstance(node, yaml.SequenceNode):
            self.add(
                node,
                f"`volumes` of {where} must be a list, not {self.kind(node)}",
                "copy the DataExplorer's volume snippet: `- {id: ..., name: ..., path: ...}`",
            )
            return []
        out: list[VolumeRef] = []
        paths: set[str] = set()
        for n, item in enumerate(node.value, start=1):
            self.visit(item)
            vwhere = f"volume {n} of {where}"
            if not isinstance(item, yaml.MappingNode):
                self.add(
                    item,
                    f"{vwhere} must be a mapping with `id`, `name` and `path`, "
                    f"not {self.kind(item)}",
                )
                continue
            fields: dict[str, tuple[yaml.Node, str | None]] = {}
            for key, _k, value in self.items(item, VOLUME_KEYS, vwhere):
                fields[key] = (value, self.string(value, f"`{key}` of {vwhere}"))
            if all((fields.get(k, (None, ""))[1] or "") == "" for k in VOLUME_KEYS):
                # The thesis's template (listing 4.7) leaves a blank entry to fill in later.
                self.warnings.append(
                    f"line {item.start_mark.line + 1}: {vwhere} is empty and was ignored; "
                    "pick a dataset in the DataExplorer to fill it in"
                )
                continue
            missing = [k for k in ("id", "path") if k not in fields]
            for k in missing:
                self.add(item, f"{vwhere} has no `{k}`", "copy the DataExplorer's volume snippet")
            if missing or any(v is None for _, v in fields.values()):
                continue
            id_node, raw_id = fields["id"]
            # Ids are hex; whitespace only appears when one was wrapped or copied from a PDF.
            lease_id = self.resolve("".join((raw_id or "").split()))
            path_node, path = fields["path"]
            assert path is not None
            vname = fields["name"][1] if "name" in fields else ""
            ok = self.lease(id_node, lease_id, vwhere)
            ok = self.mount_path(path_node, path, vwhere, paths) and ok
            if ok:
                out.append(VolumeRef(lease_id, vname or "", posixpath.normpath(path)))
        return out

    def mount_path(self, node: yaml.Node, path: str, where: str, paths: set[str]) -> bool:
        if not path.startswith("/"):
            self.add(
                node,
                f"mount path `{path}` of {where} is not absolute",
                f"write the full path, for example `{self.home}/data`",
            )
            return False
        if ".." in path.split("/"):
            self.add(
                node,
                f"mount path `{path}` of {where} contains `..`",
                "write the path without `..`",
            )
            return False
        norm = posixpath.normpath(path)
        if norm == self.home or self.home.startswith(norm.rstrip("/") + "/"):
            self.add(
                node,
                f"mount path `{path}` of {where} would hide the home directory {self.home}",
                f"mount the dataset below it, for example `{self.home}/data`",
            )
            return False
        if norm in paths:
            self.add(
                node,
                f"mount path `{norm}` is used twice in the same job",
                "give each volume of a job its own path",
            )
            return False
        paths.add(norm)
        return True

    def resolve(self, volume_id: str) -> str:
        """A dataset id names the caller's lease of that dataset, so a workflow.yaml can
        say `id: uis-lorem-corpus` and stay valid across leases. Lease ids pass through."""
        if self.leases is None or volume_id in self.leases:
            return volume_id
        mine = [
            lease
            for lease in self.leases.values()
            if lease.asset_id == volume_id and (self.user is None or lease.lessee_user == self.user)
        ]
        # The usable lease first; else the one whose refusal explains the most (pending).
        rank = {"active": 0, "pending": 1}
        mine.sort(key=lambda lease: (not lease.is_active(self.now), rank.get(lease.state, 2)))
        return mine[0].id if mine else volume_id

    def lease(self, node: yaml.Node, lease_id: str, where: str) -> bool:
        if not lease_id:
            self.add(node, f"`id` of {where} is empty", "copy the lease id from the DataExplorer")
            return False
        if self.leases is None:
            return True
        lease = self.leases.get(lease_id)
        short = lease_id if len(lease_id) <= 16 else lease_id[:12] + "..."
        if lease is None:
            self.add(
                node,
                f"volume id `{short}` is not one of your leases",
                "lease the dataset in the DataExplorer and copy its volume snippet",
            )
            return False
        label = f"lease `{short}`" + (f" ({lease.asset_name})" if lease.asset_name else "")
        if self.user is not None and lease.lessee_user != self.user:
            self.add(
                node,
                f"{label} belongs to another user",
                "only the user who leased a dataset can mount it: lease it yourself",
            )
            return False
        if lease.state == "pending":
            self.add(
                node,
                f"{label} is waiting for approval by {lease.owner_org or 'the owner'}",
                "run the workflow once the owner organization has approved the lease",
            )
            return False
        expired = lease.expires_at is not None and lease.expires_at <= self.now
        if lease.state == "expired" or (lease.state == "active" and expired):
            when = lease.expires_at.isoformat() if lease.expires_at else "earlier"
            self.add(node, f"{label} expired at {when}", "lease the dataset again")
            return False
        if lease.state != "active":
            self.add(node, f"{label} is {lease.state}", "lease the dataset again")
            return False
        return True

    def dags(self, node: yaml.Node, jobs: list[Job]) -> list[tuple[str, str]]:
        if isinstance(node, yaml.ScalarNode) and node.tag == _YAML_TAG + "null":
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.add(
                node,
                f"`dags` must be a list, not {self.kind(node)}",
                "write each dependency on its own line, for example `- 1 >> 2`",
            )
            return []
        names = {j.name: j for j in jobs}
        edges: dict[tuple[str, str], yaml.Node] = {}
        for item in node.value:
            self.visit(item)
            if not isinstance(item, yaml.ScalarNode) or item.tag not in (
                _YAML_TAG + "str",
                _YAML_TAG + "int",
            ):
                self.add(
                    item,
                    f"a dependency must be text such as `1 >> 2`, not {self.kind(item)}",
                    "write `<first job> >> <next job>`",
                )
                continue
            chain = self.chain(item, jobs, names)
            for a, b in itertools.pairwise(chain):
                edges.setdefault((a, b), item)
        self.check_cycles(edges, jobs)
        return list(edges)

    def chain(self, item: yaml.ScalarNode, jobs: list[Job], names: dict[str, Job]) -> list[str]:
        text = str(item.value)
        quote = 1 if item.style in ("'", '"') else 0
        parts = text.split(">>")
        if len(parts) < 2:
            self.add(
                item,
                f"`{text}` is not a dependency",
                "write `<first job> >> <next job>`, for example `1 >> 2` or `1 >> 2 >> 3`",
            )
            return []
        result: list[str] = []
        pos = 0
        ok = True
        for part in parts:
            token = part.strip()
            offset = quote + pos + (len(part) - len(part.lstrip()))
            pos += len(part) + 2
            if not token:
                self.add(
                    item,
                    f"a job is missing in `{text}`",
                    "write a job number or name on both sides of `>>`",
                    offset,
                )
                ok = False
                continue
            if token.isascii() and token.lstrip("-").isdigit():
                i = int(token)
                if not 1 <= i <= len(jobs):
                    self.add(
                        item,
                        f"job {i} does not exist; the workflow has {len(jobs)} job"
                        f"{'s' if len(jobs) != 1 else ''}",
                        "jobs are numbered from 1 in the order they are listed",
                        offset,
                    )
                    ok = False
                    continue
                result.append(jobs[i - 1].name)
            elif token in names:
                result.append(token)
            else:
                near = _nearest(token, list(names))
                self.add(
                    item,
                    f"no job is named `{token}`",
                    f"did you mean `{near}`?" if near else "use a job number (from 1) or name",
                    offset,
                )
                ok = False
        if not ok:
            return []
        for a, b in itertools.pairwise(result):
            if a == b:
                self.add(
                    item,
                    f"job `{a}` depends on itself in `{text}`",
                    "a job cannot wait for itself: remove this dependency",
                )
                return []
        return result

    def check_cycles(self, edges: dict[tuple[str, str], yaml.Node], jobs: list[Job]) -> None:
        graph: dict[str, list[str]] = {j.name: [] for j in jobs}
        for a, b in edges:
            graph[a].append(b)
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done
        for start in graph:
            if start in state:
                continue
            # Iterative DFS: a 5,000-job chain would overflow Python's recursion limit.
            path: list[str] = [start]
            iters = [iter(graph[start])]
            state[start] = 1
            while iters:
                nxt = next(iters[-1], None)
                if nxt is None:
                    state[path.pop()] = 2
                    iters.pop()
                    continue
                if state.get(nxt) == 1:
                    cycle = [*path[path.index(nxt) :], nxt]
                    where = min(
                        (edges[(a, b)] for a, b in itertools.pairwise(cycle)),
                        key=lambda n: (n.start_mark.line, n.start_mark.column),
                    )
                    self.add(
                        where,
                        "the dependencies form a cycle: " + " >> ".join(cycle),
                        "a workflow must be acyclic: remove one of these dependencies",
                    )
                    return
                if nxt not in state:
                    state[nxt] = 1
                    path.append(nxt)
                    iters.append(iter(graph[nxt]))

    def deadline(self, node: yaml.Node, jobs: list[Job]) -> tuple[datetime | None, str | None]:
        hint = (
            "write a duration from now (`2h`, `90m`) or a time with its zone "
            "(`2030-01-31T18:00:00Z`)"
        )
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (
            _YAML_TAG + "str",
            _YAML_TAG + "int",
            _YAML_TAG + "timestamp",
        ):
            self.add(node, f"`deadline` must be a duration or a time, not {self.kind(node)}", hint)
            return None, None
        text = str(node.value).strip()
        seconds = parse_duration(text)
        if seconds is not None:
            if seconds <= 0:
                self.add(node, "`deadline` must be later than now", hint)
                return None, None
            if seconds > MAX_DEADLINE_S:
                self.add(node, f"`deadline` `{text}` is more than a year away", hint)
                return None, None
            when = self.now + timedelta(seconds=seconds)
        else:
            try:
                when = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                self.add(node, f"`deadline` `{text}` is neither a duration nor a time", hint)
                return None, None
            if when.tzinfo is None:
                self.add(node, f"`deadline` `{text}` has no time zone", "add `Z` for UTC")
                return None, None
            when = when.astimezone(UTC)
            if when <= self.now:
                self.add(node, f"`deadline` {when.isoformat()} has already passed", hint)
                return None, None
        if self.leases is not None:
            for job in jobs:
                for vol in job.volumes:
                    lease = self.leases.get(vol.lease_id)
                    if lease is not None and lease.expires_at and when > lease.expires_at:
                        self.add(
                            node,
                            f"`deadline` {when.isoformat()} is after lease "
                            f"`{vol.lease_id[:12]}` expires ({lease.expires_at.isoformat()})",
                            "choose an earlier deadline or lease the dataset for longer",
                        )
                        return None, None
        return when, text


def parse(
    text: str,
    *,
    leases: Mapping[str, LeaseView] | None,
    user: str | None = None,
    home_path: str = DEFAULT_HOME,
    now: datetime | None = None,
) -> Spec:
    """Parse and check a workflow.yaml; raise SpecError listing every problem found.

    ``leases`` are the caller's leases by id (None skips the lease checks, e.g. offline
    validation); ``user`` is who will run it, so someone else's lease is refused.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError(
                [Problem(1, 1, f"the workflow file is not UTF-8 text (byte {exc.start})", "")]
            ) from None
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise SpecError(
            [
                Problem(
                    1,
                    1,
                    f"the workflow file is {size} bytes; the limit is {MAX_BYTES} bytes",
                    "keep data out of workflow.yaml: read it from a dataset or your home",
                )
            ]
        )
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise SpecError([Problem(line, 1, "the workflow file contains a NUL byte", "")], text)
    return _Parser(text, leases, user, home_path, now or datetime.now(UTC)).parse()

"""A hostile scientist's scanner: read everything this uid can read, look for the secrets.

Pure standard library, one file, so it runs wherever the attacker's code runs: a kernel, a
JupyterLab terminal, a job sandbox. Usage:

    python attack_scanner.py NEEDLES_JSON [--root DIR ...] [--time-cap S] [--size-cap BYTES]

NEEDLES_JSON is a file, `-` (stdin) or the JSON text itself:
{"mask": HEX, "needles": {name: [HEX, ...]}}. Every form of a needle is XOR-masked with the
repeated mask, so the needle file, the code cell and the command line never hold the
secret itself (the scanner would find its own input); they are unmasked only in memory.

It walks every root (default `/`) with os.scandir, never following symlinks (a symlink's
target text is searched too: a path is a secret here), skips /proc, /sys and /dev but
walks /dev/shm and /dev/mqueue (files live there), skips and counts files over the size
cap, counts what it could not read, reads every /proc/*/environ and /proc/*/cmdline it
can, and /proc/self/mountinfo and /proc/mounts (bind mounts name their source). It prints
one JSON object; `capped` true means the time cap cut the walk short and proves nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import time
from typing import Any

CHUNK = 8 * 1024 * 1024
MAX_HITS_PER_NEEDLE = 40
SKIP = ("/proc", "/sys", "/dev")
WALK_UNDER_DEV = ("/dev/shm", "/dev/mqueue")


def unmask(masked_hex: str, mask: bytes) -> bytes:
    data = bytes.fromhex(masked_hex)
    return bytes(b ^ mask[i % len(mask)] for i, b in enumerate(data))


def mask_needles(needles: dict[str, list[bytes]], mask: bytes) -> dict[str, Any]:
    """The other direction, for whoever writes a needle file (the tests)."""
    return {
        "mask": mask.hex(),
        "needles": {
            name: [bytes(b ^ mask[i % len(mask)] for i, b in enumerate(f)).hex() for f in forms]
            for name, forms in needles.items()
        },
    }


def load_needles(arg: str) -> list[tuple[str, bytes]]:
    if arg == "-":
        text = sys.stdin.read()
    elif arg.lstrip().startswith("{"):
        text = arg
    else:
        with open(arg) as f:
            text = f.read()
    spec = json.loads(text)
    mask = bytes.fromhex(spec["mask"])
    out: list[tuple[str, bytes]] = []
    for name, forms in spec["needles"].items():
        for form in {unmask(h, mask) for h in forms}:
            if len(form) < 8:
                raise SystemExit(f"needle {name!r} has a form under 8 bytes: too weak to search")
            out.append((name, form))
    return out


class Scan:
    def __init__(self, needles: list[tuple[str, bytes]], time_cap: float, size_cap: int) -> None:
        self.needles = needles
        self.overlap = max((len(f) for _, f in needles), default=1) - 1
        self.deadline = time.monotonic() + time_cap
        self.size_cap = size_cap
        self.started = time.monotonic()
        self.capped = False
        self.found: dict[str, list[str]] = {}
        self.files_read = 0
        self.bytes_read = 0
        self.unreadable_files = 0
        self.unreadable_dirs = 0
        self.dirs_walked = 0
        self.symlinks = 0
        self.skipped_large = 0
        self.skipped_large_bytes = 0
        self.other_entries = 0
        self.proc_read = {"environ": 0, "cmdline": 0}
        self.proc_unreadable = {"environ": 0, "cmdline": 0}
        self.aliases: dict[str, str] = {}
        self.seen_dirs: dict[tuple[int, int], str] = {}
        self.examples_unreadable: list[str] = []
        self.large_files: list[str] = []
        self.files: list[tuple[int, str]] = []

    def search(self, data: bytes | memoryview, where: str) -> None:
        for name, form in self.needles:
            if data.find(form) >= 0:  # type: ignore[union-attr]
                hits = self.found.setdefault(name, [])
                if where not in hits and len(hits) < MAX_HITS_PER_NEEDLE:
                    hits.append(where)

    def out_of_time(self) -> bool:
        if time.monotonic() > self.deadline:
            self.capped = True
        return self.capped

    def read_file(self, path: str, where: str | None = None) -> bool:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return False
        try:
            tail = b""
            with os.fdopen(fd, "rb", buffering=0) as f:
                while True:
                    chunk = f.read(CHUNK)
                    if not chunk:
                        break
                    self.bytes_read += len(chunk)
                    data = tail + chunk if tail else chunk
                    self.search(data, where or path)
                    tail = data[-self.overlap :] if self.overlap else b""
                    if self.out_of_time():
                        break
        except OSError:
            return False
        return True

    def walk(self, root: str) -> None:
        stack = [root]
        while stack and not self.out_of_time():
            top = stack.pop()
            try:
                st = os.lstat(top)
            except OSError:
                self.unreadable_dirs += 1
                continue
            key = (st.st_dev, st.st_ino)
            if key in self.seen_dirs:
                # A bind mount shows one directory at two paths: say so, do not loop.
                self.aliases[top] = self.seen_dirs[key]
                continue
            self.seen_dirs[key] = top
            try:
                it = os.scandir(top)
            except OSError:
                self.unreadable_dirs += 1
                continue
            self.dirs_walked += 1
            names: list[str] = []
            with it:
                for entry in it:
                    path = entry.path
                    try:
                        mode = entry.stat(follow_symlinks=False).st_mode
                    except OSError:
                        self.unreadable_files += 1
                        continue
                    names.append(entry.name)
                    if stat.S_ISDIR(mode):
                        if path == "/dev":
                            stack.extend(WALK_UNDER_DEV)
                        elif path not in SKIP:
                            stack.append(path)
                    elif stat.S_ISLNK(mode):
                        self.symlinks += 1
                        try:
                            target = os.readlink(path)
                        except OSError:
                            continue
                        self.search(os.fsencode(target), f"symlink {path} -> {target}")
                    elif stat.S_ISREG(mode):
                        if path.startswith("/dev/") and not path.startswith(WALK_UNDER_DEV):
                            continue
                        size = entry.stat(follow_symlinks=False).st_size
                        if size > self.size_cap:
                            self.skipped_large += 1
                            self.skipped_large_bytes += size
                            if len(self.large_files) < 200:
                                self.large_files.append(path)
                            continue
                        self.files.append((size, path))
                    else:
                        self.other_entries += 1
            # The names too: a storage path or a secret can be a directory or file name.
            self.search(os.fsencode("\n".join([top, *names])), f"names in {top}")

    def read_files(self, files: list[tuple[int, str]]) -> None:
        for _, path in files:
            if self.out_of_time():
                return
            if self.read_file(path):
                self.files_read += 1
            else:
                self.unreadable_files += 1
                if len(self.examples_unreadable) < 5:
                    self.examples_unreadable.append(path)

    def read_all(self, workers: int) -> None:
        """Read the walked files in `workers` forked processes (os.fork and pipes only: a
        job sandbox may have no /dev/shm for multiprocessing's locks)."""
        files = sorted(self.files, reverse=True)
        self.files = []
        if workers <= 1:
            self.read_files(files)
            return
        children = []
        for index in range(workers):
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read_end)
                self.read_files(files[index::workers])
                part = {
                    "found": self.found,
                    "files_read": self.files_read,
                    "bytes_read": self.bytes_read,
                    "unreadable_files": self.unreadable_files,
                    "examples_unreadable": self.examples_unreadable,
                    "capped": self.capped,
                }
                with os.fdopen(write_end, "w") as f:
                    json.dump(part, f)
                os._exit(0)
            os.close(write_end)
            children.append((pid, read_end))
        for pid, read_end in children:
            with os.fdopen(read_end) as f:
                text = f.read()
            os.waitpid(pid, 0)
            if not text:
                self.capped = True  # a worker died: what it should have read is unknown
                continue
            part = json.loads(text)
            for name, hits in part["found"].items():
                mine = self.found.setdefault(name, [])
                mine += [h for h in hits if h not in mine][: MAX_HITS_PER_NEEDLE - len(mine)]
            self.files_read += part["files_read"]
            self.bytes_read += part["bytes_read"]
            self.unreadable_files += part["unreadable_files"]
            self.examples_unreadable = (self.examples_unreadable + part["examples_unreadable"])[:5]
            self.capped = self.capped or part["capped"]

    def proc(self) -> None:
        try:
            pids = [p for p in os.listdir("/proc") if p.isdigit()]
        except OSError:
            pids = []
        for pid in pids:
            for what in ("environ", "cmdline"):
                path = f"/proc/{pid}/{what}"
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError:
                    self.proc_unreadable[what] += 1
                    continue
                self.proc_read[what] += 1
                self.search(data, path)
        for path in ("/proc/self/mountinfo", "/proc/mounts"):
            self.read_file(path)

    def report(self) -> dict[str, Any]:
        return {
            "uid": os.getuid(),
            "euid": os.geteuid(),
            "gid": os.getgid(),
            "groups": os.getgroups(),
            "found": self.found,
            "needle_forms": len(self.needles),
            "files_read": self.files_read,
            "bytes_read": self.bytes_read,
            "unreadable_files": self.unreadable_files,
            "unreadable_examples": self.examples_unreadable,
            "unreadable_dirs": self.unreadable_dirs,
            "dirs_walked": self.dirs_walked,
            "symlinks": self.symlinks,
            "skipped_large": self.skipped_large,
            "skipped_large_bytes": self.skipped_large_bytes,
            "large_files": self.large_files,
            "proc_read": self.proc_read,
            "proc_unreadable": self.proc_unreadable,
            "aliases": dict(list(self.aliases.items())[:200]),
            "capped": self.capped,
            "seconds": round(time.monotonic() - self.started, 2),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("needles")
    parser.add_argument("--root", action="append", help="walk these instead of /")
    parser.add_argument("--time-cap", type=float, default=120.0)
    # Larger files are counted and listed, not read: the tests fail if one is in the
    # deployment (its root, /tmp, /home); most are binaries of /usr and /opt.
    parser.add_argument("--size-cap", type=int, default=16 * 1024 * 1024)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--out", help="write the JSON here as well as to stdout")
    args = parser.parse_args(argv)
    scan = Scan(load_needles(args.needles), args.time_cap, args.size_cap)
    scan.proc()
    for root in args.root or ["/"]:
        scan.walk(root)
    scan.read_all(args.workers)
    text = json.dumps(scan.report(), sort_keys=True)
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, args.out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

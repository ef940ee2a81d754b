"""Read-only views of an interactive lease, made by the owner's broker, kept on disk.

A view is `<views dir>/<view id>/...`: a tree of hard links to the dataset's files (the
same inodes; nothing is copied), directories made by this broker 0700, and POSIX ACL
entries granting the lessee's OS user (by uid) `r-x` on the view's directories and `r--`
on its files. The storage directories get no ACL, so the raw path stays untraversable;
the view's path names only the organization and an opaque id.

An ACL entry on a hard link is an entry on the inode: taking it away at the end of the
lease closes every path to the file, whatever the lessee did with the view's path.

Durable state is the disk, never memory: a record `<state dir>/<view id>.json` is written
before the view is made and removed after it is gone, and a view is marked complete only
once every entry is granted. The reaper (`sweep`) rebuilds everything from there, so a
crash in the middle of making or removing a view leaves something the next pass finishes:
directories without a record, incomplete views and views past their lease all go, their
ACL entries first.

Every path here is inside this broker's own directories (the views dir and the storage
it owns); `setfacl` gets argument lists, never a shell, and never a user's path.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import json
import logging
import os
import re
import secrets
import shutil
import stat
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger("dshare.broker.views")

_VIEW_ID = re.compile(r"^v-[0-9a-f]{32}$")
_BATCH = 200  # paths per setfacl call: far below ARG_MAX with long paths


class ViewError(Exception):
    """A view cannot be made; `message` is safe to show (it names no path)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def check_views_dir(path: Path) -> None:
    """The views dir must be a real directory of this process's user, not writable by
    anyone else, and searchable (not listable) by others: the provisioning makes it 0711."""
    try:
        info = path.lstat()
    except OSError as e:
        raise SystemExit(
            f"dshare broker: BrokerApp.interactive_views_dir {path} cannot be used "
            f"({e.strerror}); create it owned by the broker, mode 0711 (dshare demo does)"
        ) from None
    mode = stat.S_IMODE(info.st_mode)
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.geteuid()
        or mode & 0o022
        or mode & 0o001 == 0
    ):
        raise SystemExit(
            f"dshare broker: BrokerApp.interactive_views_dir {path} must be a directory owned "
            f"by this broker's user (uid {os.geteuid()}), mode 0711; it is "
            f"{oct(mode)} owned by uid {info.st_uid}"
        )


def _setfacl(args: list[str], paths: Iterable[str]) -> None:
    batch: list[str] = []
    for path in [*paths, None]:
        if path is not None:
            batch.append(path)
        if batch and (path is None or len(batch) >= _BATCH):
            # -P: never follow a symbolic link (a view holds none, but say so anyway).
            done = subprocess.run(
                ["setfacl", "-P", *args, "--", *batch],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                # The log is the operator's: a path there is theirs to see.
                log.error("setfacl %s failed: %s", " ".join(args), done.stderr.strip())
                raise ViewError(
                    "VIEW_UNAVAILABLE",
                    "the owner's broker could not set the view's access rights (POSIX ACLs); "
                    "ask the operator to check that the file system supports ACLs and that "
                    "the 'acl' package (setfacl) is installed",
                )
            batch = []


def named_users(path: str) -> set[int]:
    """The uids with a named ACL entry on `path` (getfacl, numeric)."""
    done = subprocess.run(
        ["getfacl", "-P", "-n", "--omit-header", "--", path],
        capture_output=True,
        text=True,
        check=False,
    )
    uids = set()
    for line in done.stdout.splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[0] == "user" and parts[1].isdigit():
            uids.add(int(parts[1]))
    return uids


def _expired(record: dict[str, Any], now: dt.datetime) -> bool:
    value = str(record.get("expires_at") or "")
    try:
        at = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return at <= now


class ViewStore:
    """The views of one organization's broker: `views_dir` (0711, the broker's) holds the
    trees, `state_dir` (inside the broker's 0700 state) the records."""

    def __init__(self, views_dir: Path, state_dir: Path) -> None:
        self.views_dir = views_dir
        self.state_dir = state_dir
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # One change at a time: the reaper never sweeps a view that is being made.
        self.lock = asyncio.Lock()

    # -- records -----------------------------------------------------------------------------

    def _record_path(self, view_id: str) -> Path:
        if not _VIEW_ID.match(view_id):
            raise ValueError(f"not a view id: {view_id!r}")
        return self.state_dir / f"{view_id}.json"

    def _write_record(self, record: dict[str, Any]) -> None:
        path = self._record_path(record["view_id"])
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(record, sort_keys=True))
        os.replace(tmp, path)

    def records(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.state_dir.glob("v-*.json")):
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                log.warning("ignoring an unreadable view record %s", path.name)
                continue
            if isinstance(record, dict) and _VIEW_ID.match(str(record.get("view_id"))):
                out.append(record)
        return out

    def find(self, lease_id: str) -> dict[str, Any] | None:
        return next((r for r in self.records() if r.get("lease_id") == lease_id), None)

    def path_of(self, record: dict[str, Any]) -> str:
        return str(self.views_dir / str(record["view_id"]))

    def current(self, lease_id: str, uid: int) -> dict[str, Any] | None:
        """The complete view of `lease_id` for `uid`, if one exists now."""
        record = self.find(lease_id)
        if (
            record is not None
            and record.get("complete")
            and record.get("uid") == uid
            and Path(self.path_of(record)).is_dir()
        ):
            return record
        return None

    # -- making a view -----------------------------------------------------------------------

    async def make(
        self,
        *,
        lease: dict[str, Any],
        source: Path,
        uid: int,
        os_user: str,
        redacted: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The complete view of `lease` for `uid`, made from the directory `source` if
        there is none yet. Idempotent: asking again returns the same view. `redacted` is
        what the owner's policy hid from it ({column: action}), kept in its record."""
        async with self.lock:
            existing = self.current(str(lease["id"]), uid)
            if existing is not None:
                return existing
            record = self.find(str(lease["id"]))
            if record is not None:
                await asyncio.to_thread(self._remove, record)
            record = {
                "view_id": "v-" + secrets.token_hex(16),
                "lease_id": str(lease["id"]),
                "asset_id": str(lease.get("asset_id", "")),
                "lessee_org": str(lease.get("lessee_org", "")),
                "lessee_user": str(lease.get("lessee_user", "")),
                "os_user": os_user,
                "uid": uid,
                "expires_at": str(lease.get("expires_at", "")),
                "redacted": dict(redacted or {}),
                "complete": False,
            }
            # The record first: a view on disk always has one the reaper can find.
            self._write_record(record)
            try:
                await asyncio.to_thread(self._build, record, source)
            except BaseException:
                await asyncio.to_thread(self._remove, record)
                raise
            record["complete"] = True
            self._write_record(record)
            log.info(
                "made the interactive view of lease %s for %s/%s",
                record["lease_id"],
                record["lessee_org"],
                record["lessee_user"],
            )
            return record

    def _build(self, record: dict[str, Any], source: Path) -> None:
        top = Path(self.path_of(record))
        try:
            src_fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            raise ViewError(
                "STORAGE_UNAVAILABLE",
                f"the data of asset '{record['asset_id']}' is not available on this host; "
                "ask its owner organization to check the dataset's storage",
            ) from None
        try:
            if os.fstat(src_fd).st_dev != self.views_dir.stat().st_dev:
                raise ViewError(
                    "VIEW_UNAVAILABLE",
                    f"asset '{record['asset_id']}' is stored on another file system than its "
                    "owner's interactive views, so it cannot be shown without copying it; "
                    "read it in a workflow, or ask the operator to put "
                    "BrokerApp.interactive_views_dir on the data's file system",
                )
            os.mkdir(top, 0o700)
            dirs, files = self._link_tree(src_fd, top, record)
        finally:
            os.close(src_fd)
        grant = f"u:{record['uid']}"
        _setfacl(["-m", f"{grant}:r--"], files)
        _setfacl(["-m", f"{grant}:r-x"], dirs)
        # The top directory last: until now the lessee could reach none of it.
        _setfacl(["-m", f"{grant}:r-x"], [str(top)])

    @staticmethod
    def _link_tree(src_fd: int, top: Path, record: dict[str, Any]) -> tuple[list[str], list[str]]:
        dirs: list[str] = []
        files: list[str] = []
        # fwalk opens each directory relative to the one above, never following a link.
        for rel, _dirs, names, dir_fd in os.fwalk(".", dir_fd=src_fd, follow_symlinks=False):
            here = os.path.normpath(os.path.join(top, rel))
            if rel != ".":
                os.mkdir(here, 0o700)
                dirs.append(here)
            for name in names:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                # Symbolic links could name the storage; devices and fifos are not data.
                if not stat.S_ISREG(info.st_mode):
                    continue
                dst = os.path.join(here, name)
                try:
                    os.link(name, dst, src_dir_fd=dir_fd, follow_symlinks=False)
                except OSError as error:
                    reason = {
                        errno.EXDEV: "it is on another file system than the views",
                        errno.EPERM: "it does not belong to the owner's broker",
                    }.get(error.errno or 0, error.strerror or "link failed")
                    raise ViewError(
                        "VIEW_UNAVAILABLE",
                        f"a file of asset '{record['asset_id']}' cannot be shown ({reason}); "
                        "nothing is copied instead: read it in a workflow, or ask the "
                        "operator to check the owner's storage",
                    ) from None
                files.append(dst)
        return dirs, files

    # -- removing views ----------------------------------------------------------------------

    async def remove(self, record: dict[str, Any]) -> None:
        async with self.lock:
            await asyncio.to_thread(self._remove, record)

    def _needed(self, uid: int, but: str) -> set[tuple[int, int]]:
        """Inodes `uid` still reads through another complete view (same file, two leases)."""
        keep: set[tuple[int, int]] = set()
        for other in self.records():
            if other["view_id"] == but or other.get("uid") != uid or not other.get("complete"):
                continue
            keep |= {ino for ino, _ in self._files(Path(self.path_of(other)))}
        return keep

    @staticmethod
    def _files(top: Path) -> list[tuple[tuple[int, int], str]]:
        out: list[tuple[tuple[int, int], str]] = []
        if not top.is_dir() or top.is_symlink():
            return out
        for rel, _dirs, names, dir_fd in os.fwalk(top, follow_symlinks=False):
            for name in names:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISREG(info.st_mode):
                    out.append(((info.st_dev, info.st_ino), os.path.join(rel, name)))
        return out

    def _strip(self, top: Path, uids: set[int], view_id: str) -> None:
        """Take the view away from `uids`: the top directory first (closes the tree at
        once), then the entries on its files, which are the owner's inodes."""
        if not uids or not top.is_dir() or top.is_symlink():
            return
        for uid in sorted(uids):
            _setfacl(["-x", f"u:{uid}"], [str(top)])
            keep = self._needed(uid, view_id)
            _setfacl(
                ["-x", f"u:{uid}"], [path for ino, path in self._files(top) if ino not in keep]
            )

    def _remove(self, record: dict[str, Any]) -> None:
        top = Path(self.path_of(record))
        uids = {int(record["uid"])} if isinstance(record.get("uid"), int) else set()
        if top.is_dir() and not top.is_symlink():
            uids |= named_users(str(top))
        self._strip(top, uids, str(record["view_id"]))
        # Links only: the owner's files stay where they are.
        shutil.rmtree(top, ignore_errors=True)
        # The record last: a crash before this leaves a record the next sweep finishes.
        self._record_path(str(record["view_id"])).unlink(missing_ok=True)

    async def sweep(self, wanted: Any) -> int:
        """Remove every view that `await wanted(record)` does not keep, every incomplete one
        and every directory without a record; returns how many went."""
        removed = 0
        async with self.lock:
            now = dt.datetime.now(dt.UTC)
            records = {r["view_id"]: r for r in self.records()}
            for entry in sorted(os.listdir(self.views_dir)):
                if entry not in records and not entry.startswith("."):
                    log.warning("removing a view without a record (%s)", entry)
                    orphan = {"view_id": entry} if _VIEW_ID.match(entry) else None
                    if orphan is not None:
                        await asyncio.to_thread(self._remove, orphan)
                    else:
                        path = self.views_dir / entry
                        await asyncio.to_thread(self._strip, path, named_users(str(path)), "")
                        await asyncio.to_thread(shutil.rmtree, path, True)
                    removed += 1
            for record in records.values():
                keep = record.get("complete") and not _expired(record, now)
                if keep:
                    try:
                        keep = bool(await wanted(record))
                    except Exception:
                        # The ledger may be down: keep it until the lease's expiry says not.
                        log.exception("cannot check view %s; kept for now", record["view_id"])
                if not keep:
                    await asyncio.to_thread(self._remove, record)
                    log.info(
                        "removed the interactive view of lease %s for %s/%s",
                        record["lease_id"],
                        record.get("lessee_org"),
                        record.get("lessee_user"),
                    )
                    removed += 1
        return removed

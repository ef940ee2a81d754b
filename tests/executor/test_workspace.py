"""The workspace: seeded as the job uid from a possibly hostile archive; outputs collected
by root without following links."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from dshare_hub.executor import workspace as ws
from dshare_hub.executor.identity import JobIdentity

from .conftest import POOL, tgz

UID = POOL.first + 1


def hostile_archive() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:

        def add(info: tarfile.TarInfo, data: bytes = b"") -> None:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)

        add(tarfile.TarInfo("notes/ok.txt"), b"fine\n")
        add(tarfile.TarInfo("../escaped.txt"), b"out\n")
        add(tarfile.TarInfo("/abs-escape.txt"), b"abs\n")
        link = tarfile.TarInfo("passwd-link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        add(link)
        up = tarfile.TarInfo("up-link")
        up.type, up.linkname = tarfile.SYMTYPE, "../../.."
        add(up)
        dev = tarfile.TarInfo("null-dev")
        dev.type, dev.devmajor, dev.devminor = tarfile.CHRTYPE, 1, 3
        add(dev)
        suid = tarfile.TarInfo("suid.sh")
        suid.mode = 0o4777
        add(suid, b"#!/bin/sh\n")
        inside = tarfile.TarInfo("notes/link-inside")
        inside.type, inside.linkname = tarfile.SYMTYPE, "ok.txt"
        add(inside)
    return buf.getvalue()


def test_a_hostile_home_archive_is_refused_or_neutralised(world: Path) -> None:
    run_dir = world / "runs" / "r1"
    workspace = ws.prepare(run_dir, UID)
    st = workspace.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (UID, UID, 0o700)
    manifest, skipped = ws.seed(workspace, hostile_archive(), JobIdentity(UID), 10_000)
    # outside the workspace nothing appeared
    assert not (run_dir / "escaped.txt").exists()
    assert not (world / "escaped.txt").exists()
    assert not Path("/abs-escape.txt").exists()
    # the absolute name was made relative, inside the workspace
    assert (workspace / "abs-escape.txt").read_bytes() == b"abs\n"
    for name in ("passwd-link", "up-link", "null-dev"):
        assert not os.path.lexists(workspace / name), name
    reasons = " ".join(skipped)
    assert "../escaped.txt" in reasons and "null-dev" in reasons and "passwd-link" in reasons
    assert os.readlink(workspace / "notes/link-inside") == "ok.txt"  # inside links stay
    assert not (workspace / "suid.sh").stat().st_mode & stat.S_ISUID
    # every entry belongs to the job uid: it was unpacked as that uid, not as root
    for dirpath, dirs, files in os.walk(workspace):
        for name in dirs + files:
            assert os.lstat(os.path.join(dirpath, name)).st_uid == UID
    assert set(manifest) == {"notes/ok.txt", "abs-escape.txt", "suid.sh"}
    assert manifest["notes/ok.txt"].size == 5
    # a state path never shows in what the scientist is told
    assert str(world) not in reasons


def test_a_home_that_expands_past_the_limit_is_refused(world: Path) -> None:
    workspace = ws.prepare(world / "r2", UID)
    with pytest.raises(ws.WorkspaceError, match="expands to more than 100 bytes"):
        ws.seed(workspace, tgz({"big.bin": b"x" * 1000}), JobIdentity(UID), 100)


def test_garbage_instead_of_an_archive_is_a_clear_error(world: Path) -> None:
    workspace = ws.prepare(world / "r3", UID)
    with pytest.raises(ws.WorkspaceError, match="could not be unpacked"):
        ws.seed(workspace, b"not a tar at all", JobIdentity(UID), 1000)


def test_outputs_are_new_or_changed_regular_files_and_never_links(world: Path) -> None:
    run_dir = world / "r4"
    workspace = ws.prepare(run_dir, UID)
    seeded, _ = ws.seed(
        workspace,
        tgz({"same.txt": b"same\n", "changed.txt": b"old\n", "sub/keep.txt": b"k\n"}),
        JobIdentity(UID),
        10_000,
    )
    secret = world / "secret.txt"
    secret.write_text("root's secret\n")
    (workspace / "changed.txt").write_text("new\n")
    (workspace / "sub" / "result.csv").write_text("a,b\n1,2\n")
    (workspace / "link-out.txt").symlink_to(secret)
    (workspace / "linkdir").symlink_to(world, target_is_directory=True)
    os.mkfifo(workspace / "pipe")
    outputs = ws.collect(workspace, seeded, run_dir / ws.OUTPUTS)
    assert sorted(outputs) == ["changed.txt", "sub/result.csv"]
    staged = run_dir / ws.OUTPUTS
    assert (staged / "sub/result.csv").read_text() == "a,b\n1,2\n"
    assert stat.S_IMODE(staged.stat().st_mode) == 0o700
    assert not (staged / "link-out.txt").exists() and not (staged / "same.txt").exists()
    assert outputs["changed.txt"].size == 4

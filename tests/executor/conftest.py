"""Shared pieces of the executor tests: a world other uids can reach, archives, ids.

The tests run as root (as CI does) and switch to unprivileged uids like the executor
does, so their directories must be traversable by those uids: pytest's own tmp_path
lives under a 0700 directory, hence a fresh 0711 directory under /tmp per test.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dshare_hub.executor.identity import UidPool
from dshare_hub.executor.jail import probe

POOL = UidPool(61900, 61949)  # the tests' own slice of the default range
SCIENTIST_UID = 60201
OTHER_UID = 60202
DATA_GID = 60301

if os.geteuid() != 0:  # pragma: no cover - CI and the dev machines run as root
    pytest.skip("the executor tests switch uids and must run as root", allow_module_level=True)


@pytest.fixture
def world() -> Iterator[Path]:
    top = Path(tempfile.mkdtemp(prefix="dshare-exec-", dir="/tmp"))
    os.chmod(top, 0o711)
    try:
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="session")
def sandbox():
    found = probe(POOL.first)
    if not found.usable:
        pytest.fail(f"bubblewrap under setpriv does not work here: {found.problem}")
    return found


def tgz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def home_of(world: Path, uid: int = SCIENTIST_UID, name: str = "home") -> Path:
    home = world / name
    home.mkdir()
    os.chown(home, uid, uid)
    os.chmod(home, 0o700)
    return home

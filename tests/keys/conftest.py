"""Key-service fixtures, including a throwaway PostgreSQL server (initdb + pg_ctl, random port).

Missing PostgreSQL binaries FAIL the test (never skip): the key store must be proven on it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dshare_hub.keys import KekSource, KeyService, KeyStore, generate_kek_line


@pytest.fixture
def kek_file(tmp_path: Path) -> Path:
    path = tmp_path / "kek"
    path.write_text(generate_kek_line() + "\n")
    return path


@pytest.fixture
def keystore_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'keys.sqlite'}"


@pytest.fixture
def service(keystore_url: str, kek_file: Path) -> KeyService:
    svc = KeyService(KeyStore(keystore_url), KekSource(kek_file=str(kek_file)))
    yield svc
    svc.store.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bin_dir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: run "
            "`make test` (which installs them) or `apt-get install postgresql`"
        )
    return os.path.dirname(found[-1])


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a SQLAlchemy URL of a fresh server; stop it and remove its files afterwards."""
    bin_dir = _bin_dir()
    root = tempfile.mkdtemp(prefix="dshare-pg-")
    prefix: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root: run it as the `postgres` OS user.
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(root, "data")
    port = _free_port()

    def run(*cmd: str) -> None:
        result = subprocess.run([*prefix, *cmd], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            pytest.fail(f"{cmd[0]} failed: {result.stdout}\n{result.stderr}")

    run(f"{bin_dir}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(f"{bin_dir}/pg_ctl", "-D", data, "-o", options, "-l", f"{root}/log", "-w", "start")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, f"{bin_dir}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url

"""`python -m dshare_hub.executor --config FILE` starts the service as the hub would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tornado.testing import bind_unused_port

from .conftest import POOL


def test_the_service_starts_from_a_config_file_and_refuses_anonymous_callers(
    world: Path,
) -> None:
    sock, port = bind_unused_port()
    sock.close()
    config = world / "executor_config.py"
    config.write_text(
        f"c.Executor.state_dir = {str(world / 'state')!r}\n"
        f"c.Executor.uid_range = ({POOL.first}, {POOL.last})\n"
        "c.Executor.allowed_services = ['dshare-uis']\n"
        f"c.Executor.org_mount_roots = {{'UiS': {str(world / 'uis/mounts')!r}}}\n"
    )
    env = {
        **os.environ,
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}/",
        "JUPYTERHUB_SERVICE_PREFIX": "/services/dshare-executor/",
        "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",
        "JUPYTERHUB_API_TOKEN": "unused",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "dshare_hub.executor", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/services/dshare-executor/api/v1/runs/r1"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(url, timeout=2)
            except urllib.error.HTTPError as error:
                assert error.code == 401
                assert json.loads(error.read())["code"] == "UNAUTHENTICATED"
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError("the executor did not answer")
        assert (world / "state" / "runs").is_dir()
        assert oct((world / "state").stat().st_mode & 0o777) == "0o711"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out.decode()
    # Half-configured organizations are named to the operator, not guessed at.
    assert b"UiS has no org_storage_roots or org_data_groups" in out, out.decode()

"""Login → server ready: the embedded deployment with dshare's plugins (directory login with
organizations, DShareLocalSpawner asking the broker for leases) against a plain JupyterHub
(DummyAuthenticator, SimpleLocalProcessSpawner), both started here and measured alternately
in the same run.

Each sample is a new user: log in through the form, start the server, wait until
JupyterLab's page answers. Prints a markdown table; the target is a ratio <= 1.1.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from hubclient import HubSession

from dshare_hub.auth.directory import DirectoryUser, edit_directory
from dshare_hub.auth.passwords import hash_password
from dshare_hub.demo.deployment import Deployment, proxy_command
from dshare_hub.demo.layout import DemoLayout
from dshare_hub.demo.seed import wait_for

SAMPLES = int(os.environ.get("DSHARE_BENCH_SAMPLES", "5"))

PLAIN_CONFIG = """
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.JupyterHub.db_url = "sqlite:///{root}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{root}/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = "{root}/homes/{{username}}"
c.Spawner.default_url = "/lab"
c.Spawner.args = ["--ServerApp.allow_root=True"]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def login_to_ready(base: str, user: str, password: str) -> float:
    session = HubSession(base)
    start = time.perf_counter()
    response = await session.login(user, password)
    assert response.code == 302, f"login of {user} failed: {response.code}"
    await session.start_server()
    elapsed = time.perf_counter() - start
    await session.fetch(
        f"hub/api/users/{user}/server",
        "DELETE",
        headers={"X-XSRFToken": session.xsrf, "Referer": base + "hub/home"},
    )
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        layout = DemoLayout(
            root=root / "dshare",
            port=free_port(),
            hub_port=free_port(),
            broker_base_port=free_port(),
            proxy_api_port=free_port(),
            executor_port=free_port(),
        )
        plain_root = root / "plain"
        (plain_root / "homes").mkdir(parents=True)
        password = secrets.token_urlsafe(12)
        plain_port = free_port()
        config = plain_root / "jupyterhub_config.py"
        config.write_text(
            PLAIN_CONFIG.format(
                port=plain_port,
                hub_port=free_port(),
                api_port=free_port(),
                proxy=proxy_command(),
                root=plain_root,
                password=password,
            )
        )
        with (root / "plain.log").open("w") as log, Deployment(layout, log_file=log):
            plain = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(config)],
                cwd=plain_root,
                # as for dshare's hub: the servers it spawns come from this environment
                env={
                    **os.environ,
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                plain_base = f"http://127.0.0.1:{plain_port}/"
                wait_for(plain_base + "hub/health", 60, ok_only=True)
                with edit_directory(layout.user_directory) as users:
                    for i in range(SAMPLES):
                        users[f"bench{i}"] = DirectoryUser(
                            f"bench{i}", "UiO", ("scientist",), hash_password(password)
                        )
                dshare_times, plain_times = [], []
                for i in range(SAMPLES):
                    dshare_times.append(
                        asyncio.run(login_to_ready(layout.public_url, f"bench{i}", password))
                    )
                    plain_times.append(
                        asyncio.run(login_to_ready(plain_base, f"plain{i}", password))
                    )
            finally:
                plain.terminate()
                plain.wait(20)
    d, p = statistics.median(dshare_times), statistics.median(plain_times)
    print("| login → server ready | median s | samples |")
    print("|---|---|---|")
    print(f"| dshare (DShareLocalAuthenticator + DShareLocalSpawner) | {d:.2f} | {SAMPLES} |")
    print(f"| plain JupyterHub (SimpleLocalProcessSpawner) | {p:.2f} | {SAMPLES} |")
    print(f"| ratio (target <= 1.1) | {d / p:.2f} | |")


if __name__ == "__main__":
    main()

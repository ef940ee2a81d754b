"""Start and stop the embedded deployment: JupyterHub, its proxy, the brokers, the executor.

Used by `dshare demo` and by the integration and browser tests, so what the tests exercise
is what a newcomer runs. It runs as root: it provisions, starts the brokers (each as its
own service user) and the executor (root) and restarts them if they exit (services.py),
then starts JupyterHub as the hub's service user, which starts the proxy and, through
sudo, the users' servers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import IO

from . import isolation
from .content import ORGS
from .layout import DemoLayout
from .provision import provision
from .seed import seed, wait_for
from .services import Services

log = logging.getLogger(__name__)

CONFIG_FILE = Path(__file__).with_name("jupyterhub_config.py")


def proxy_command() -> str:
    """configurable-http-proxy from PATH, else from the project's tools/ install."""
    found = shutil.which("configurable-http-proxy")
    if found:
        return found
    checkout = Path(__file__).resolve().parents[3]
    local = checkout / "tools" / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists():
        return str(local)
    raise RuntimeError(
        "configurable-http-proxy is not installed: run `make demo` (it installs it under "
        "tools/) or `npm install -g configurable-http-proxy`"
    )


class Deployment:
    """One running embedded deployment; a context manager that always cleans up."""

    def __init__(self, layout: DemoLayout, *, log_file: IO[str] | None = None) -> None:
        self.layout = layout
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None
        self.services: Services | None = None
        self.new_logins: dict[str, str] = {}

    def hub_runs_as(self) -> str:
        """The hub's OS user: its own service user, or root for the all-as-one-user
        evaluation spawner (which switches to no one)."""
        return "root" if self.layout.spawner == "simple" else self.layout.hub_user

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DSHARE_DATA_DIR=str(self.layout.root),
            DSHARE_IP=self.layout.ip,
            DSHARE_PORT=str(self.layout.port),
            DSHARE_HUB_PORT=str(self.layout.hub_port),
            DSHARE_BROKER_BASE_PORT=str(self.layout.broker_base_port),
            DSHARE_PROXY_API_PORT=str(self.layout.proxy_api_port),
            DSHARE_EXECUTOR_PORT=str(self.layout.executor_port),
            DSHARE_PROXY_COMMAND=proxy_command(),
            DSHARE_ACCOUNT_PREFIX=self.layout.account_prefix,
            DSHARE_SPAWNER=self.layout.spawner,
        )
        # Spawned servers find `dshare` and `jupyterhub-singleuser` in this interpreter's
        # environment.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        hub = pwd.getpwnam(self.hub_runs_as())
        env.update(HOME=str(self.layout.hub_dir), USER=hub.pw_name, LOGNAME=hub.pw_name)
        return env

    def ports(self) -> dict[int, str]:
        layout = self.layout
        ports = {
            layout.port: "JupyterHub's public port (--port)",
            layout.hub_port: "the hub's internal API",
            layout.proxy_api_port: "the proxy's REST API",
            layout.executor_port: "the job executor",
        }
        for index, org in enumerate(ORGS):
            ports[layout.broker_port(index)] = f"{org}'s broker"
        return ports

    def check_ports(self) -> None:
        """Refuse to start on a port someone else holds, naming it: a proxy left behind by
        another hub would otherwise answer for us and fail in ways that explain nothing."""
        busy = []
        for port, what in self.ports().items():
            with socket.socket() as s:
                try:
                    s.bind((self.layout.ip, port))
                except OSError:
                    busy.append(f"{port} ({what})")
        if busy:
            raise RuntimeError(
                f"cannot start dshare: in use on {self.layout.ip}: {', '.join(busy)}. Stop "
                "what holds them (`ss -ltnp` shows it; often a JupyterHub proxy left running) "
                "or start with another --port"
            )

    def start(self, *, timeout: float = 90.0) -> None:
        self.check_ports()
        self.new_logins = provision(self.layout)
        self.services = Services(self.layout, self.log_file)
        self.services.start()
        hub = pwd.getpwnam(self.hub_runs_as())
        self.process = subprocess.Popen(
            # umask 077: the hub database and whatever else the hub writes are its alone.
            [
                *(sys.executable, "-m", "dshare_hub.demo.private_exec"),
                *(sys.executable, "-m", "jupyterhub", "-f", str(CONFIG_FILE)),
            ],
            cwd=self.layout.hub_dir,
            env=self.environment(),
            user=hub.pw_uid,
            group=hub.pw_gid,
            extra_groups=os.getgrouplist(hub.pw_name, hub.pw_gid),
            stdin=subprocess.DEVNULL,
            stdout=self.log_file or None,
            stderr=subprocess.STDOUT if self.log_file else None,
            start_new_session=True,
        )
        if self.layout.spawner == "simple":
            log.warning(
                "DSHARE_SPAWNER=simple: the hub runs as root and every user's server as "
                "root too; users are not isolated. For evaluation only."
            )
        wait_for(
            f"{self.layout.public_url}hub/health",
            timeout,
            ok_only=True,
            alive=lambda: self.process is not None and self.process.poll() is None,
        )
        seed(self.layout)

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is not None and self.process.poll() is None:
            # SIGTERM lets JupyterHub stop the servers and the proxy it started.
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process is not None:
            # A hub that died at start leaves its proxy running in a session of its own.
            self._stop_proxy()
        if self.services is not None:
            self.services.stop()
            self.services = None

    def _stop_proxy(self) -> None:
        pid_file = self.layout.hub_dir / "proxy.pid"
        try:
            pid = int(pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        # The pid file is in the hub's directory: kill only a proxy the hub's user runs.
        owner = Path(f"/proc/{pid}").stat().st_uid
        if (
            b"configurable-http-proxy" in cmdline
            and owner == pwd.getpwnam(self.hub_runs_as()).pw_uid
        ):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        pid_file.unlink(missing_ok=True)

    def remove_accounts(self) -> list[str]:
        """Delete the OS users and groups of this deployment (tests: the session's own).

        Call after stop(); the data directory and the homes in it stay until removed."""
        return isolation.remove_accounts(self.layout)

    def __enter__(self) -> Deployment:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

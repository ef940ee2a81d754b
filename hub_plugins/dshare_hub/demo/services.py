"""The deployment's root-only parts, run beside the hub by the root launcher.

The hub runs as a service user of its own and cannot switch users, so it no longer starts
the brokers (each its own service user) or the executor (root). `dshare demo` and the
test harness start them here instead, as JupyterHub would start a managed service: with
the service's environment (URL, prefix, API token) and nothing else of the launcher's,
and restart one that exits, as JupyterHub does. For the hub they are external services
(`url` and `api_token`, no `command`), so HubAuth and scopes work as before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO

from ..auth.roles import broker_service_name
from .content import ORGS
from .layout import DemoLayout

log = logging.getLogger(__name__)

EXECUTOR = "dshare-executor"
SEEDER = "dshare-demo-seeder"


@dataclass
class ServiceSpec:
    name: str
    url: str
    argv: list[str]
    cwd: str
    user: str  # the OS user it runs as
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    restarts: int = 0


def service_specs(layout: DemoLayout) -> list[ServiceSpec]:
    specs = []
    for index, org in enumerate(ORGS):
        specs.append(
            ServiceSpec(
                name=broker_service_name(org),
                url=f"http://{layout.ip}:{layout.broker_port(index)}",
                argv=[
                    sys.executable,
                    "-m",
                    "dshare_hub.demo.private_exec",  # umask 077, then the broker itself
                    sys.executable,
                    "-m",
                    "dshare_hub.broker",
                    "--org",
                    org,
                    "--config",
                    str(layout.broker_config(org)),
                ],
                cwd=str(layout.org_dir(org)),
                user=layout.broker_user(org),
            )
        )
    specs.append(
        ServiceSpec(
            name=EXECUTOR,
            url=layout.executor_url.split("/services/")[0],
            argv=[
                sys.executable,
                "-m",
                "dshare_hub.executor",
                "--config",
                str(layout.executor_config),
            ],
            cwd=str(layout.executor_dir),
            # Root: it starts each job under a uid of its own and delivers as the scientist.
            user="root",
        )
    )
    return specs


def service_names() -> list[str]:
    """Every service with a token in secrets/: the brokers, the executor, the seeder."""
    return [*(broker_service_name(org) for org in ORGS), EXECUTOR, SEEDER]


def service_env(layout: DemoLayout, spec: ServiceSpec, token: str) -> dict[str, str]:
    """What JupyterHub puts in a managed service's environment, and no more."""
    pw = pwd.getpwnam(spec.user)
    env = {
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.defpath]),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOME": pw.pw_dir,
        "USER": pw.pw_name,
        "JUPYTERHUB_SERVICE_NAME": spec.name,
        "JUPYTERHUB_API_TOKEN": token,
        "JPY_API_TOKEN": token,
        "JUPYTERHUB_CLIENT_ID": f"service-{spec.name}",
        "JUPYTERHUB_API_URL": layout.hub_api_url,
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_HOST": "",
        "JUPYTERHUB_SERVICE_URL": spec.url,
        "JUPYTERHUB_SERVICE_PREFIX": f"/services/{spec.name}/",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"/services/{spec.name}/oauth_callback",
    }
    return env


class Services:
    """Start, supervise (restart on exit) and stop the external services."""

    def __init__(self, layout: DemoLayout, log_file: IO[str] | None = None) -> None:
        self.layout = layout
        self.log_file = log_file
        self.specs = service_specs(layout)
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def _spawn(self, spec: ServiceSpec) -> subprocess.Popen[bytes]:
        pw = pwd.getpwnam(spec.user)
        token = self.layout.service_token_file(spec.name).read_text().strip()
        groups = os.getgrouplist(pw.pw_name, pw.pw_gid)
        return subprocess.Popen(
            spec.argv,
            cwd=spec.cwd,
            env=service_env(self.layout, spec, token),
            user=pw.pw_uid,
            group=pw.pw_gid,
            extra_groups=groups,
            stdin=subprocess.DEVNULL,
            stdout=self.log_file or None,
            stderr=subprocess.STDOUT if self.log_file else None,
            start_new_session=True,
        )

    def start(self) -> None:
        for spec in self.specs:
            spec.process = self._spawn(spec)
        self._watcher = threading.Thread(target=self._watch, name="dshare-services", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            for spec in self.specs:
                proc = spec.process
                if proc is None or proc.poll() is None or self._stopping.is_set():
                    continue
                log.error(
                    "service %s exited with status %s; restarting it", spec.name, proc.returncode
                )
                spec.restarts += 1
                time.sleep(min(spec.restarts, 5) * 0.2)
                if not self._stopping.is_set():
                    spec.process = self._spawn(spec)

    def pids(self) -> dict[str, int]:
        return {s.name: s.process.pid for s in self.specs if s.process and s.process.poll() is None}

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(5)
        running = [s.process for s in self.specs if s.process and s.process.poll() is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

"""A JupyterHub whose organizations' brokers the proof tests start, kill -9 and restart.

The brokers are external JupyterHub services (the hub routes and authenticates for them
but does not run them), so a test decides exactly when a broker dies and when it comes
back, and no test disturbs the shared session deployment.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from hubapi import HubApi
from ports import free_port

from dshare_hub.keys import generate_kek_line
from dshare_hub.ledger.embedded import create_org

REPO = Path(__file__).resolve().parents[2]
ORGS = ("UiS", "UiO")


HUB_CONFIG = """
from dshare_hub.auth.roles import hub_roles

c = get_config()  # noqa: F821
settings = hub_roles({orgs!r})
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.JupyterHub.db_url = "sqlite:///{root}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{root}/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.custom_scopes = settings["custom_scopes"]
c.JupyterHub.load_roles = settings["load_roles"] + [
    {{"name": "proof-admin", "scopes": ["admin:users", "admin:groups", "tokens"],
      "services": ["proof-admin"]}},
]
c.JupyterHub.services = {services!r}
"""

BROKER_CONFIG = """
c.BrokerApp.org = {org!r}
c.BrokerApp.ledger_kind = "embedded"
c.BrokerApp.ledger_db = {ledger_db!r}
c.BrokerApp.identity_dir = {identity_dir!r}
c.BrokerApp.keystore_url = {keystore!r}
c.BrokerApp.kek_file = {kek!r}
c.BrokerApp.data_dir = {data_dir!r}
c.BrokerApp.peers = {peers!r}
c.BrokerApp.reaper_interval = {reaper_interval!r}
"""


@dataclass
class World(HubApi):
    root: Path
    url: str
    hub_api: str
    admin_token: str
    reaper_interval: float
    ledger_db: Path
    identity_dir: Path
    hub: subprocess.Popen[bytes] | None = None
    brokers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    broker_ports: dict[str, int] = field(default_factory=dict)
    service_tokens: dict[str, str] = field(default_factory=dict)
    log_files: list[IO[bytes]] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)

    # -- layout ------------------------------------------------------------------------------

    def org_dir(self, org: str) -> Path:
        return self.root / org.lower()

    def data_dir(self, org: str) -> Path:
        return self.org_dir(org) / "broker"

    def kek_file(self, org: str) -> Path:
        return self.org_dir(org) / "kek"

    def keystore(self, org: str) -> str:
        return f"sqlite:///{self.org_dir(org) / 'keys.sqlite'}"

    def log_path(self, name: str) -> Path:
        return self.root / f"{name}.log"

    # -- brokers -----------------------------------------------------------------------------

    def start_broker(self, org: str, timeout: float = 60, *, wait: bool = True) -> None:
        port = self.broker_ports[org]
        env = dict(os.environ)
        env.update(
            JUPYTERHUB_API_TOKEN=self.service_tokens[org],
            JUPYTERHUB_API_URL=self.hub_api,
            JUPYTERHUB_SERVICE_NAME=f"dshare-{org.lower()}",
            JUPYTERHUB_SERVICE_PREFIX=f"/services/dshare-{org.lower()}/",
            JUPYTERHUB_SERVICE_URL=f"http://127.0.0.1:{port}",
        )
        log = self.log_path(f"broker-{org.lower()}").open("ab")
        self.log_files.append(log)
        self.brokers[org] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dshare_hub.broker",
                "--org",
                org,
                "--config",
                str(self.org_dir(org) / "broker_config.py"),
            ],
            cwd=self.org_dir(org),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if wait:
            self.wait_for(f"/services/dshare-{org.lower()}/api/v1/openapi.json", timeout)

    def kill_broker(self, org: str) -> None:
        """SIGKILL: no handler runs, no buffer is flushed, whatever was in flight is lost."""
        process = self.brokers.pop(org)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop_broker(self, org: str) -> None:
        process = self.brokers.pop(org, None)
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def wait_for(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.call("GET", path, None, timeout=5).status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path} did not answer within {timeout:.0f} s")
            time.sleep(0.2)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.root.glob("*.log")))

    def close(self) -> None:
        for org in list(self.brokers):
            self.stop_broker(org)
        if self.hub is not None and self.hub.poll() is None:
            self.hub.terminate()
            try:
                self.hub.wait(30)
            except subprocess.TimeoutExpired:
                self.hub.kill()
                self.hub.wait()
        for log in self.log_files:
            log.close()


def start_world(root: Path, *, reaper_interval: float = 1.0) -> World:
    """A hub on random loopback ports and one running broker per organization."""
    root.mkdir(parents=True, exist_ok=True)
    ledger_db, identity_dir = root / "ledger.db", root / "identities"
    for org in ORGS:
        create_org(ledger_db, org, identity_dir=identity_dir)
    port, hub_port, proxy_api_port = free_port(), free_port(), free_port()
    world = World(
        root=root,
        url=f"http://127.0.0.1:{port}",
        hub_api=f"http://127.0.0.1:{hub_port}/hub/api",
        admin_token=secrets.token_hex(24),
        reaper_interval=reaper_interval,
        ledger_db=ledger_db,
        identity_dir=identity_dir,
    )
    services: list[dict[str, Any]] = [{"name": "proof-admin", "api_token": world.admin_token}]
    for org in ORGS:
        org_dir = world.org_dir(org)
        org_dir.mkdir(mode=0o700)
        world.kek_file(org).write_text(generate_kek_line() + "\n")
        world.kek_file(org).chmod(0o600)
        world.broker_ports[org] = free_port()
        world.service_tokens[org] = secrets.token_hex(24)
        peers = {
            other: f"{world.url}/services/dshare-{other.lower()}/" for other in ORGS if other != org
        }
        (org_dir / "broker_config.py").write_text(
            BROKER_CONFIG.format(
                org=org,
                ledger_db=str(ledger_db),
                identity_dir=str(identity_dir),
                keystore=world.keystore(org),
                kek=str(world.kek_file(org)),
                data_dir=str(world.data_dir(org)),
                peers=peers,
                reaper_interval=reaper_interval,
            )
        )
        services.append(
            {
                "name": f"dshare-{org.lower()}",
                "url": f"http://127.0.0.1:{world.broker_ports[org]}",
                "api_token": world.service_tokens[org],
            }
        )
    (root / "jupyterhub_config.py").write_text(
        HUB_CONFIG.format(
            orgs=list(ORGS),
            port=port,
            hub_port=hub_port,
            proxy_api_port=proxy_api_port,
            root=root,
            services=services,
        )
    )
    env = dict(os.environ)
    node_bin = REPO / "tools" / "node_modules" / ".bin"
    env["PATH"] = f"{Path(sys.executable).parent}:{node_bin}:{env.get('PATH', '')}"
    env["CONFIGPROXY_AUTH_TOKEN"] = secrets.token_hex(16)
    if not shutil.which("configurable-http-proxy", path=env["PATH"]):
        raise RuntimeError(
            "configurable-http-proxy not found: run `make test` (it installs it under tools/)"
        )
    log = world.log_path("hub").open("wb")
    world.log_files.append(log)
    world.hub = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(root / "jupyterhub_config.py")],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # Brokers first: the hub waits at startup for external services to answer.
        for org in ORGS:
            world.start_broker(org, wait=False)
        world.wait_for("/hub/api/", 120)
        for org in ORGS:
            world.wait_for(f"/services/dshare-{org.lower()}/api/v1/openapi.json", 60)
    except BaseException:
        world.close()
        raise
    world.transcript.clear()
    return world

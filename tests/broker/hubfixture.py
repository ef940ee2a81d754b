"""A real JupyterHub with two organizations' brokers as hub-managed services.

The hub runs as a subprocess on random loopback ports with a generated config; users,
groups and tokens are made through the hub's REST API by a test admin service. Everything
the hub and the brokers log goes to one file the tests search for leaked secrets.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubapi import HubApi
from ports import free_port

from dshare_hub.keys import generate_kek_line
from dshare_hub.ledger.embedded import create_org

REPO = Path(__file__).resolve().parents[2]
ORGS = ("UiS", "UiO")


@dataclass
class Hub(HubApi):
    root: Path
    url: str
    admin_token: str
    process: subprocess.Popen[bytes]
    log_path: Path
    ledger_db: Path
    identity_dir: Path
    data_dirs: dict[str, Path]
    keystores: dict[str, str]
    kek_files: dict[str, Path]
    transcript: list[str] = field(default_factory=list)


HUB_CONFIG = """
import sys
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
    {{"name": "test-admin", "scopes": ["admin:users", "admin:groups", "tokens"],
      "services": ["test-admin"]}},
]
c.JupyterHub.services = {services!r}
"""


def start_hub(root: Path) -> Hub:
    root.mkdir(parents=True, exist_ok=True)
    ledger_db = root / "ledger.db"
    identity_dir = root / "identities"
    for org in ORGS:
        create_org(ledger_db, org, identity_dir=identity_dir)
    admin_token = secrets.token_hex(24)
    port, hub_port, proxy_api_port = free_port(), free_port(), free_port()
    services: list[dict[str, Any]] = [{"name": "test-admin", "api_token": admin_token}]
    data_dirs, keystores, kek_files = {}, {}, {}
    for org in ORGS:
        org_dir = root / org.lower()
        org_dir.mkdir(mode=0o700)
        kek = org_dir / "kek"
        kek.write_text(generate_kek_line() + "\n")
        kek.chmod(0o600)
        data_dirs[org] = org_dir / "broker"
        keystores[org] = f"sqlite:///{org_dir / 'keys.sqlite'}"
        kek_files[org] = kek
        peers = {
            other: f"http://127.0.0.1:{port}/services/dshare-{other.lower()}/"
            for other in ORGS
            if other != org
        }
        config = org_dir / "broker_config.py"
        config.write_text(
            f"c.BrokerApp.org = {org!r}\n"
            f"c.BrokerApp.ledger_kind = 'embedded'\n"
            f"c.BrokerApp.ledger_db = {str(ledger_db)!r}\n"
            f"c.BrokerApp.identity_dir = {str(identity_dir)!r}\n"
            f"c.BrokerApp.keystore_url = {keystores[org]!r}\n"
            f"c.BrokerApp.kek_file = {str(kek)!r}\n"
            f"c.BrokerApp.data_dir = {str(data_dirs[org])!r}\n"
            f"c.BrokerApp.peers = {peers!r}\n"
            "c.BrokerApp.reaper_interval = 1.0\n"
        )
        services.append(
            {
                "name": f"dshare-{org.lower()}",
                "url": f"http://127.0.0.1:{free_port()}",
                "command": [
                    sys.executable,
                    "-m",
                    "dshare_hub.broker",
                    "--org",
                    org,
                    "--config",
                    str(config),
                ],
                "cwd": str(org_dir),
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
            "configurable-http-proxy not found: run `make test` (installs it under tools/) or "
            "`npm install -g configurable-http-proxy@5.3.0`"
        )
    log_path = root / "hub.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(root / "jupyterhub_config.py"), "--debug"],
        cwd=root,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    hub = Hub(
        root,
        f"http://127.0.0.1:{port}",
        admin_token,
        process,
        log_path,
        ledger_db,
        identity_dir,
        data_dirs,
        keystores,
        kek_files,
    )
    deadline = time.monotonic() + 120
    pending = {f"/services/dshare-{org.lower()}/api/v1/openapi.json" for org in ORGS}
    pending.add("/hub/api/")
    while pending:
        if process.poll() is not None or time.monotonic() > deadline:
            stop_hub(hub)
            raise RuntimeError("JupyterHub did not come up:\n" + log_path.read_text()[-5000:])
        for path in list(pending):
            try:
                if hub.call("GET", path, None).status == 200:
                    pending.discard(path)
            except OSError:
                pass
        time.sleep(0.3)
    hub.transcript.clear()
    return hub


def stop_hub(hub: Hub) -> None:
    hub.process.terminate()
    try:
        hub.process.wait(30)
    except subprocess.TimeoutExpired:
        hub.process.kill()
        hub.process.wait()

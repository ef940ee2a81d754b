"""Where the embedded deployment keeps its state, and the ports it listens on.

One data directory holds everything an embedded deployment needs across restarts: the
ledger, each organization's identity, key-encryption key and key store, the user
directory, users' homes and the owners' sample data. Secret files are created 0600.

It also names the OS accounts the deployment runs as (see isolation.py for who owns what):
one user per hub user, one service user per organization's broker, the group that shares
the ledger database and one data group per organization. `account_prefix` goes in front of
every one of those names, so a test session never touches a demo's accounts.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DemoLayout:
    root: Path
    ip: str = "127.0.0.1"
    port: int = 8000
    hub_port: int = 8081
    broker_base_port: int = 8101
    proxy_api_port: int = 8001
    executor_port: int = 8110
    # Prefix of every OS account this deployment creates ("" for `dshare demo`).
    account_prefix: str = ""
    # "system": one OS user per hub user; "simple": every server as root (evaluation only).
    spawner: str = "system"

    @property
    def user_template(self) -> str:
        """DShareSystemLocalSpawner.system_username_template of this deployment."""
        return f"{self.account_prefix}jupyter-{{username}}"

    @property
    def hub_user(self) -> str:
        """The service user JupyterHub runs as (not root): it owns the hub's own state."""
        return f"{self.account_prefix}dshare-hub"

    @property
    def users_group(self) -> str:
        """Every hub user's OS account, and only those: the hub may sudo to its members."""
        return f"{self.account_prefix}dshare-users"

    @property
    def sudoers_file(self) -> Path:
        """The hub's sudo rule (sudospawner, the home writer, the account helper)."""
        return Path("/etc/sudoers.d") / f"{self.account_prefix}dshare-hub"

    @property
    def accounts_config(self) -> Path:
        """What dshare-ensure-account reads (root's, named in the sudo rule)."""
        return self.root / "secrets" / "accounts.json"

    def service_token_file(self, service: str) -> Path:
        """The API token of an external service: root's, readable by the hub's group."""
        return self.root / "secrets" / f"{service}-token"

    def broker_user(self, org: str) -> str:
        return f"{self.account_prefix}dshare-{org.lower()}"

    @property
    def ledger_group(self) -> str:
        """The brokers' shared group: only its members read and write the ledger database."""
        return f"{self.account_prefix}dshare-ledger"

    def data_group(self, org: str) -> str:
        """Readers of `org`'s raw data besides its broker (a future job executor's sandboxes)."""
        return f"{self.account_prefix}dshare-{org.lower()}-data"

    @property
    def ledger_db(self) -> Path:
        return self.root / "ledger" / "ledger.sqlite"

    @property
    def identities(self) -> Path:
        """One directory per organization (key.pem, ca-key.pem), each its broker's alone.

        Outside ledger/: every broker may write there, and none may touch another's keys.
        """
        return self.root / "identities"

    @property
    def old_identities(self) -> Path:
        """Where data directories made before per-org accounts kept the identities."""
        return self.root / "ledger" / "identities"

    def trusted_ca(self, org: str) -> Path:
        """`org`'s CA certificate as root recorded it when it made the identity: what every
        broker checks ledger entries and peer requests against (BrokerApp.org_ca_files).
        Root's, readable by all: no broker can swap another's, unlike in the ledger file."""
        return self.root / "trust" / f"{org}-ca.pem"

    def org_dir(self, org: str) -> Path:
        """The owner organization's private directory: its KEK, key store, broker state."""
        return self.root / "orgs" / org.lower()

    def kek_file(self, org: str) -> Path:
        return self.org_dir(org) / "kek"

    def keystore_url(self, org: str) -> str:
        return f"sqlite:///{self.org_dir(org) / 'keys.sqlite'}"

    def broker_config(self, org: str) -> Path:
        return self.org_dir(org) / "broker_config.py"

    def broker_port(self, org_index: int) -> int:
        return self.broker_base_port + org_index

    @property
    def data(self) -> Path:
        """The owners' storage: what the datasets' sealed storage details point at."""
        return self.root / "storage"

    @property
    def homes(self) -> Path:
        return self.root / "homes"

    @property
    def hub_dir(self) -> Path:
        return self.root / "hub"

    @property
    def user_directory(self) -> Path:
        """The password hashes, in a directory of root's alone (its temp files too)."""
        return self.root / "users" / "users.yaml"

    @property
    def old_user_directory(self) -> Path:
        return self.root / "users.yaml"

    @property
    def logins_file(self) -> Path:
        return self.root / "demo-logins.txt"

    @property
    def seeded_marker(self) -> Path:
        return self.root / ".seeded"

    def secret_file(self, name: str, nbytes: int = 32, *, where: Path | None = None) -> str:
        """Read a generated secret (in secrets/, or `where`), creating it 0600 on first use."""
        path = (where or self.root / "secrets") / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(nbytes))
            os.replace(path.with_suffix(".tmp"), path)
        return path.read_text().strip()

    @property
    def views(self) -> Path:
        """Interactive views (views/<org>/<opaque id>): hard links to leased files, each
        readable by its lessee alone. Beside storage/, on the same file system."""
        return self.root / "views"

    def views_dir(self, org: str) -> Path:
        """`org`'s broker's own views directory (BrokerApp.interactive_views_dir)."""
        return self.views / org.lower()

    def storage_root(self, org: str) -> Path:
        """The only directory `org`'s broker may register local datasets under."""
        return self.data / org.lower()

    @property
    def executor_dir(self) -> Path:
        """The job executor's state (runs, workspaces, held outputs): root's alone."""
        return self.root / "executor"

    @property
    def executor_config(self) -> Path:
        return self.executor_dir / "executor_config.py"

    @property
    def executor_url(self) -> str:
        return f"http://{self.ip}:{self.executor_port}/services/dshare-executor/"

    @property
    def public_url(self) -> str:
        return f"http://{self.ip}:{self.port}/"

    @property
    def hub_api_url(self) -> str:
        return f"http://{self.ip}:{self.hub_port}/hub/api"


def layout_from_env() -> DemoLayout:
    """The layout `dshare demo` hands to the hub and brokers through the environment."""
    return DemoLayout(
        root=Path(os.environ["DSHARE_DATA_DIR"]),
        ip=os.environ.get("DSHARE_IP", "127.0.0.1"),
        port=int(os.environ.get("DSHARE_PORT", "8000")),
        hub_port=int(os.environ.get("DSHARE_HUB_PORT", "8081")),
        broker_base_port=int(os.environ.get("DSHARE_BROKER_BASE_PORT", "8101")),
        proxy_api_port=int(os.environ.get("DSHARE_PROXY_API_PORT", "8001")),
        executor_port=int(os.environ.get("DSHARE_EXECUTOR_PORT", "8110")),
        account_prefix=os.environ.get("DSHARE_ACCOUNT_PREFIX", ""),
        spawner=os.environ.get("DSHARE_SPAWNER", "system"),
    )

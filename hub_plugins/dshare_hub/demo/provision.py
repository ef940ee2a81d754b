"""First start of an embedded deployment: identities, keys, users, sample data, homes.

Every step checks what is already there and only adds what is missing, so a restart (or a
crash in the middle of provisioning) finishes the job without touching what exists.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from ..auth.directory import DirectoryUser, edit_directory
from ..auth.passwords import hash_password
from ..keys.kek import generate_kek_line
from ..ledger.identity import create_org
from .content import ORGS, demo_users, make_datasets
from .layout import DemoLayout
from .notebook import write_experiment

log = logging.getLogger(__name__)

BROKER_CONFIG = """\
# Broker of {org} in the embedded deployment, written by `dshare demo`.
c.BrokerApp.org = {org!r}
c.BrokerApp.ledger_kind = "embedded"
c.BrokerApp.ledger_db = {ledger_db!r}
c.BrokerApp.identity_dir = {identity_dir!r}
c.BrokerApp.keystore_url = {keystore_url!r}
c.BrokerApp.kek_file = {kek_file!r}
c.BrokerApp.data_dir = {data_dir!r}
c.BrokerApp.peers = {peers!r}
# Owners remove what they mounted for other orgs' runs on the next pass after a run ends.
c.BrokerApp.reaper_interval = 5.0
"""


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def provision(layout: DemoLayout) -> dict[str, str]:
    """Make the deployment whole; return the demo logins created by this call."""
    for path in (layout.root, layout.hub_dir, layout.homes, layout.data):
        path.mkdir(parents=True, exist_ok=True)
    os.chmod(layout.root, 0o700)

    peers = {
        org: f"http://{layout.ip}:{layout.broker_port(i)}/services/dshare-{org.lower()}/"
        for i, org in enumerate(ORGS)
    }
    for org in ORGS:
        org_dir = layout.org_dir(org)
        org_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not (layout.identities / org).exists():
            log.info("creating the ledger identity of %s", org)
            create_org(layout.identities, org, ledger_db=layout.ledger_db)
        if not layout.kek_file(org).exists():
            _write_private(layout.kek_file(org), generate_kek_line() + "\n")
        _write_private(
            layout.broker_config(org),
            BROKER_CONFIG.format(
                org=org,
                ledger_db=str(layout.ledger_db),
                identity_dir=str(layout.identities),
                keystore_url=layout.keystore_url(org),
                kek_file=str(layout.kek_file(org)),
                data_dir=str(org_dir / "broker"),
                peers=peers,
            ),
        )

    make_datasets(layout.data)

    created: dict[str, str] = {}
    with edit_directory(layout.user_directory) as users:
        for user in demo_users():
            if user.name in users:
                continue
            password = secrets.token_urlsafe(9)
            users[user.name] = DirectoryUser(
                name=user.name,
                org=user.org,
                roles=user.roles,
                password_hash=hash_password(password),
            )
            created[user.name] = password
    if created:
        logins = layout.logins_file.read_text() if layout.logins_file.exists() else ""
        logins += "".join(f"{name}  {password}\n" for name, password in created.items())
        _write_private(layout.logins_file, logins)

    for user in demo_users():
        if "scientist" in user.roles:
            write_experiment(layout.homes / user.name)
    return created

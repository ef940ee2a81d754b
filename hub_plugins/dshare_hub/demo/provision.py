"""First start of an embedded deployment: identities, keys, users, sample data, homes.

Every step checks what is already there and only adds what is missing, so a restart (or a
crash in the middle of provisioning) finishes the job without touching what exists. It runs
as root: it creates the OS accounts (the hub's own service user among them), hands each
file to its owner (see isolation.py) and writes the hub's sudo rule (sudoers.py).
Nothing is written as root into a user's home; that happens as the user.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..auth.directory import DirectoryUser, edit_directory
from ..auth.passwords import hash_password
from ..keys.kek import generate_kek_line
from ..ledger.core import acquire_core, release_core
from ..ledger.identity import create_org
from ..spawner import system_users
from ..spawner.account_helper import write_config as write_account_config
from . import isolation, sudoers
from .content import ORGS, demo_users, make_datasets
from .layout import DemoLayout
from .services import service_names

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
# The CAs this broker checks ledger entries and peer requests against, never the ones
# registered in the shared ledger file (which every broker can write).
c.BrokerApp.org_ca_files = {org_ca_files!r}
# Owners remove what they mounted for other orgs' runs on the next pass after a run ends.
c.BrokerApp.reaper_interval = 5.0
# Runs are compiled here and run by the executor; the scientist's server gets no mount.
c.BrokerApp.executor_url = {executor_url!r}
c.BrokerApp.system_username_template = {user_template!r}
c.BrokerApp.storage_roots = [{storage_root!r}]
# Interactive datasets: read-only views for their lessees (hard links + POSIX ACLs).
c.BrokerApp.interactive_views_dir = {views_dir!r}
"""

EXECUTOR_CONFIG = """\
# The job executor of the embedded deployment, written by `dshare demo`. It runs as root
# (per-run job uids, deliveries as the scientist) and holds no key.
c.Executor.state_dir = {state_dir!r}
c.Executor.allowed_services = {services!r}
c.Executor.org_mount_roots = {mount_roots!r}
c.Executor.system_username_template = {user_template!r}
c.Executor.org_storage_roots = {storage_roots!r}
c.Executor.org_data_groups = {data_groups!r}
"""


def _write_private(path: Path, text: str) -> None:
    """Write `path` 0600 without following a symlink: the directory may be a broker's."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# Run as the scientist: the experiment's files go into a home they own.
WRITE_EXPERIMENT = (
    "import sys; from pathlib import Path; "
    "from dshare_hub.demo.notebook import write_experiment; write_experiment(Path(sys.argv[1]))"
)


def _create_identity(layout: DemoLayout, org: str) -> None:
    """Create the org's identity in a directory of root's, then move it in place: the
    final directory belongs to the broker, and root writes nothing where it could plant
    a symlink."""
    log.info("creating the ledger identity of %s", org)
    staging = layout.identities / f".new-{org}"
    target = layout.identities / org
    shutil.rmtree(staging, ignore_errors=True)  # a crash in the middle of the last attempt
    staging.mkdir(mode=0o700)
    identity = create_org(staging, org, ledger_db=layout.ledger_db)
    _record_trusted_ca(layout, org, identity.ca_cert_pem)
    if target.exists() or target.is_symlink():
        # An identity dir without its key (an interrupted older start): keep it aside.
        target.rename(layout.identities / f".old-{org}-{secrets.token_hex(4)}")
    (staging / org).rename(target)
    staging.rmdir()


def _record_trusted_ca(layout: DemoLayout, org: str, pem: str) -> None:
    path = layout.trusted_ca(org)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(pem)
    os.replace(tmp, path)


def _trusted_ca_of_existing(layout: DemoLayout, org: str) -> None:
    """A deployment made before trust/ existed: take the CA from the broker's identity
    directory, without following a link it planted, and only if it is a certificate."""
    if layout.trusted_ca(org).exists():
        return
    fd = os.open(layout.identities / org / "ca.pem", os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        data = f.read(64 * 1024)
    cert = x509.load_pem_x509_certificate(data)  # raises on anything but a certificate
    _record_trusted_ca(layout, org, cert.public_bytes(serialization.Encoding.PEM).decode())


def check_can_provision() -> None:
    if os.geteuid() != 0:
        raise RuntimeError(
            "dshare demo must run as root: it creates an OS user for every hub user, one "
            "per organization's broker and one for the hub (as The Littlest JupyterHub "
            "does), starts the brokers and the executor as theirs, and writes the sudo rule "
            "the hub starts servers with. Run `sudo make demo` (or `sudo .venv/bin/dshare "
            "demo`)."
        )
    try:
        system_users.check_interpreter_usable()
    except system_users.AccountError as e:
        raise RuntimeError(str(e)) from None


def provision(layout: DemoLayout) -> dict[str, str]:
    """Make the deployment whole; return the demo logins created by this call."""
    check_can_provision()
    isolation.ensure_accounts(layout)
    isolation.make_layout_dirs(layout)
    isolation.migrate_old_paths(layout)
    for name in service_names():
        if not layout.service_token_file(name).exists():
            _write_private(layout.service_token_file(name), secrets.token_hex(32) + "\n")

    peers = {
        org: f"http://{layout.ip}:{layout.broker_port(i)}/services/dshare-{org.lower()}/"
        for i, org in enumerate(ORGS)
    }
    for org in ORGS:
        org_dir = layout.org_dir(org)
        org_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not (layout.identities / org / "key.pem").exists():
            _create_identity(layout, org)
        _trusted_ca_of_existing(layout, org)
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
                executor_url=layout.executor_url,
                user_template=layout.user_template,
                storage_root=str(layout.storage_root(org)),
                views_dir=str(layout.views_dir(org)),
                org_ca_files={o: str(layout.trusted_ca(o)) for o in ORGS},
            ),
        )

    # Every file the ledger keeps beside its database exists before a broker opens it, so
    # none is made 0600 by the first broker and refused to the others.
    release_core(acquire_core(layout.ledger_db))

    # 0711: job uids unpack their workspace under it by path, and may list nothing.
    layout.executor_dir.mkdir(exist_ok=True)
    os.chmod(layout.executor_dir, 0o711)  # noqa: S103 - traversal only, no listing
    _write_private(
        layout.executor_config,
        EXECUTOR_CONFIG.format(
            state_dir=str(layout.executor_dir / "state"),
            services={f"dshare-{org.lower()}": org for org in ORGS},
            mount_roots={org: str(layout.org_dir(org) / "broker" / "mounts") for org in ORGS},
            user_template=layout.user_template,
            storage_roots={org: [str(layout.storage_root(org))] for org in ORGS},
            data_groups={org: layout.data_group(org) for org in ORGS},
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

    accounts = isolation.ensure_homes(layout)
    # The non-root hub's way to make the account of someone added while it runs.
    write_account_config(
        layout.accounts_config,
        template=layout.user_template,
        home_root=layout.homes,
        group=layout.users_group,
        directory=layout.user_directory,
    )
    isolation.secure(layout)
    sudoers.install(layout)
    for user in demo_users():
        if "scientist" in user.roles:
            home = accounts[user.name].pw_dir
            try:
                system_users.run_as(
                    accounts[user.name],
                    [sys.executable, "-I", "-c", WRITE_EXPERIMENT, home],
                    cwd=home,
                )
            except system_users.AccountError as e:
                # The home is the user's to break; the deployment starts regardless.
                log.warning("could not put the experiment into %s: %s", home, e)
    return created

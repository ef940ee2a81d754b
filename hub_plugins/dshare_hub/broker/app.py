"""`BrokerApp`: configuration and startup of one organization's broker service."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jupyterhub.services.auth import HubAuth
from tornado import web
from tornado.ioloop import PeriodicCallback
from traitlets import Dict, Float, Integer, List, Unicode

from .. import mockdata
from ..keys import KekSource, KeyService, KeyStore
from ..ledger import Ledger
from ..ledger.identity import OrgIdentity, load_identity
from ..service_app import HubServiceApp
from .executor_client import ExecutorClient
from .handlers import routes
from .interactive import InteractiveViews
from .materialize import LocalMaterializer, Materializer
from .mock_handlers import mock_routes
from .mockruns import DEFAULT_ROWS, MockRuns
from .mocks import DEFAULT_MAX_PREVIEW_ROWS
from .peers import NonceStore, Signer
from .reaper import Reaper
from .redacted import RedactionKeys
from .runner import Runner
from .runs import RunService
from .service import Broker
from .view_handlers import view_routes
from .viewstore import ViewStore, check_views_dir

OPENAPI_PATH = Path(__file__).with_name("openapi.yaml")


def load_openapi() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
    return spec


class BrokerApp(HubServiceApp):
    name = "dshare-broker"
    description = "The dshare broker of one organization, run as a JupyterHub service."

    org = Unicode(
        "", help="The organization this broker acts for, as written in its 'org:<Org>' group."
    ).tag(config=True)
    ledger_kind = Unicode(
        "embedded", help="Which ledger to use: 'embedded' (SQLite) or 'fabric' (Gateway)."
    ).tag(config=True)
    ledger_db = Unicode("", help="Embedded ledger: path of the shared ledger SQLite file.").tag(
        config=True
    )
    identity_dir = Unicode(
        "",
        help="Directory holding <Org>/key.pem, cert.pem and ca.pem: this org's ledger identity.",
    ).tag(config=True)
    keystore_url = Unicode(
        "",
        help="SQLAlchemy URL of the wrapped-data-key store, e.g. sqlite:////srv/keys.sqlite or "
        "postgresql+psycopg://broker@db/dshare. Default: keys.sqlite in data_dir.",
    ).tag(config=True)
    kek_file = Unicode(
        "",
        help="File holding the org's key-encryption key(s), current first (e.g. a mounted "
        "Kubernetes Secret). Set this or kek_env.",
    ).tag(config=True)
    kek_env = Unicode(
        "", help="Name of an environment variable holding the KEK(s). Set this or kek_file."
    ).tag(config=True)
    data_dir = Unicode(
        "", help="Directory for the broker's own state (mount handles, key store by default)."
    ).tag(config=True)
    peers = Dict(
        {},
        help="Other organizations' brokers: {Org: base URL}, e.g. "
        "{'UiO': 'https://hub.uio.no/services/dshare-uio/'}. Needed to mount their data.",
    ).tag(config=True)
    org_ca_files = Dict(
        {},
        help="""{Org: CA certificate file}: the organizations' CAs this broker trusts, for
        checking peers' requests and (embedded ledger) every ledger entry. Set it for every
        organization: without it the embedded ledger's broker trusts the CAs the shared
        ledger file registers when it first starts (and logs their fingerprints), and Fabric
        peers cannot be checked. Add an organization here, or with `dshare ledger trust`, on
        every broker before its first entry.""",
    ).tag(config=True)
    reaper_interval = Float(
        30.0, help="Seconds between reaper passes (expired leases, ended runs' mounts)."
    ).tag(config=True)
    ledger_audit_interval = Float(
        3600.0,
        help="""Embedded ledger: seconds between full checks of the ledger by this broker
        (every hash and signature, its checkpoints, and the whole log replayed against the
        stored state, as `dshare ledger verify` does), the first when it starts.
        Every reaper pass checks what was added since; only a full check finds a state
        table changed under an intact log. Lower it on small ledgers, raise it when a check
        takes too long (0.7 s per 1,000 entries on a 2-core machine).""",
    ).tag(config=True)
    peer_window = Integer(
        120, help="Seconds a signed peer request stays valid; replays are refused within it."
    ).tag(config=True)

    fabric_profile = Unicode(
        "",
        help="""Fabric ledger (ledger_kind = 'fabric'): path of this org's connection profile
        (JSON: peer_endpoint, msp_id, channel, chaincode, key_path, cert_path,
        tls_root_cert_path), as fabric-network/scripts/connection-profiles.sh writes it.
        Relative paths in it are read from the profile's folder.""",
    ).tag(config=True)

    materializer_kind = Unicode(
        "local",
        help="""How leased data is mounted: 'local' (embedded: read-only directory handles
        under data_dir) or 'kubernetes' (Secret + PersistentVolume + claim per lease and run,
        with the broker pod's in-cluster service account).""",
    ).tag(config=True)

    kube_namespace_template = Unicode(
        "{hubnamespace}-{username}",
        help="""Kubernetes: the users' namespaces, as KubeSpawner.user_namespace_template
        names them (fields {hubnamespace}, {username}); claims are created there.""",
    ).tag(config=True)

    kube_hub_namespace = Unicode(
        "jhub", help="Kubernetes: the hub's namespace, for {hubnamespace}."
    ).tag(config=True)

    kube_secret_namespace = Unicode(
        "dshare-secrets-{org}",
        help="""Kubernetes: this org's own namespace ({org}: the org, lower case), where each
        mount's storage credential and record go. No user can start pods there and no other
        org's broker holds a right there; the chart creates it with the broker's Role and
        the admission policy refuses Secrets anywhere else. Change it only together with
        both.""",
    ).tag(config=True)

    executor_url = Unicode(
        "",
        help="""Embedded deployment: base URL of the job executor service (e.g.
        http://127.0.0.1:8110/services/dshare-executor/). When set, runs are submitted with
        their workflow and workspace, compiled here and run by the executor; the caller
        never gets a mount. Empty on Kubernetes (materializer_kind 'kubernetes'), where this
        broker submits each run's Workflow to Argo itself (the kube_* settings below).""",
    ).tag(config=True)

    kube_gate_image = Unicode(
        "",
        help="""Kubernetes: the image of dshare's own seed, gate and decide steps (it must
        hold this package: `python -m dshare_hub.k8s.gate_step`). They run beside the data
        and decide what reaches the scientist, so pin it by digest and never let users pick
        it. Required to run jobs on Kubernetes.""",
    ).tag(config=True)

    kube_job_image = Unicode(
        "quay.io/jupyter/scipy-notebook:2025-01-06",
        help="""Kubernetes: the image of jobs whose workflow.yaml names none; usually the
        notebook image the spawner starts, so jobs see the libraries the notebook has.""",
    ).tag(config=True)

    kube_workflow_service_account = Unicode(
        "dshare-workflow",
        help="""Kubernetes: the ServiceAccount of every run's pods in the user namespace
        (the per-namespace object of docs/operator-guide.md). Only Argo's own executor uses
        its token, to report results; it must not be the user's account, whose token the
        scientist holds.""",
    ).tag(config=True)

    kube_staging_size = Unicode(
        "10Gi",
        help="""Kubernetes: the size of each run's staging claim, which holds the copy of
        the home the jobs work in, their logs and held outputs. Raise it when runs write
        more than that.""",
    ).tag(config=True)

    kube_staging_storage_class = Unicode(
        None,
        allow_none=True,
        help="""Kubernetes: the StorageClass of the staging claims (ReadWriteMany: the
        run's pods may land on different nodes). None: the cluster's default class.""",
    ).tag(config=True)

    system_username_template = Unicode(
        "{username}",
        help="""Embedded deployment: the OS user a hub user's server runs as, as the
        spawner names it (e.g. 'jupyter-{username}'); released outputs are written into
        that user's home with that user's rights, and views of interactive datasets are
        readable by that user alone. Change it together with the spawner's.""",
    ).tag(config=True)

    storage_roots = List(
        Unicode(),
        [],
        help="""Directories this organization's local/hostpath datasets must lie under.
        Registering or updating a dataset whose path resolves outside them (another
        organization's directory, /etc, the deployment's own state) is refused, naming the
        roots. Empty: no restriction (only for trusted single-organization setups).""",
    ).tag(config=True)

    interactive_views_dir = Unicode(
        "",
        help="""Embedded deployment: a directory of this broker's own (mode 0711, on the
        file system of the organization's storage) where it makes the views of its
        interactive datasets for their lessees: hard links to the files, readable by the
        lessee's OS user only (POSIX ACLs; needs setfacl from Debian's 'acl'), removed by
        the reaper when the lease ends. The lessee's server links ~/datasets/<name> to it.
        Empty: this organization's datasets are never shown in a notebook, only in runs.""",
    ).tag(config=True)

    redacted_copies_dir = Unicode(
        "",
        help="""Embedded deployment: where this broker writes the redacted copies of tabular
        datasets whose redaction policy hides columns from a lessee (one per run and lease,
        removed with the mount). It must lie under one of BrokerApp.storage_roots (the
        executor mounts nothing else) in a directory that gives new entries the
        organization's data group (setgid), and nobody but the broker and that group may
        traverse it. Empty: '.dshare-redacted' in the first storage root. Change it when the
        first root is read-only or short of space.""",
    ).tag(config=True)

    redaction_key_file = Unicode(
        "",
        help="""The secret (32 random bytes, 0600, made on first use) from which this broker
        derives the HMAC keys that hash redacted columns, one key per lessee organization.
        Empty: 'redaction.key' in BrokerApp.data_dir. Set it to keep hashes stable when the
        data dir moves; replacing the file changes every hash lessees see.""",
    ).tag(config=True)

    max_workspace_bytes = Integer(
        64 * 1024 * 1024,
        help="""Largest workspace (the compressed snapshot of the scientist's home a run
        starts from) accepted with a run. Raise it when scientists need bigger inputs of
        their own; leased data never counts.""",
    ).tag(config=True)

    mock_preview_max_rows = Integer(
        DEFAULT_MAX_PREVIEW_ROWS,
        min=1,
        help="""Most rows a mock preview (GET datasets/<id>/mock?rows=N) returns. Mocks are
        synthetic, so this bounds only the work of one request; raise it when scientists
        want longer previews.""",
    ).tag(config=True)

    mock_run_rows = Integer(
        DEFAULT_ROWS,
        min=0,
        max=mockdata.MAX_ROWS,
        help="""Rows of each table a mock run (%dshare_run --mock) reads, at most 100000
        (the executor's limit). Raise it when workflows need more rows to be tested; the
        executor writes them into the run's directory, so they cost its disk and time.""",
    ).tag(config=True)

    aliases = {"org": "BrokerApp.org", "config": "BrokerApp.config_file"}

    fallback_port = 8100

    def fallback_prefix(self) -> str:
        return f"/services/dshare-{self.org.lower()}/"

    def load_settings(self) -> None:
        if self.config_file:
            self.load_config_file(self.config_file)
        missing = [name for name in ("org", "data_dir") if not getattr(self, name)]
        if self.ledger_kind == "embedded":
            missing += [n for n in ("ledger_db", "identity_dir") if not getattr(self, n)]
        elif self.ledger_kind == "fabric":
            missing += [n for n in ("fabric_profile",) if not getattr(self, n)]
        else:
            raise SystemExit(
                f"dshare broker: BrokerApp.ledger_kind is {self.ledger_kind!r}; "
                "use 'embedded' or 'fabric'"
            )
        if self.materializer_kind not in ("local", "kubernetes"):
            raise SystemExit(
                f"dshare broker: BrokerApp.materializer_kind is {self.materializer_kind!r}; "
                "use 'local' or 'kubernetes'"
            )
        if missing:
            raise SystemExit(
                f"dshare broker: set {', '.join('BrokerApp.' + m for m in missing)} "
                "(in the --config file)"
            )

    def open_ledger(self) -> Ledger:
        if self.ledger_kind == "embedded":
            from ..ledger.embedded import EmbeddedLedger

            # The broker's own state directory keeps what it saw of the ledger, out of reach
            # of anyone who can write the ledger file (ledger/witness.py).
            embedded = EmbeddedLedger.open(
                self.ledger_db,
                self.identity_dir,
                self.org,
                state_dir=self.data_dir,
                trusted_cas={org: self._read_ca(org) for org in self.org_ca_files},
            )
            self._witness = embedded.witness
            return embedded
        from ..ledger.fabric import FabricLedger

        profile = Path(self.fabric_profile)
        try:
            data = json.loads(profile.read_text())
        except (OSError, ValueError) as e:
            raise SystemExit(
                f"dshare broker: cannot read BrokerApp.fabric_profile {profile}: {e}"
            ) from None
        return FabricLedger.from_config(data, base_dir=profile.parent)

    def make_materializer(self, data_dir: Path) -> Materializer:
        if self.materializer_kind == "local":
            roots = list(self.storage_roots)
            copies = self.redacted_copies_dir or (
                os.path.join(roots[0], ".dshare-redacted") if roots else ""
            )
            return LocalMaterializer(
                data_dir,
                redacted_dir=Path(copies) if copies else None,
                redaction_keys=RedactionKeys(
                    Path(self.redaction_key_file or data_dir / "redaction.key")
                ),
            )
        from kubernetes_asyncio import client, config

        from ..k8s.api import KubeApi
        from ..k8s.materialize import KubeMaterializer

        # The broker runs in the cluster with its own service account (see z2jh-values/).
        config.load_incluster_config()
        return KubeMaterializer(
            KubeApi(client.ApiClient()),
            namespace_template=self.kube_namespace_template,
            hub_namespace=self.kube_hub_namespace,
            secret_namespace=self.kube_secret_namespace.format(org=self.org.lower()),
            owner_org=self.org,
        )

    def make_runner(self, materializer: Materializer) -> Runner | None:
        """The executor when one is configured; on Kubernetes, Argo with this broker's own
        service account; else None (this broker runs nothing)."""
        if self.executor_url:
            return ExecutorClient(
                self.executor_url, system_username_template=self.system_username_template
            )
        from ..k8s.materialize import KubeMaterializer

        if not isinstance(materializer, KubeMaterializer) or not self.kube_gate_image:
            return None
        from ..k8s.runner import ArgoRunner

        return ArgoRunner(
            materializer.api,
            org=self.org,
            namespace_for=materializer.namespace_for,
            gate_image=self.kube_gate_image,
            job_image=self.kube_job_image,
            service_account=self.kube_workflow_service_account,
            staging_size=self.kube_staging_size,
            staging_storage_class=self.kube_staging_storage_class,
        )

    def signing_identity(self, ledger: Ledger) -> Any:
        """The org identity that signs peer requests: the embedded ledger's own, else the
        identity directory's, else the Fabric profile's MSP certificate and key."""
        identity = getattr(ledger, "identity", None)
        if identity is not None:
            return identity
        if self.identity_dir:
            return load_identity(Path(self.identity_dir), self.org)
        profile = getattr(ledger, "profile", None)
        if profile is None:
            raise SystemExit("dshare broker: set BrokerApp.identity_dir to sign peer requests")
        key = serialization.load_pem_private_key(profile.key_path.read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise SystemExit(f"dshare broker: {profile.key_path} is not an EC (P-256) key")
        return OrgIdentity(
            msp_id=profile.msp_id,
            cert_pem=profile.cert_pem.decode(),
            ca_cert_pem="",
            directory=profile.key_path.parent,
            key=key,
        )

    def _read_ca(self, org: str) -> str:
        path = Path(self.org_ca_files[org])
        try:
            return path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as e:
            raise SystemExit(
                f"dshare broker: cannot read BrokerApp.org_ca_files[{org!r}] {path}: {e}"
            ) from None

    async def ca_for_org(self, org: str) -> str | None:
        if org in self.org_ca_files:
            return self._read_ca(org)
        witness = getattr(self, "_witness", None)
        if witness is not None:
            # What this broker trusts, not what the shared ledger file says.
            ca: str | None = witness.ca_for(org)
            return ca
        if self.ledger_kind != "embedded":
            return None

        # The CAs registered in the embedded ledger's `orgs` table, read-only.
        def read() -> str | None:
            conn = sqlite3.connect(f"file:{self.ledger_db}?mode=ro", uri=True)
            try:
                row = conn.execute(
                    "SELECT ca_cert_pem FROM orgs WHERE msp_id = ?", (org,)
                ).fetchone()
            finally:
                conn.close()
            return str(row[0]) if row else None

        return await asyncio.to_thread(read)

    def build(
        self, ledger: Ledger, materializer: Materializer | None = None
    ) -> tuple[web.Application, Broker, Reaper]:
        data_dir = Path(self.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        keystore = KeyStore(self.keystore_url or f"sqlite:///{data_dir / 'keys.sqlite'}")
        keys = KeyService(keystore, KekSource(kek_file=self.kek_file, kek_env=self.kek_env))
        keys.kek_source.keyring()  # fail at startup, not at the first request
        materializer = materializer or self.make_materializer(data_dir)
        identity = self.signing_identity(ledger)
        broker = Broker(
            org=self.org,
            ledger=ledger,
            keys=keys,
            materializer=materializer,
            signer=Signer(identity),
            nonces=NonceStore(keystore.engine, self.peer_window),
            ca_for_org=self.ca_for_org,
            peers={str(k): str(v) for k, v in self.peers.items()},
            storage_roots=list(self.storage_roots),
        )
        runs = None
        mock_runs = None
        runner = self.make_runner(materializer)
        if runner is not None:
            runs = RunService(
                broker,
                runner,
                state_dir=data_dir / "runs",
                max_workspace_bytes=self.max_workspace_bytes,
            )
            mock_runs = MockRuns(runs, rows=self.mock_run_rows)
        store = None
        if self.interactive_views_dir:
            check_views_dir(Path(self.interactive_views_dir))
            store = ViewStore(Path(self.interactive_views_dir), data_dir / "views")
        views = InteractiveViews(
            broker, store, system_username_template=self.system_username_template
        )
        reaper = Reaper(
            org=self.org,
            ledger=ledger,
            materializer=materializer,
            reap_views=views.reap,
            audit_interval=self.ledger_audit_interval,
        )
        app = web.Application(
            view_routes(self.base_url) + mock_routes(self.base_url) + routes(self.base_url),
            broker=broker,
            views=views,
            hub_auth=HubAuth(),
            openapi=load_openapi(),
            service_name=f"dshare-{self.org.lower()}",
            runs=runs,
            mock_runs=mock_runs,
            mock_preview_max_rows=self.mock_preview_max_rows,
            # Runs carry their workspace; every other handler refuses bodies over 1 MiB.
            max_body_size=self.max_workspace_bytes * 3 // 2 + 1024 * 1024,
        )
        return app, broker, reaper

    async def serve(self) -> None:
        ledger = self.open_ledger()
        app, _broker, reaper = self.build(ledger)
        runs: RunService | None = app.settings.get("runs")
        if runs is not None and runs.resume():
            logging.getLogger("dshare.broker").info("following runs started before a restart")
        server = app.listen(self.port, self.ip, xheaders=True)
        logging.getLogger("dshare.broker").info(
            "dshare broker of %s on http://%s:%s%s", self.org, self.ip, self.port, self.base_url
        )
        callback = PeriodicCallback(reaper.tick, self.reaper_interval * 1000)
        callback.start()
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(reaper.tick()))
        stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
        try:
            await stopping.wait()
        finally:
            callback.stop()
            server.stop()
            await ledger.close()

    def start(self) -> None:
        self.load_settings()
        asyncio.run(self.serve())

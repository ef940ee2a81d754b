"""`Executor`: configuration and startup of the embedded executor, a JupyterHub service.

Run AS ROOT (it switches to per-run job uids and to the scientist's uid for delivery). The
embedded deployment's hub is not root, so `dshare demo` starts it beside the hub as an
external service (demo/services.py); a hub that does run as root may manage it itself::

    c.JupyterHub.services.append({
        "name": "dshare-executor",
        "command": [sys.executable, "-m", "dshare_hub.executor",
                    "--config", "/etc/dshare/executor.py"],
    })

and in that config file::

    c.Executor.state_dir = "/var/lib/dshare/executor"
    c.Executor.allowed_services = {"dshare-uis": "UiS", "dshare-uio": "UiO"}
    c.Executor.org_mount_roots = {"UiS": "/var/lib/dshare/UiS/mounts", ...}
"""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import pwd
import signal

from jupyterhub.services.auth import HubAuth
from tornado import web
from traitlets import Dict, Integer, List, Tuple, Unicode, Union, validate

from ..service_app import HubServiceApp
from .accounts import AccountCheck, Lookup
from .handlers import routes
from .identity import UidPool
from .jail import HOW_TO_FIX, Sandbox, probe
from .limits import JobLimits
from .mounts import OrgPlaces
from .service import ExecutorService
from .store import RunStore

log = logging.getLogger("dshare.executor")


class Executor(HubServiceApp):
    name = "dshare-executor"
    description = "The dshare embedded executor: runs brokers' runs in bubblewrap sandboxes."

    state_dir = Unicode(
        "/var/lib/dshare/executor",
        help="""Where runs live (run.json, logs, workspaces, held outputs). Made 0711, root's.
        Change it to put runs on a disk with room for the homes being copied into runs.""",
    ).tag(config=True)
    uid_range = Tuple(
        Integer(),
        Integer(),
        default_value=(61000, 61999),
        help="""First and last uid (inclusive) of the per-run job identities; each run's gid
        is its uid. Change it if these ids are used on this machine: no user, service or
        file may own them. Its size bounds how many runs go at once.""",
    ).tag(config=True)
    allowed_services = Union(
        [Dict(), List()],
        default_value={},
        help="""The JupyterHub services (the orgs' brokers) that may use the executor, as
        {service name: org}, e.g. {'dshare-uis': 'UiS'}. A list of names is also accepted:
        'dshare-<org>' names are matched case-insensitively to the orgs of
        org_mount_roots. Add a broker here when adding an organization.""",
    ).tag(config=True)
    org_mount_roots = Dict(
        {},
        help="""{Org: that org's broker data_dir + '/mounts'}: the only place mount handles
        of that org's datasets are accepted from. Set one per organization.""",
    ).tag(config=True)
    org_storage_roots = Dict(
        {},
        help="""{Org: [directories]}: where that org's datasets may lie, as its broker's
        BrokerApp.storage_roots. A mount whose directory resolves anywhere else is refused,
        whatever the org's broker wrote in its mount root. Set one per organization.""",
    ).tag(config=True)
    org_data_groups = Dict(
        {},
        help="""{Org: group name or gid}: the group that reads that org's raw data (the
        group provisioning gives its storage, no members). Jobs over its datasets get this
        group, never one a broker names. Set one per organization.""",
    ).tag(config=True)
    job_max_processes = Integer(
        1024,
        help="""Processes (threads included) one run's jobs may have at once; 0 for no
        limit. Each run has a uid of its own, so this is per run. Raise it for jobs that
        start many threads.""",
    ).tag(config=True)
    job_max_memory_bytes = Integer(
        8 * 1024**3,
        help="""Address space of each job process, in bytes; 0 for no limit. It bounds a
        runaway job before the host's OOM killer picks the hub; raise it for jobs that
        need more memory (some runtimes reserve much more than they use).""",
    ).tag(config=True)
    job_max_file_bytes = Integer(
        4 * 1024**3,
        help="""Largest file a job may write, in bytes; 0 for no limit. Keeps one job from
        filling the disk that holds every run's workspace.""",
    ).tag(config=True)
    system_username_template = Unicode(
        "jupyter-{username}",
        help="""The OS account of hub user {username}, as DShareSystemLocalSpawner and the
        brokers name it. A run's results are delivered only into that account's home, and
        only for a user of the submitting broker's organization (asked of the hub). Change
        it together with the spawner's and the brokers' templates.""",
    ).tag(config=True)
    max_body_bytes = Integer(
        64 * 1024 * 1024,
        help="""Largest POST body accepted (a run carries the scientist's home as a
        base64 tar). Raise it if scientists' homes are larger.""",
    ).tag(config=True)
    scan_cap_bytes = Integer(
        16 * 1024 * 1024,
        help="""How much of each mounted input the output gate scans for verbatim copies.
        Outputs of runs over larger inputs are held for the owner's review; raise it if
        owners review too much and the machine can afford the time (pure Python: a few
        seconds per MiB).""",
    ).tag(config=True)
    workspace_max_bytes = Integer(
        1024**3,
        help="Largest size a home may expand to in a run's workspace. Raise it for big homes.",
    ).tag(config=True)
    parallelism = Integer(
        0, help="Jobs of one run at once; 0 means the number of CPUs. Lower it on busy hosts."
    ).tag(config=True)
    max_mock_runs_per_user = Integer(
        3,
        help="""Mock runs (%dshare_run --mock) one scientist may have going at once; 0 for
        no limit. A mock run needs no lease, so without it one scientist could take every
        job identity of Executor.uid_range and stop everyone's runs. Raise it when
        scientists test many workflows side by side.""",
    ).tag(config=True)

    aliases = {"config": "Executor.config_file"}

    fallback_port = 8110

    def fallback_prefix(self) -> str:
        return "/services/dshare-executor/"

    @validate("uid_range")
    def _check_range(self, proposal: dict) -> tuple[int, int]:
        first, last = proposal["value"]
        UidPool(first, last)  # raises with the reason
        return (first, last)

    def services(self) -> dict[str, str]:
        allowed = self.allowed_services
        if isinstance(allowed, dict):
            return {str(k): str(v) for k, v in allowed.items()}
        orgs = {f"dshare-{org.lower()}": str(org) for org in self.org_mount_roots}
        unknown = [name for name in allowed if name.lower() not in orgs]
        if unknown:
            raise SystemExit(
                f"dshare executor: cannot tell the organization of {', '.join(unknown)}; "
                "give Executor.allowed_services as {service name: org}"
            )
        return {name: orgs[name.lower()] for name in allowed}

    def org_places(self) -> dict[str, OrgPlaces]:
        """Each organization as the operator placed it; one not fully configured gets no
        mounts (its runs are refused saying so), rather than a guess."""
        places = {}
        for org, root in self.org_mount_roots.items():
            roots = self.org_storage_roots.get(org) or []
            group = self.org_data_groups.get(org)
            if not roots or group is None:
                log.error(
                    "dshare executor: %s has no org_storage_roots or org_data_groups; runs "
                    "over its data will be refused",
                    org,
                )
                continue
            gid = group if isinstance(group, int) else grp.getgrnam(str(group)).gr_gid
            places[str(org)] = OrgPlaces(str(root), tuple(str(r) for r in roots), gid)
        return places

    def load_settings(self) -> None:
        if self.config_file:
            self.load_config_file(self.config_file)
        if not self.allowed_services:
            raise SystemExit("dshare executor: set Executor.allowed_services (the brokers)")
        if os.geteuid() != 0:
            raise SystemExit(
                "dshare executor: must run as root (it starts jobs as per-run uids and "
                "delivers outputs as the scientist); start it as root beside the hub"
            )

    def build(
        self,
        sandbox: Sandbox | None = None,
        hub_auth: HubAuth | None = None,
        account_lookup: Lookup = pwd.getpwnam,
    ):
        store = RunStore(self.state_dir)
        pool = UidPool(*self.uid_range)
        limits = JobLimits(
            processes=self.job_max_processes,
            memory_bytes=self.job_max_memory_bytes,
            file_bytes=self.job_max_file_bytes,
        )
        if sandbox is None:
            sandbox = probe(pool.first, limits)
        if not sandbox.usable:
            log.error("dshare executor: no run will start: %s; %s", sandbox.problem, HOW_TO_FIX)
        service = ExecutorService(
            store,
            pool,
            sandbox,
            self.org_places(),
            scan_cap=self.scan_cap_bytes,
            workspace_max_bytes=self.workspace_max_bytes,
            parallelism=self.parallelism or None,
            limits=limits,
            max_mock_runs=self.max_mock_runs_per_user,
        )
        service.recover()
        hub_auth = hub_auth or HubAuth()
        app = web.Application(
            routes(self.base_url),
            executor=service,
            service_name="dshare-executor",
            hub_auth=hub_auth,
            accounts=AccountCheck(
                username_template=self.system_username_template,
                hub_api_url=hub_auth.api_url,
                hub_api_token=hub_auth.api_token,
                lookup=account_lookup,
            ),
            allowed_services=self.services(),
            max_body_bytes=self.max_body_bytes,
        )
        return app, service

    async def serve(self) -> None:
        app, service = self.build()
        server = app.listen(
            self.port, self.ip, xheaders=True, max_body_size=self.max_body_bytes + 4096
        )
        log.info("dshare executor on http://%s:%s%s", self.ip, self.port, self.base_url)
        stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
        try:
            await stopping.wait()
        finally:
            server.stop()
            await service.close()

    def start(self) -> None:
        self.load_settings()
        asyncio.run(self.serve())

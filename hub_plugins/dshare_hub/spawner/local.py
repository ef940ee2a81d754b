"""dshare spawners for the embedded (one machine) deployment, over JupyterHub's local spawners.

At every spawn the user's leased datasets appear as skeletons (directories and empty files)
under ~/datasets/<dataset name>/, so code can be written against real paths; jobs that read
the data run through %dshare_run and the local runner, which binds it read-only.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Any

from jupyterhub.spawner import LocalProcessSpawner, SimpleLocalProcessSpawner
from traitlets import Bool, Unicode, default

from ..k8s.names import dataset_dir_name
from .base import DShareSpawnerMixin, Identity
from .skeleton import write_skeletons

DATASETS_DIR = "datasets"
# An IPython startup file loads the %dshare_run magic in every kernel, as the single-user
# image's kernel config does on Kubernetes.
MAGIC_STARTUP = Path(".ipython", "profile_default", "startup", "00-dshare.py")
MAGIC_STARTUP_SOURCE = """\
# Written by dshare's spawner: loads %dshare_run, %dshare_status and %dshare_logs.
# Delete this file to stop it; it is not written again while the home holds it.
get_ipython().extension_manager.load_extension("dshare_server")
"""


class _DShareLocalMixin(DShareSpawnerMixin):
    """The dshare part of both local spawners."""

    autoload_magic = Bool(
        True,
        config=True,
        help="""Write ~/.ipython/profile_default/startup/00-dshare.py at spawn, unless the
        user removed it once, so every kernel has %dshare_run. Turn off when the Python
        environment's own IPython config already loads dshare_server.""",
    )

    _dshare_identity: Identity | None = None

    def dshare_home(self) -> Path:
        raise NotImplementedError

    def dshare_owner(self) -> tuple[int, int] | None:
        """(uid, gid) to own the skeleton files, or None to keep the hub's own."""
        return None

    def dshare_runs_as_root(self) -> bool:
        raise NotImplementedError

    async def dshare_prepare(self) -> None:
        identity = self.dshare_identity()
        leased = await self.dshare_leased_datasets(identity)
        self._dshare_identity = identity
        skeletons: dict[str, list[str]] = {}
        for item in leased:
            skeletons.setdefault(dataset_dir_name(item.name), []).extend(item.skeleton)
        result = write_skeletons(
            self.dshare_home() / DATASETS_DIR, skeletons, owner=self.dshare_owner()
        )
        if self.autoload_magic:
            self.dshare_write_magic_startup()
        if result.kept:
            self.log.info(
                "kept %d non-empty files of datasets no longer leased by %s",
                len(result.kept),
                identity.user,
            )

    def dshare_write_magic_startup(self) -> None:
        home = self.dshare_home()
        startup = home / MAGIC_STARTUP
        marker = home / ".ipython" / ".dshare-magic-written"
        if startup.exists() or marker.exists():
            return  # present, or written once and since removed by the user
        startup.parent.mkdir(parents=True, exist_ok=True)
        startup.write_text(MAGIC_STARTUP_SOURCE)
        marker.touch()
        owner = self.dshare_owner()
        if owner is not None:
            ipython = home / ".ipython"
            for path in (ipython, ipython / "profile_default", startup.parent, startup, marker):
                os.chown(path, *owner)

    async def start(self) -> Any:
        await self.dshare_prepare()
        return await super().start()  # type: ignore[misc]

    def get_env(self) -> dict[str, str]:
        env: dict[str, str] = super().get_env()  # type: ignore[misc]
        identity = self._dshare_identity or self.dshare_identity()
        env.update(self.dshare_env(identity))
        return env

    def get_args(self) -> list[str]:
        args: list[str] = super().get_args()  # type: ignore[misc]
        # jupyter-server refuses to run as root without this, and the hub would only
        # report a start timeout.
        if self.dshare_runs_as_root() and "--ServerApp.allow_root=True" not in args:
            args.append("--ServerApp.allow_root=True")
        return args


class DShareSimpleLocalSpawner(_DShareLocalMixin, SimpleLocalProcessSpawner):
    """For evaluation only: every user's server runs as the hub's own OS user.

    Users are separated by home directory only, not by the operating system; use
    DShareSystemLocalSpawner (one OS user each) or the Kubernetes spawner for real use.
    """

    data_dir = Unicode(
        config=True,
        help="""Directory holding one home directory per user (<data_dir>/<username>).
        For evaluation: all servers run as the hub's OS user, so users are not isolated
        from one another. Default: 'dshare-users' in the hub's working directory.""",
    )

    @default("data_dir")
    def _default_data_dir(self) -> str:
        return os.path.abspath("dshare-users")

    @default("home_dir_template")
    def _default_home_dir_template(self) -> str:
        return os.path.join(self.data_dir, "{username}")

    def dshare_home(self) -> Path:
        return Path(self.home_dir)

    def dshare_runs_as_root(self) -> bool:
        return os.geteuid() == 0


class DShareSystemLocalSpawner(_DShareLocalMixin, LocalProcessSpawner):
    """One OS user per JupyterHub user (JupyterHub's LocalProcessSpawner), dshare-aware."""

    def _pw(self) -> pwd.struct_passwd:
        return pwd.getpwnam(self.user.name)

    def dshare_home(self) -> Path:
        return Path(self._pw().pw_dir)

    def dshare_owner(self) -> tuple[int, int] | None:
        pw = self._pw()
        return (pw.pw_uid, pw.pw_gid) if os.geteuid() == 0 else None

    def dshare_runs_as_root(self) -> bool:
        return self._pw().pw_uid == 0


# The embedded demo's spawner.
DShareLocalSpawner = DShareSimpleLocalSpawner

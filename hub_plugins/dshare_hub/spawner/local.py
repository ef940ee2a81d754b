"""dshare spawners for the embedded (one machine) deployment, over JupyterHub's local spawners.

At every spawn the user's leased datasets appear as skeletons (directories and empty files)
under ~/datasets/<dataset name>/, so code can be written against real paths; jobs that read
the data run through %dshare_run and the executor, which binds it read-only. A dataset whose
owner allows interactive use is instead a link to the read-only view its owner's broker
made for this user (the server extension keeps the links current while the server runs).

`DShareSystemLocalSpawner` (aliased `DShareLocalSpawner`) runs each hub user as an OS user
of their own, as The Littlest JupyterHub does, for a hub that runs as root.
`DShareSudoSpawner` (spawner/sudo.py, what the embedded deployment uses) does the same for
a hub that does not, through sudo and sudospawner. `DShareSimpleLocalSpawner` runs everyone
as the hub's own user and is for evaluation only.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyterhub.spawner import LocalProcessSpawner, SimpleLocalProcessSpawner, set_user_setuid
from traitlets import Bool, Unicode, default

from dshare_server.links import links_from_views

from ..k8s.names import dataset_dir_name
from . import system_users
from .base import DShareSpawnerMixin, DShareSpawnError, Identity
from .skeleton import (
    DATASETS_DIR,
    MAGIC_STARTUP,
    MAGIC_STARTUP_SOURCE,
    SkeletonResult,
    prepare_home,
)

__all__ = [
    "DATASETS_DIR",
    "MAGIC_STARTUP",
    "MAGIC_STARTUP_SOURCE",
    "DShareLocalSpawner",
    "DShareSimpleLocalSpawner",
    "DShareSystemLocalSpawner",
]


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

    def dshare_runs_as_root(self) -> bool:
        raise NotImplementedError

    def dshare_write_home(
        self,
        skeletons: dict[str, list[str]],
        *,
        magic: bool,
        links: dict[str, str] | None = None,
    ) -> SkeletonResult:
        """Write the skeletons, the links to interactive views (and the magic's startup
        file) into the user's home."""
        return prepare_home(self.dshare_home(), skeletons, magic=magic, links=links)

    async def dshare_views(self, identity: Identity, leased: list[Any]) -> dict[str, str]:
        """{dataset dir: view path} of the user's interactive leases, from their broker.

        A broker that cannot show a view leaves that dataset a skeleton: a spawn never
        fails for it."""
        if not any(item.interactive for item in leased):
            return {}
        try:
            reply = await self._broker(identity, "POST", "views", {})
        except DShareSpawnError as e:
            self.log.warning("interactive datasets of %s stay skeletons: %s", identity.user, e)
            return {}
        for problem in reply.get("unavailable", []) if isinstance(reply, dict) else []:
            self.log.info(
                "dataset %s of %s stays a skeleton: %s",
                problem.get("asset_id"),
                identity.user,
                problem.get("message"),
            )
        return links_from_views(reply.get("items") if isinstance(reply, dict) else None)

    async def dshare_prepare(self) -> None:
        identity = self.dshare_identity()
        leased = await self.dshare_leased_datasets(identity)
        self._dshare_identity = identity
        skeletons: dict[str, list[str]] = {}
        for item in leased:
            skeletons.setdefault(dataset_dir_name(item.name), []).extend(item.skeleton)
        links = await self.dshare_views(identity, leased)
        result = await asyncio.to_thread(
            self.dshare_write_home, skeletons, magic=self.autoload_magic, links=links
        )
        if result.magic_error:
            self.log.warning(
                "not loading %%dshare_run for %s: %s", identity.user, result.magic_error
            )
        if result.kept:
            self.log.info(
                "kept %d non-empty files of datasets no longer leased by %s",
                len(result.kept),
                identity.user,
            )

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

    Users are separated by home directory only, not by the operating system: each can read
    the others' homes and everything the hub can (with a root hub: every key on the
    machine). Use DShareSystemLocalSpawner (one OS user each) or the Kubernetes spawner for
    anything but a look at the interface. Choose it explicitly with
    `c.JupyterHub.spawner_class = "dshare_hub.spawner.local.DShareSimpleLocalSpawner"`;
    it logs a warning at every spawn.
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

    async def start(self) -> Any:
        self.log.warning(
            "DShareSimpleLocalSpawner runs every user's server as %s: users are not "
            "isolated; for evaluation only",
            pwd.getpwuid(os.geteuid()).pw_name,
        )
        return await super().start()


class HomeWriterError(RuntimeError):
    """The home writer could not run as the user, or failed; the message says why."""


class DShareSystemLocalSpawner(_DShareLocalMixin, LocalProcessSpawner):
    """One OS user per JupyterHub user (JupyterHub's LocalProcessSpawner), dshare-aware.

    The OS user is named by `system_username_template` and made at first spawn if missing
    (no password, no login shell, home `<home_root>/<hub user>` 0700). Its server, kernels
    and terminals run as that user; the hub itself must run as root to switch to it.
    """

    system_username_template = Unicode(
        "jupyter-{username}",
        config=True,
        help="""OS user name for a hub user; {username} is the hub user's name. Names are
        lower-cased and shortened with a hash past 32 characters. Change it when another
        deployment on the same machine uses the default prefix, or to match accounts made
        by your own provisioning (then also turn off create_system_users).""",
    )

    home_root = Unicode(
        "/home",
        config=True,
        help="""Directory holding the homes of OS users this spawner creates
        (<home_root>/<hub user>). Must be owned by root and not writable by others; the
        embedded deployment sets it to its data directory's homes/.""",
    )

    create_system_users = Bool(
        True,
        config=True,
        help="""Create the OS user with useradd at first spawn when it does not exist.
        Turn off when accounts come from elsewhere (LDAP, sssd, your own provisioning);
        a missing account then refuses the spawn with a message.""",
    )

    terminal_shell = Unicode(
        "/bin/bash",
        config=True,
        help="""Shell of JupyterLab terminals (the $SHELL of the server). The OS user's own
        login shell is nologin, so set this to the shell users should get in a terminal.""",
    )

    def system_username(self) -> str:
        try:
            return system_users.os_username(self.system_username_template, self.user.name)
        except system_users.AccountError as e:
            raise DShareSpawnError(str(e), reason="dshare_bad_username", status_code=500) from None

    def _pw(self) -> pwd.struct_passwd:
        name = self.system_username()
        pw = system_users.lookup(name)
        if pw is None:
            raise DShareSpawnError(
                f"There is no OS user {name} for your account ({self.user.name}) on this "
                "machine. Ask your administrator to create it, or to turn on "
                "DShareSystemLocalSpawner.create_system_users.",
                reason="dshare_no_os_user",
                status_code=500,
            )
        return pw

    def dshare_ensure_account(self) -> pwd.struct_passwd:
        if not self.create_system_users:
            return self._pw()
        home = Path(self.home_root) / self.user.name
        try:
            return system_users.ensure_user(self.system_username(), home)
        except system_users.AccountError as e:
            self.log.error("cannot prepare the OS user of %s: %s", self.user.name, e)
            raise DShareSpawnError(
                f"dshare could not prepare the OS account of your server ({e}). Tell your "
                "administrator.",
                reason="dshare_os_user",
                status_code=500,
            ) from None

    def dshare_home(self) -> Path:
        return Path(self._pw().pw_dir)

    def dshare_runs_as_root(self) -> bool:
        return self._pw().pw_uid == 0

    def dshare_write_home(
        self,
        skeletons: dict[str, list[str]],
        *,
        magic: bool,
        links: dict[str, str] | None = None,
    ) -> SkeletonResult:
        pw = self._pw()
        if pw.pw_uid == os.geteuid():
            return super().dshare_write_home(skeletons, magic=magic, links=links)
        request = json.dumps(
            {"home": pw.pw_dir, "skeletons": skeletons, "magic": magic, "links": links or {}}
        )
        try:
            answer = json.loads(self.dshare_run_home_writer(pw, request))
        except (HomeWriterError, ValueError) as e:
            self.log.error("writing dataset skeletons for %s failed: %s", self.user.name, e)
            raise DShareSpawnError(
                "dshare could not write the dataset skeletons into your home (~/datasets). "
                "Make ~/datasets a directory you own (or remove it); then start again.",
                reason="dshare_skeletons",
                status_code=500,
            ) from None
        return SkeletonResult(
            written=list(answer.get("written", [])),
            removed=list(answer.get("removed", [])),
            kept=list(answer.get("kept", [])),
            magic_error=str(answer.get("magic_error", "")),
            linked=list(answer.get("linked", [])),
        )

    def dshare_run_home_writer(self, pw: pwd.struct_passwd, request: str) -> str:
        """Override point: run the home writer (`dshare_hub.spawner.skeleton`) as the user
        with `request` on its stdin; its JSON answer, or HomeWriterError saying why. Here a
        root hub switches to the user itself."""
        try:
            return system_users.run_as(
                pw,
                [sys.executable, "-I", "-m", "dshare_hub.spawner.skeleton"],
                input=request,
                cwd=pw.pw_dir,
            )
        except system_users.AccountError as e:
            raise HomeWriterError(str(e)) from None

    async def start(self) -> Any:
        self.dshare_identity()  # no OS account for someone dshare refuses anyway
        await asyncio.to_thread(self.dshare_ensure_account)
        return await super().start()

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        pw = self._pw()
        env["USER"] = pw.pw_name
        env["HOME"] = pw.pw_dir
        env["SHELL"] = self.terminal_shell
        return env

    def make_preexec_fn(self, name: str) -> Callable[[], None]:
        # LocalProcessSpawner passes the hub user's name; the OS user is the template's.
        fn: Callable[[], None] = set_user_setuid(self.system_username())
        return fn

    async def move_certs(self, paths: dict[str, str]) -> dict[str, str]:
        raise DShareSpawnError(
            "DShareSystemLocalSpawner does not support JupyterHub.internal_ssl; turn it off.",
            reason="dshare_internal_ssl",
            status_code=500,
        )


# The embedded deployment's spawner: one OS user per hub user. The all-as-one-user
# evaluation spawner must be chosen by its own name.
DShareLocalSpawner = DShareSystemLocalSpawner

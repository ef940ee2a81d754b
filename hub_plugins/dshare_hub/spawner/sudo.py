"""`DShareSudoSpawner`: one OS user per hub user, for a hub that does not run as root.

JupyterHub's documented way ("Run JupyterHub without root privileges using sudo"): the hub
is a service user that may run, through sudo and a rule naming nothing else,

- the `sudospawner` mediator as a dshare user (it starts `jupyterhub-singleuser` from its
  own directory and signals it),
- `dshare-write-home` as a dshare user (the dataset skeletons and the magic's startup
  file, written with the user's own permissions),
- `dshare-ensure-account CONFIG HUBUSER` as root, for a person added while the hub runs
  (see account_helper.py for what it refuses).

Everything else is DShareSystemLocalSpawner's: the account naming, the environment, the
refusals. `dshare demo` writes the sudo rule (demo/sudoers.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from jupyterhub.utils import random_port
from traitlets import Unicode, default

from . import system_users
from .base import DShareSpawnError
from .local import DShareSystemLocalSpawner, HomeWriterError


def _beside_python(name: str) -> str:
    """A console script of this environment (the hub's venv), else from PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name) or name


class SudoRefused(RuntimeError):
    """sudo or the command it ran failed; the message has sudo's own words."""


def run_sudo(argv: Sequence[str], *, input: str = "", timeout: float = 60) -> str:
    """`sudo -n ARGV` with `input` on stdin; stdout, or SudoRefused with stderr's end."""
    try:
        done = subprocess.run(
            ["sudo", "-n", *argv],
            input=input,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
    except FileNotFoundError:
        raise SudoRefused("sudo is not installed (Debian's 'sudo' package)") from None
    if done.returncode != 0:
        raise SudoRefused(f"exit code {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout


class DShareSudoSpawner(DShareSystemLocalSpawner):
    """DShareSystemLocalSpawner for a hub without root: every switch of user goes
    through sudo (sudospawner's mediator), as JupyterHub documents."""

    sudospawner_path = Unicode(
        config=True,
        help="""The sudospawner mediator. It must sit beside jupyterhub-singleuser (it
        starts that one) and be the exact path the sudo rule names. Default: the one in
        the hub's own Python environment.""",
    )

    write_home_path = Unicode(
        config=True,
        help="""dshare-write-home, run as the user through sudo to write the dataset
        skeletons into their home; the exact path the sudo rule names.""",
    )

    account_helper_path = Unicode(
        config=True,
        help="""dshare-ensure-account, run as root through sudo to create the OS account
        of a hub user who has none; the exact path the sudo rule names. Empty: never
        create accounts (a user without one is refused with a message).""",
    )

    account_helper_config = Unicode(
        "",
        config=True,
        help="""The root-owned config the account helper reads (template, home root,
        group of dshare users, user directory); the exact path the sudo rule names.""",
    )

    users_group = Unicode(
        "dshare-users",
        config=True,
        help="""The group of every dshare user's OS account: the sudo rule lets the hub
        run the mediator as its members only. A user outside it is refused at spawn.""",
    )

    mediator_log_level = Unicode(
        "INFO",
        config=True,
        help="""--logging of the sudospawner mediator; part of the command the sudo rule
        allows, so change both together.""",
    )

    @default("sudospawner_path")
    def _default_sudospawner(self) -> str:
        return _beside_python("sudospawner")

    @default("write_home_path")
    def _default_write_home(self) -> str:
        return _beside_python("dshare-write-home")

    @default("account_helper_path")
    def _default_account_helper(self) -> str:
        return _beside_python("dshare-ensure-account")

    def _refused(self, what: str, e: Exception, reason: str) -> DShareSpawnError:
        self.log.error("%s for %s: %s", what, self.user.name, e)
        return DShareSpawnError(
            f"dshare could not {what} ({e}). Tell your administrator.",
            reason=reason,
            status_code=500,
        )

    def dshare_ensure_account(self) -> pwd.struct_passwd:
        name = self.system_username()
        pw = system_users.lookup(name)
        if pw is not None and system_users.in_group(name, self.users_group):
            return pw
        if not (self.create_system_users and self.account_helper_path):
            if pw is None:
                return self._pw()  # refuses, naming the account
            raise DShareSpawnError(
                f"The OS user {name} of your account is not in the group {self.users_group} "
                "that this hub may start servers as. Ask your administrator to add it.",
                reason="dshare_not_in_users_group",
                status_code=500,
            )
        try:
            run_sudo([self.account_helper_path, self.account_helper_config, self.user.name])
        except SudoRefused as e:
            raise self._refused(
                "prepare the OS account of your server", e, "dshare_os_user"
            ) from None
        return self._pw()

    def dshare_run_home_writer(self, pw: pwd.struct_passwd, request: str) -> str:
        try:
            return run_sudo(["-u", pw.pw_name, self.write_home_path], input=request)
        except SudoRefused as e:
            raise HomeWriterError(str(e)) from None

    def make_preexec_fn(self, name: str = "") -> Callable[[], None]:
        raise NotImplementedError("DShareSudoSpawner switches users through sudo only")

    async def do(self, action: str, **kwargs: Any) -> dict[str, Any]:
        """Send one action to sudospawner's mediator, run as the user through sudo."""
        kwargs["action"] = action
        argv = [
            "sudo",
            "-n",
            "-H",
            "-u",
            self.system_username(),
            self.sudospawner_path,
            f"--logging={self.mediator_log_level}",
        ]
        code, data, tail = await asyncio.to_thread(_mediate, argv, json.dumps(kwargs))
        if code:
            raise SudoRefused(
                f"the sudospawner mediator as {self.system_username()} failed with exit "
                f"code {code}: {' '.join(tail[-5:]).strip()}"
            )
        try:
            reply: dict[str, Any] = json.loads(data[data.index("{") : data.rindex("}") + 1])
        except ValueError:
            self.log.error("no JSON answer from sudospawner's mediator: %r", data)
            raise
        return reply

    async def start(self) -> Any:
        self.dshare_identity()
        await asyncio.to_thread(self.dshare_ensure_account)
        await self.dshare_prepare()
        self.port = random_port()
        try:
            reply = await self.do("spawn", args=self.get_args(), env=self.get_env())
        except SudoRefused as e:
            raise self._refused("start your server", e, "dshare_sudo") from None
        if not reply.get("ok", True) or "pid" not in reply:
            error = RuntimeError(str(reply.get("error")))
            raise self._refused("start your server", error, "dshare_sudo")
        self.pid = int(reply["pid"])
        return (self.ip or "127.0.0.1", self.port)

    async def _signal(self, sig: int) -> bool:
        if sig == 0:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                pass  # someone else's process: the user's, as it should be
            return True
        reply = await self.do("kill", pid=self.pid, signal=sig)
        return bool(reply["alive"])


def _mediate(argv: list[str], request: str) -> tuple[int, str, list[str]]:
    """Run the mediator: (exit code, its stdout, the last lines of its stderr).

    A spawned server keeps the mediator's stderr (its log) for as long as it runs, so that
    pipe is relayed to the hub's own stderr by a thread of its own and never waited for;
    only stdout (the answer) and the exit of sudo are."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    assert proc.stdin and proc.stdout and proc.stderr
    tail: list[str] = []
    relay = threading.Thread(target=_relay, args=(proc.stderr, tail), daemon=True)
    relay.start()
    try:
        proc.stdin.write(request)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # sudo refused before reading: its words are on stderr
    data = proc.stdout.read()
    code = proc.wait()
    if code:
        relay.join(5)  # a refusal: no server holds stderr, it ends now
    return code, data, tail


def _relay(stream: IO[str], tail: list[str]) -> None:
    for line in stream:
        del tail[:-20]
        tail.append(line)
        sys.stderr.write(line)
    stream.close()

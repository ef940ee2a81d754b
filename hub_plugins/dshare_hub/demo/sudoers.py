"""The embedded deployment's sudo rule: what the non-root hub may run, and as whom.

    HUB ALL=(%USERS) NOPASSWD: BIN/sudospawner --logging=INFO, BIN/dshare-write-home ""
    HUB ALL=(root) NOPASSWD: BIN/dshare-ensure-account DATA/secrets/accounts.json *

(BIN: the directory of the venv's console scripts; DATA: the data directory.)

The first line lets the hub start and signal single-user servers (sudospawner's mediator)
and write a home with the user's own permissions, as members of the dshare users group
only; no other command, no argument to the writer. The second runs the account helper as
root with its config fixed (it checks its own arguments, see spawner/account_helper.py).
The file is checked with `visudo -c` before it is put in place, and removed with the
deployment's accounts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..spawner.sudo import DShareSudoSpawner
from .layout import DemoLayout

MEDIATOR_LOG_LEVEL = DShareSudoSpawner.mediator_log_level.default_value


def venv_bin() -> Path:
    """The directory of this environment's console scripts (beside its Python)."""
    return Path(sys.executable).parent


def commands(layout: DemoLayout) -> dict[str, str]:
    bin_dir = venv_bin()
    return {
        "sudospawner": f"{bin_dir / 'sudospawner'} --logging={MEDIATOR_LOG_LEVEL}",
        "write_home": f'{bin_dir / "dshare-write-home"} ""',
        "account_helper": f"{bin_dir / 'dshare-ensure-account'} {layout.accounts_config} *",
    }


def render(layout: DemoLayout) -> str:
    cmds = commands(layout)
    hub, users = layout.hub_user, layout.users_group
    return (
        f"# dshare: the non-root hub of the embedded deployment in {layout.root}.\n"
        "# Written by `dshare demo` at every start; removed with the deployment's accounts.\n"
        # The hub runs with umask 077; users' servers get the usual 022, not the hub's.
        f"Defaults:{hub} !requiretty, env_reset, umask=0022, umask_override\n"
        f"{hub} ALL=(%{users}) NOPASSWD: {cmds['sudospawner']}, {cmds['write_home']}\n"
        f"{hub} ALL=(root) NOPASSWD: {cmds['account_helper']}\n"
    )


def install(layout: DemoLayout) -> None:
    """Write the rule, check it with visudo, then put it in place 0440 root's."""
    for path in commands(layout).values():
        program = Path(path.split()[0])
        if not os.access(program, os.X_OK):
            raise RuntimeError(
                f"{program} is missing: reinstall dshare into this environment (`make demo`)"
            )
    target = layout.sudoers_file
    if not target.parent.is_dir():
        raise RuntimeError(
            f"{target.parent} does not exist: install Debian's sudo package (`make demo` "
            "does it); the hub runs as a user of its own and starts servers through sudo"
        )
    # sudo skips files with a '.' in their name, so the unchecked draft is never read.
    draft = target.with_name(target.name + ".new")
    draft.unlink(missing_ok=True)
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o440)
    with os.fdopen(fd, "w") as f:
        f.write(render(layout))
    try:
        done = subprocess.run(
            ["visudo", "-c", "-q", "-f", str(draft)], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        draft.unlink()
        raise RuntimeError("visudo is missing: install Debian's sudo package") from None
    if done.returncode != 0:
        draft.unlink()
        raise RuntimeError(f"the hub's sudo rule does not parse: {done.stdout}{done.stderr}")
    os.replace(draft, target)


def remove(layout: DemoLayout) -> bool:
    try:
        layout.sudoers_file.unlink()
    except FileNotFoundError:
        return False
    return True

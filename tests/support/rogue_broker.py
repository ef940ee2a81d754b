"""What a broker gone rogue holds and sends, for tests that attack the executor as one: its
real hub token (read as root from the running broker's environment) and run bodies shaped
as a broker's, free to say whatever it likes."""

from __future__ import annotations

import json
import pwd
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPRequest


def broker_token(layout, org: str) -> str:
    """The hub-issued token of `org`'s running broker of THIS deployment (other test
    sessions may run theirs), read from its environment as root: what a rogue broker holds."""
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        env = dict(e.split(b"=", 1) for e in environ if b"=" in e)
        mine = str(layout.root).encode()
        if (
            b"dshare_hub.broker" in b" ".join(cmdline)
            and (mine in b" ".join(cmdline) or any(mine in v for v in env.values()))
            and env.get(b"JUPYTERHUB_SERVICE_NAME") == f"dshare-{org.lower()}".encode()
        ):
            return env[b"JUPYTERHUB_API_TOKEN"].decode()
    raise AssertionError(f"no running broker of {org}")


async def as_broker(layout, org: str, path: str, body: Any = None) -> tuple[int, dict]:
    """Call the executor's API as `org`'s broker (its real token)."""
    reply = await AsyncHTTPClient().fetch(
        HTTPRequest(
            layout.executor_url + "api/v1/" + path,
            method="GET" if body is None else "POST",
            body=None if body is None else json.dumps(body),
            headers={"Authorization": f"token {broker_token(layout, org)}"},
            request_timeout=60,
        ),
        raise_error=False,
    )
    try:
        return reply.code, json.loads(reply.body or b"{}")
    except ValueError:
        return reply.code, {"raw": (reply.body or b"").decode(errors="replace")}


def rogue_manifest(volumes: list[dict], mounts: list[dict], script: str, **container: Any) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "rogue-"},
        "spec": {
            "entrypoint": "dshare-dag",
            "templates": [
                {"name": "dshare-dag", "dag": {"tasks": [{"name": "j", "template": "j"}]}},
                {
                    "name": "j",
                    "container": {
                        "image": "x",
                        "command": ["/bin/sh", "-c"],
                        "args": [script],
                        "volumeMounts": [
                            {"name": "home", "mountPath": "/home/jovyan"},
                            *mounts,
                        ],
                        "workingDir": "/home/jovyan",
                        **container,
                    },
                },
            ],
            "volumes": [
                {"name": "home", "persistentVolumeClaim": {"claimName": "claim-x"}},
                *volumes,
            ],
        },
    }


def rogue_body(
    layout,
    run_id: str,
    manifest: dict,
    mounts: dict,
    user: str = "uio-scientist",
    account: pwd.struct_passwd | None = None,
) -> dict:
    """A run as UiO's broker submits one, for `user`, into `account` (the user's own unless
    the test says otherwise)."""
    account = account or pwd.getpwnam(layout.user_template.format(username=user))
    return {
        "run_id": run_id,
        "org": "UiO",
        "user": user,
        "home": account.pw_dir,
        "uid": account.pw_uid,
        "gid": account.pw_gid,
        "manifest": manifest,
        "home_claim": "claim-x",
        "mounts": mounts,
        "workspace": "",
    }

"""A running executor for the end-to-end tests: real HubAuth against a stand-in for the
hub's token check (its /hub/api/user route), real bubblewrap, setpriv and the owner's
LocalMaterializer."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jupyterhub.services.auth import HubAuth
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from dshare_hub.broker.materialize import LocalMaterializer
from dshare_hub.executor.app import Executor
from dshare_hub.executor.jail import Sandbox

from .conftest import DATA_GID, POOL, SCIENTIST_UID

PREFIX = "/services/dshare-executor/"
# token -> what the hub answers for it
TOKENS: dict[str, dict[str, Any]] = {
    "uis-token": {"kind": "service", "name": "dshare-uis"},
    "uio-token": {"kind": "service", "name": "dshare-uio"},
    "uib-token": {"kind": "service", "name": "dshare-uib"},
    "rogue-token": {"kind": "service", "name": "some-other-service"},
    "sam-token": {"kind": "user", "name": "sam", "groups": ["org:UiS"]},
}


# The hub's users and their groups, as GET /hub/api/users/<name> answers the executor.
HUB_USERS: dict[str, list[str]] = {"sam": ["org:UiS"], "olga": ["org:UiO"]}
# This world's OS accounts by name (the executor looks a run's user up here), filled by
# run_body with the home each test made.
ACCOUNTS: dict[str, pwd.struct_passwd] = {}


def account(name: str, uid: int, home: Path) -> None:
    ACCOUNTS[name] = pwd.struct_passwd((name, "x", uid, uid, "", str(home), "/usr/sbin/nologin"))


class HubUsersApi(web.RequestHandler):
    """GET /hub/api/users/<name> for the executor's own token: the user's groups."""

    def get(self, name: str) -> None:
        if self.request.headers.get("Authorization") != "token executor-token":
            self.set_status(403)
            self.finish({"status": 403, "message": "Missing or invalid credentials."})
            return
        if name not in HUB_USERS:
            self.set_status(404)
            self.finish({"status": 404, "message": f"No such user: {name}"})
            return
        self.finish({"kind": "user", "name": name, "groups": HUB_USERS[name]})


class HubUserApi(web.RequestHandler):
    """The hub's answer to GET /hub/api/user: the token's owner, or 403."""

    def get(self) -> None:
        token = self.request.headers.get("Authorization", "").removeprefix("token ")
        model = TOKENS.get(token)
        if model is None:
            self.set_status(403)
            self.finish({"status": 403, "message": "Missing or invalid credentials."})
            return
        self.finish({"scopes": [], **model})


@dataclass
class World:
    top: Path
    url: str
    app: Executor
    web_app: web.Application
    sandbox: Sandbox
    servers: list[HTTPServer] = field(default_factory=list)

    async def call(
        self, method: str, path: str, token: str | None = "uis-token", body: Any = None
    ) -> HTTPResponse:
        headers = {"Authorization": f"token {token}"} if token else {}
        request = HTTPRequest(
            self.url + path,
            method=method,
            headers=headers,
            body=None if body is None else json.dumps(body),
            allow_nonstandard_methods=True,
            request_timeout=60,
        )
        return await AsyncHTTPClient().fetch(request, raise_error=False)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def start_hub() -> tuple[HTTPServer, str]:
    sock, port = bind_unused_port()
    server = HTTPServer(
        web.Application([(r"/hub/api/user", HubUserApi), (r"/hub/api/users/([^/]+)", HubUsersApi)])
    )
    server.add_sockets([sock])
    return server, f"http://127.0.0.1:{port}/hub/api"


def start_executor(
    top: Path, sandbox: Sandbox, hub_url: str, roots: dict[str, str]
) -> tuple[Executor, web.Application, HTTPServer, str]:
    app = Executor(
        state_dir=str(top / "executor"),
        uid_range=(POOL.first, POOL.last),
        allowed_services={"dshare-uis": "UiS", "dshare-uio": "UiO", "dshare-uib": "UiB"},
        org_mount_roots=roots,
        org_storage_roots={org: [str(top / f"{org.lower()}-storage")] for org in roots},
        org_data_groups={org: DATA_GID for org in roots},
        base_url=PREFIX,
        system_username_template="{username}",
        job_max_processes=300,
        job_max_memory_bytes=3 * 1024**3,
        job_max_file_bytes=1024**3,
    )
    hub_auth = HubAuth(api_url=hub_url, api_token="executor-token", cache_max_age=0)
    web_app, _service = app.build(
        sandbox=sandbox, hub_auth=hub_auth, account_lookup=lambda name: ACCOUNTS[name]
    )
    sock, port = bind_unused_port()
    server = HTTPServer(web_app)
    server.add_sockets([sock])
    return app, web_app, server, f"http://127.0.0.1:{port}{PREFIX}api/v1"


def data_dir(top: Path, lines: int = 30) -> Path:
    """The owner's storage: root's, 0750, group DATA_GID, as an org's storage root is."""
    storage = top / "uio-storage"
    storage.mkdir(mode=0o711)
    words = storage / "words"
    words.mkdir()
    text = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(lines))
    (words / "x.txt").write_text(text)
    for path, mode in ((words, 0o750), (words / "x.txt", 0o640)):
        os.chown(path, 0, DATA_GID)
        os.chmod(path, mode)
    return words


def later(seconds: float = 3600) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def manifest(run_id: str, first: str, second: str, deadline: int = 120) -> dict[str, Any]:
    """The shape compiler.compile_workflow emits: a DAG, the home and a lease claim."""

    def job(name: str, command: str, lease: bool) -> dict[str, Any]:
        mounts = [{"name": "home", "mountPath": "/home/jovyan"}]
        if lease:
            mounts.append({"name": "lease-1", "mountPath": "/data/words", "readOnly": True})
        return {
            "name": name,
            "container": {
                "name": "main",
                "image": "quay.io/jupyter/scipy-notebook",
                "command": ["/bin/sh", "-c"],
                "args": [command],
                "workingDir": "/home/jovyan",
                "volumeMounts": mounts,
            },
        }

    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "words-", "annotations": {"dshare.io/run": run_id}},
        "spec": {
            "entrypoint": "dshare-dag",
            "activeDeadlineSeconds": deadline,
            "templates": [
                {
                    "name": "dshare-dag",
                    "dag": {
                        "tasks": [
                            {"name": "count", "template": "count"},
                            {"name": "total", "template": "total", "dependencies": ["count"]},
                        ]
                    },
                },
                job("count", first, True),
                job("total", second, False),
            ],
            "volumes": [
                {"name": "home", "persistentVolumeClaim": {"claimName": "claim-sam"}},
                {
                    "name": "lease-1",
                    "persistentVolumeClaim": {"claimName": "dshare-lease-1", "readOnly": True},
                },
            ],
        },
    }


def run_body(
    run_id: str, home: Path, handle: str, man: dict[str, Any], workspace: str, **over: Any
) -> dict[str, Any]:
    account("sam", SCIENTIST_UID, home)
    body = {
        "run_id": run_id,
        "org": "UiS",
        "user": "sam",
        "home": str(home),
        "uid": SCIENTIST_UID,
        "gid": SCIENTIST_UID,
        "manifest": man,
        "home_claim": "claim-sam",
        "mounts": {
            "dshare-lease-1": {
                "org": "UiO",
                "lease_id": "lease-1",
                "handle": handle,
                "expires_at": over.pop("expires_at", later()),
                "data_gid": DATA_GID,
            }
        },
        "workspace": workspace,
    }
    body.update(over)
    return body


@contextlib.asynccontextmanager
async def executor_world(top: Path, sandbox: Sandbox) -> AsyncIterator[tuple[World, Path]]:
    """The running executor of `top` beside UiO's broker directory (its mounts made as
    the broker makes them): (world, broker dir); stopped on leaving."""
    hub, hub_url = start_hub()
    broker_dir = top / "uio-broker"
    broker_dir.mkdir(mode=0o700)
    LocalMaterializer(broker_dir)  # creates <data_dir>/mounts as the broker would
    roots = {"UiO": str(broker_dir / "mounts")}
    app, web_app, server, url = start_executor(top, sandbox, hub_url, roots)
    w = World(top, url, app, web_app, sandbox, [hub, server])
    try:
        yield w, broker_dir
    finally:
        await web_app.settings["executor"].close()
        w.stop()

"""The parts test_spawn_on_cluster.py deploys around a real JupyterHub: the org broker's
HTTP double (with real mounts), a kubelet for kwok's pods, the hub process and its config.
What each one simulates is said in the test module's docstring."""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hubapi import HubApi
from kube_cluster import KubeCluster
from ports import free_port
from tornado import httpserver, netutil, web

from dshare_hub.k8s.materialize import KubeMaterializer

from .conftest import api_config
from .installed import HUB_NAMESPACE

ADMIN_TOKEN = "test-admin-" + os.urandom(12).hex()
USER, OTHER = "ulla", "sven"
ORG = "UiO"
OWNER_ORG = "UiS"  # owns the leased datasets; its broker materializes the interactive one
NAMESPACE_TEMPLATE = "dshare-u-{username}"
SINGLEUSER_LABEL = "component=singleuser-server"
TOKEN_DIR = "/var/run/secrets/dshare"

INTERACTIVE = {
    "lease": {
        "id": "L-pay",
        "asset_id": "uis-payments",
        "state": "active",
        "expires_at": "2031-01-01T00:00:00Z",
    },
    "dataset": {
        "id": "uis-payments",
        "name": "uis-payments",
        "owner_org": OWNER_ORG,
        "storage_type": "nfs",
        "policy": {"interactive": True},
        "skeleton": [{"path": "payments.csv", "size": 10}],
    },
}
WORKFLOW_ONLY = {
    "lease": {
        "id": "L-corpus",
        "asset_id": "uis-lorem-corpus",
        "state": "active",
        "expires_at": "2031-01-01T00:00:00Z",
    },
    "dataset": {
        "id": "uis-lorem-corpus",
        "name": "uis-lorem-corpus",
        "owner_org": OWNER_ORG,
        "storage_type": "nfs",
        "policy": {"interactive": False},
        "skeleton": [{"path": "texts/a.txt", "size": 5}, {"path": "texts/deep/", "size": 0}],
    },
}


# --- the org broker's HTTP API: a double, with real mounts ------------------------------


@dataclass
class BrokerDouble:
    """UiO's broker as the spawner calls it. Leases and datasets are canned; the session's
    claims are made and released on the real server by the real KubeMaterializer, with the
    owner org's broker token and RBAC."""

    cluster: KubeCluster
    leases: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # user -> items
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, token
    url: str = ""
    hub_api: str = ""  # the hub's REST API, to learn whose a token is
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _materializer: KubeMaterializer | None = None

    def start(self) -> None:
        started = threading.Event()
        failed: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # pragma: no cover - reported to start()
                failed.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._close())
            loop.close()

        self._thread = threading.Thread(target=run, name="broker-double", daemon=True)
        self._thread.start()
        started.wait(30)
        if failed:
            raise failed[0]

    async def _serve(self) -> None:
        from kubernetes_asyncio import client

        from dshare_hub.k8s.api import KubeApi

        token = self.cluster.token_for(HUB_NAMESPACE, f"dshare-{OWNER_ORG.lower()}")
        self._api_client = client.ApiClient(api_config(self.cluster, token))
        self._materializer = KubeMaterializer(
            KubeApi(self._api_client),
            namespace_template=NAMESPACE_TEMPLATE,
            hub_namespace=HUB_NAMESPACE,
            secret_namespace=f"dshare-secrets-{OWNER_ORG.lower()}",
            owner_org=OWNER_ORG,
        )
        app = web.Application([(r"/services/dshare-uio/api/v1/(.*)", _BrokerHandler, {"b": self})])
        sockets = netutil.bind_sockets(0, "127.0.0.1")
        self._server = httpserver.HTTPServer(app)
        self._server.add_sockets(sockets)
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/services/dshare-uio/"

    async def _close(self) -> None:
        self._server.stop()
        await self._api_client.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)


class _BrokerHandler(web.RequestHandler):
    def initialize(self, b: BrokerDouble) -> None:
        self.b = b

    async def get(self, path: str) -> None:
        user = await asyncio.to_thread(_whose_token, self.b.hub_api, self.request.headers)
        self.b.calls.append(("GET", path, user))
        items = self.b.leases.get(user, [])
        if path == "leases" and self.get_argument("scope") == "mine":
            self.finish({"items": [item["lease"] for item in items]})
            return
        for item in items:
            if path == "datasets/" + item["dataset"]["id"]:
                self.finish(item["dataset"])
                return
        self.set_status(404)
        self.finish({"code": "NOT_FOUND", "message": path})

    async def post(self, path: str) -> None:
        user = await asyncio.to_thread(_whose_token, self.b.hub_api, self.request.headers)
        self.b.calls.append(("POST", path, user))
        body = json.loads(self.request.body or b"{}")
        assert self.b._materializer is not None
        if path == "runs":
            run_id = f"session-{user}"
            mounts = {}
            for item in self.b.leases.get(user, []):
                lease = item["lease"]
                if lease["id"] in body["lease_ids"]:
                    mounts[lease["id"]] = await self.b._materializer.materialize(
                        asset=item["dataset"],
                        details={"server": "nfs.uis.example", "path": "/export/payments"},
                        lease=lease,
                        run_id=run_id,
                        user=user,
                    )
            self.set_status(201)
            self.finish({"run": {"id": run_id, "name": body["name"]}, "mounts": mounts})
        elif path.startswith("runs/") and path.endswith("/finish"):
            released = await self.b._materializer.release(run_id=path.split("/")[1])
            self.finish({"id": path.split("/")[1], "state": "finished", "released": released})
        else:
            self.set_status(404)
            self.finish({"code": "NOT_FOUND", "message": path})


def _whose_token(hub_api: str, headers: Any) -> str:
    """The user a token belongs to, asked of the real hub (what HubAuth does)."""
    token = (headers.get("Authorization") or "").removeprefix("token ")
    request = urllib.request.Request(hub_api + "user", headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(json.loads(response.read()).get("name") or "")
    except OSError:  # refused, or the hub is shutting down
        return ""


# --- a kubelet for kwok's pods -------------------------------------------------------------


@dataclass
class Kubelet:
    """Starts the notebook container's process for every Running single-user pod, and
    stops it once the pod is gone from the API server."""

    cluster: KubeCluster
    homes: dict[str, Path]  # "<namespace>/<claim>" -> the home volume's directory
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="kubelet", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self._sync()
            except Exception as exc:  # the test reads them; the loop goes on
                self.errors.append(repr(exc))

    def _sync(self) -> None:
        listed = self.cluster.get(f"/api/v1/pods?labelSelector={SINGLEUSER_LABEL}") or {}
        live = {}
        for pod in listed.get("items") or []:
            meta, status = pod["metadata"], pod.get("status") or {}
            key = f"{meta['namespace']}/{meta['name']}/{meta['uid']}"
            if meta.get("deletionTimestamp") is None:
                live[key] = pod
            if (
                key not in self.procs
                and status.get("phase") == "Running"
                and status.get("podIP")
                and meta.get("deletionTimestamp") is None
            ):
                self.procs[key] = self._run(pod)
        for key in [k for k in self.procs if k not in live]:
            _end(self.procs[key])

    def _run(self, pod: dict[str, Any]) -> subprocess.Popen[bytes]:
        spec, ip = pod["spec"], pod["status"]["podIP"]
        (container,) = [c for c in spec["containers"] if c["name"] == "notebook"]
        env = {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}
        env["JUPYTERHUB_SERVICE_URL"] = env["JUPYTERHUB_SERVICE_URL"].replace("0.0.0.0", ip)
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in spec.get("volumes") or []
            if "persistentVolumeClaim" in v
        }
        home_mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/home/jovyan")
        home = self.homes[f"{pod['metadata']['namespace']}/{claims[home_mount['name']]}"]
        ctx = {**(spec.get("securityContext") or {}), **(container.get("securityContext") or {})}
        uid, gid = int(ctx["runAsUser"]), int(ctx.get("runAsGroup") or ctx.get("fsGroup") or 0)
        os.chown(home, uid, gid)  # what fsGroup and a fresh volume give the container
        bindir = Path(sys.executable).parent
        env |= {
            "HOME": str(home),
            "PATH": f"{bindir}:/usr/bin:/bin",
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        }
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        argv[0] = str(bindir / argv[0])
        log = (self.logs / f"singleuser-{pod['metadata']['name']}.log").open("ab")
        try:
            return subprocess.Popen(
                argv,
                env=env,
                cwd=home,
                user=uid,
                group=gid,
                extra_groups=[],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for proc in self.procs.values():
            _end(proc)


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


# --- the hub ---------------------------------------------------------------------------------


def _proxy_command() -> str:
    from dshare_hub.demo.deployment import proxy_command

    return os.environ.get("DSHARE_PROXY_COMMAND") or proxy_command()


HUB_CONFIG = """\
import json
from dshare_hub.auth.roles import hub_roles

s = json.loads({settings!r})
c = get_config()  # noqa: F821
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = s["port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = s["hub_port"]
c.JupyterHub.hub_connect_url = "http://127.0.0.1:%d" % s["hub_port"]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:%d" % s["proxy_api_port"]
c.ConfigurableHTTPProxy.command = [s["proxy"]]
c.JupyterHub.db_url = "sqlite:///" + s["root"] + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = s["root"] + "/cookie_secret"
c.JupyterHub.authenticator_class = "null"
c.JupyterHub.services = [{{"name": "test-admin", "api_token": s["admin_token"]}}]
c.JupyterHub.load_roles = [{{"name": "admin", "services": ["test-admin"]}}]
# dshare's roles and server token scopes, as z2jh-values/values.yaml's extraConfig
_dshare = hub_roles(["UiS", "UiO", "UiB"])
c.JupyterHub.custom_scopes = _dshare["custom_scopes"]
c.JupyterHub.load_roles.extend(_dshare["load_roles"])
c.Spawner.server_token_scopes = _dshare["server_token_scopes"]

c.JupyterHub.spawner_class = "dshare_hub.spawner.kube.DShareKubeSpawner"
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 60
# As z2jh-values/values.yaml (KubeSpawner and DShareKubeSpawner sections) and the chart
# set them, save the image and the home volume's storage class.
c.KubeSpawner.enable_user_namespaces = True
c.KubeSpawner.user_namespace_template = s["namespace_template"]
c.KubeSpawner.user_namespace_labels = {{
    "dshare.io/user-namespace": "true",
    "hub.jupyter.org/network-access-hub": "true",
}}
c.KubeSpawner.automount_service_account_token = False
c.KubeSpawner.extra_pod_config = {{"automountServiceAccountToken": False}}
c.KubeSpawner.image = "dshare/singleuser:0.1.0"
c.KubeSpawner.cmd = ["jupyterhub-singleuser"]
c.KubeSpawner.uid = 1000
c.KubeSpawner.fs_gid = 100
c.KubeSpawner.extra_labels = {{"app.kubernetes.io/part-of": "dshare"}}
c.KubeSpawner.storage_pvc_ensure = True
c.KubeSpawner.pvc_name_template = "claim-{{username}}{{servername}}"
c.KubeSpawner.storage_capacity = "1Gi"
c.KubeSpawner.storage_access_modes = ["ReadWriteOnce"]
c.KubeSpawner.volumes = [
    {{"name": "volume-{{username}}{{servername}}",
      "persistentVolumeClaim": {{"claimName": "{{pvc_name}}"}}}}
]
c.KubeSpawner.volume_mounts = [
    {{"mountPath": "/home/jovyan", "name": "volume-{{username}}{{servername}}"}}
]
c.DShareKubeSpawner.broker_url_template = s["broker_url"]
c.DShareKubeSpawner.token_expiration_seconds = 3600
"""


@dataclass
class Hub(HubApi):
    root: Path
    url: str = ""
    admin_token: str = ADMIN_TOKEN
    transcript: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    def start(self, cluster: KubeCluster, broker_url: str) -> None:
        assert cluster.pki is not None
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        kubeconfig = self.root / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "hub",
                    "clusters": [
                        {
                            "name": "test",
                            "cluster": {
                                "server": cluster.url,
                                "certificate-authority": str(cluster.pki.ca),
                            },
                        }
                    ],
                    "users": [
                        {"name": "hub", "user": {"token": cluster.token_for(HUB_NAMESPACE, "hub")}}
                    ],
                    "contexts": [{"name": "hub", "context": {"cluster": "test", "user": "hub"}}],
                }
            )
        )
        kubeconfig.chmod(0o600)
        settings = {
            "port": port,
            "hub_port": free_port(),
            "proxy_api_port": free_port(),
            "proxy": _proxy_command(),
            "root": str(self.root),
            "admin_token": ADMIN_TOKEN,
            "namespace_template": NAMESPACE_TEMPLATE,
            "broker_url": broker_url,
        }
        config = self.root / "jupyterhub_config.py"
        config.write_text(HUB_CONFIG.format(settings=json.dumps(settings)))
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "CONFIGPROXY_AUTH_TOKEN": os.urandom(16).hex(),
        }
        env.pop("KUBERNETES_SERVICE_HOST", None)  # not in a cluster: KubeSpawner reads KUBECONFIG
        jupyterhub = Path(sys.executable).parent / "jupyterhub"
        log = (self.root / "jupyterhub.log").open("ab")
        self.process = subprocess.Popen(
            [str(jupyterhub), "-f", str(config)],
            cwd=self.root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        wait_until(lambda: self._up(), "the hub and its proxy", 60)

    def _up(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError("jupyterhub exited:\n" + self.log_tail())
        with contextlib.suppress(OSError):
            return self.call("GET", "/hub/api/", None, timeout=5).status == 200
        return False

    def log_tail(self) -> str:
        return (self.root / "jupyterhub.log").read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        if self.process is not None:
            _end(self.process)


def wait_until(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

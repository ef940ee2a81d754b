"""A real Kubernetes control plane on loopback, for the suites that test dshare against one.

etcd, kube-apiserver (RBAC and Node authorization, the default admission plugins plus
NodeRestriction, ValidatingAdmissionPolicy), kube-controller-manager (PV/PVC binding,
service accounts, garbage collection), kube-scheduler, kwok for one simulated node and the
pods on it, and, when asked, the Argo Workflows controller with its CRDs. The binaries come
from scripts/k8s-tools.sh (linked in .k8s-bin/). Every address is on 127.0.0.0/8: the
node is 127.0.0.1, pods get 127.1.x.x, Services 127.2.x.x, so nothing a test does can
reach another host. `stop()` ends every process it started, also when `start()` failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kube_pki import Pki, make_pki
from ports import free_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("DSHARE_K8S_BIN", REPO / ".k8s-bin"))
STAGES = Path(__file__).with_name("kwok-stages.yaml")
NODE = "kwok-node-0"
POD_CIDR = "127.1.0.0/16"
SERVICE_CIDR = "127.2.0.0/16"
ARGO_NAMESPACE = "argo"
POD_LOG_LINE = "dshare: the log kwok serves for every container"
TOOLS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "workflow-controller",
)


class ClusterError(RuntimeError):
    pass


def missing_tools(argo: bool = True) -> list[str]:
    wanted = TOOLS if argo else tuple(t for t in TOOLS if t != "workflow-controller")
    return [t for t in wanted if not (BIN / t).exists()]


@dataclass
class KubeCluster:
    root: Path
    logs: Path | None = None
    argo: bool = True
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.etcd_port = free_port()
        self.port = free_port()
        self.kwok_port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.log_dir = self.logs or self.root / "logs"
        self.pki: Pki | None = None

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> KubeCluster:
        missing = missing_tools(self.argo)
        if missing:
            raise ClusterError(
                f"control-plane binaries missing from {BIN}: {', '.join(missing)}; "
                "run `bash scripts/k8s-tools.sh` (make test does)"
            )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        begin = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.timings["ready"] = time.monotonic() - begin
        return self

    def _start(self) -> None:
        self.pki = pki = make_pki(
            self.root / "pki",
            self.url,
            {
                "admin": ("dshare-test-admin", "system:masters"),
                "controller-manager": ("system:kube-controller-manager", None),
                "scheduler": ("system:kube-scheduler", None),
                "kwok": ("dshare-test-kwok", "system:masters"),
                "argo": ("dshare-test-argo", "system:masters"),
            },
        )
        self._spawn(
            "etcd",
            "--name=test",
            f"--data-dir={self.root / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{free_port()}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        )
        self._spawn(
            "kube-apiserver",
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--tls-cert-file={pki.cert('apiserver')}",
            f"--tls-private-key-file={pki.key('apiserver')}",
            f"--client-ca-file={pki.ca}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--api-audiences=https://kubernetes.default.svc",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # The built-in reconciler publishes the advertise address as an Endpoint,
            # which may not be loopback; nothing here routes to it anyway.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=false",
            "--profiling=false",
            f"--kubelet-certificate-authority={pki.ca}",
            f"--kubelet-client-certificate={pki.cert('admin')}",
            f"--kubelet-client-key={pki.key('admin')}",
            "--kubelet-preferred-address-types=InternalIP",
        )
        self._wait_ready("kube-apiserver", "/readyz", 90)
        self._spawn(
            "kube-controller-manager",
            f"--kubeconfig={pki.kubeconfig('controller-manager')}",
            f"--authentication-kubeconfig={pki.kubeconfig('controller-manager')}",
            f"--authorization-kubeconfig={pki.kubeconfig('controller-manager')}",
            "--use-service-account-credentials",
            f"--service-account-private-key-file={pki.sa_key}",
            f"--root-ca-file={pki.ca}",
            "--controllers=*,-node-ipam-controller",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
        )
        self._spawn(
            "kube-scheduler",
            f"--kubeconfig={pki.kubeconfig('scheduler')}",
            f"--authentication-kubeconfig={pki.kubeconfig('scheduler')}",
            f"--authorization-kubeconfig={pki.kubeconfig('scheduler')}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
        )
        # Every container's log, as the API server proxies pods/log to kwok's kubelet API.
        # kwok reads it as a kubelet does: the CRI log format (time, stream, tag, line).
        (self.root / "container.log").write_text(
            f"2026-01-01T00:00:00.000000000Z stdout F {POD_LOG_LINE}\n"
        )
        logs_config = self.root / "kwok-logs.yaml"
        logs_config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kwok.x-k8s.io/v1alpha1",
                    "kind": "ClusterLogs",
                    "metadata": {"name": "every-container"},
                    "spec": {
                        "selector": {},
                        "logs": [{"logsFile": str(self.root / "container.log"), "follow": False}],
                    },
                }
            )
        )
        self._spawn(
            "kwok",
            f"--kubeconfig={pki.kubeconfig('kwok')}",
            f"--config={STAGES}",
            f"--config={logs_config}",
            f"--tls-cert-file={pki.cert('apiserver')}",
            f"--tls-private-key-file={pki.key('apiserver')}",
            f"--manage-single-node={NODE}",
            "--node-ip=127.0.0.1",
            f"--node-name={NODE}",
            f"--node-port={self.kwok_port}",
            f"--server-address=127.0.0.1:{self.kwok_port}",
            f"--cidr={POD_CIDR}",
            # kwok renews the node's Lease, so the node-lifecycle controller keeps it Ready
            # and lifts the not-ready taint every new node starts with.
            "--node-lease-duration-seconds=40",
        )
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": NODE,
                    "labels": {"kubernetes.io/hostname": NODE, "type": "kwok"},
                },
            }
        )
        self._wait_for(lambda: self._node_ready(), 60, "the kwok node to be Ready")
        self._wait_for(
            lambda: self.get("/api/v1/namespaces/default/serviceaccounts/default") is not None,
            60,
            "the default ServiceAccount (controller-manager)",
        )
        if self.argo:
            self._start_argo()

    def _start_argo(self) -> None:
        # Argo's full CRDs are megabytes of YAML: libyaml's loader, once per file.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        crds = [
            yaml.load(path.read_text(), Loader=loader)
            for path in sorted((BIN / "argo-crds").glob("argoproj.io_*.yaml"))
        ]
        for crd in crds:
            self.apply(crd)
        for crd in crds:
            name = crd["metadata"]["name"]
            self._wait_for(
                lambda name=name: self._crd_established(name), 60, f"CRD {name} established"
            )
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ARGO_NAMESPACE}})
        # The controller waits for its ConfigMap before it starts its workers; Argo's
        # defaults are what dshare runs with.
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "workflow-controller-configmap", "namespace": ARGO_NAMESPACE},
                "data": {},
            }
        )
        assert self.pki is not None
        self._spawn(
            "workflow-controller",
            f"--kubeconfig={self.pki.kubeconfig('argo')}",
            f"--namespace={ARGO_NAMESPACE}",
            "--executor-image=quay.io/argoproj/argoexec:v4.0.7",
            "--loglevel=info",
            env={"LEADER_ELECTION_DISABLE": "true", "ARGO_METRICS_PORT": str(free_port())},
        )

    def peak_memory_mib(self) -> dict[str, float]:
        """Each running component's peak resident memory (VmHWM), for the cost report."""
        peaks = {}
        for name, proc in self.procs.items():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peaks[name] = round(int(line.split()[1]) / 1024, 1)
        return peaks

    def stop(self) -> None:
        if self.procs:
            # What each piece cost, kept beside its logs (README's figures come from here).
            report = {"seconds": self.timings, "peak_rss_mib": self.peak_memory_mib()}
            with contextlib.suppress(OSError):
                (self.log_dir / "cost.json").write_text(json.dumps(report, indent=2))
        for proc in reversed(list(self.procs.values())):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            self.timings[f"{name}_exit"] = proc.returncode or 0
        self.procs.clear()

    def __enter__(self) -> KubeCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- processes ------------------------------------------------------------------

    def _spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [str(BIN / name), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        log.close()

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise ClusterError(f"{name} exited with {proc.returncode}:\n{tail}")

    def wait_for(self, check: Any, timeout: float, what: str) -> None:
        """Poll `check` until it holds; fails naming `what` (and any component that died)."""
        self._wait_for(check, timeout, what)

    def _wait_for(self, check: Any, timeout: float, what: str) -> None:
        begin = time.monotonic()
        deadline = begin + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(OSError, urllib.error.URLError, ClusterError):
                if check():
                    self.timings[f"wait: {what}"] = round(time.monotonic() - begin, 2)
                    return
            time.sleep(0.2)
        raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}")

    def _wait_ready(self, name: str, path: str, timeout: float) -> None:
        begin = time.monotonic()
        self._wait_for(lambda: self.request("GET", path)[0] == 200, timeout, f"{name} {path}")
        self.timings[name] = time.monotonic() - begin

    # --- admin API calls (as system:masters) ----------------------------------------

    def _ssl(self, admin: bool = True) -> ssl.SSLContext:
        assert self.pki is not None
        ctx = ssl.create_default_context(cafile=str(self.pki.ca))
        if admin:
            ctx.load_cert_chain(self.pki.cert("admin"), self.pki.key("admin"))
        return ctx

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        token: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """One call as cluster admin, or as the holder of `token`."""
        data = json.dumps(body).encode() if body is not None else None
        # A PATCH body is a JSON merge patch (RFC 7386), as kubectl patch --type merge sends.
        kind = "application/merge-patch+json" if method == "PATCH" else "application/json"
        headers = {"Content-Type": kind, "Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, context=self._ssl(token is None), timeout=30) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            status = exc.code
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"raw": raw.decode(errors="replace")}
        return status, parsed if isinstance(parsed, dict) else {"items": parsed}

    def get(self, path: str) -> dict[str, Any] | None:
        status, body = self.request("GET", path)
        if status == 404:
            return None
        if status != 200:
            raise ClusterError(f"GET {path}: HTTP {status} {body.get('message')}")
        return body

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create `obj` as cluster admin (server-side apply, so a second call is fine)."""
        path = resource_path(obj)
        name = obj["metadata"]["name"]
        status, body = self._apply(path, name, obj)
        if status not in (200, 201):
            raise ClusterError(f"apply {obj['kind']} {name}: HTTP {status} {body.get('message')}")
        return body

    def _apply(self, path: str, name: str, obj: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        data = json.dumps(obj).encode()
        req = urllib.request.Request(
            f"{self.url}{path}/{name}?fieldManager=dshare-test&force=true",
            data=data,
            method="PATCH",
            headers={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, context=self._ssl(), timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def _node_ready(self) -> bool:
        node = self.get(f"/api/v1/nodes/{NODE}") or {}
        conditions = (node.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _crd_established(self, name: str) -> bool:
        crd = self.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}") or {}
        conditions = (crd.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    def token_for(self, namespace: str, service_account: str, seconds: int = 3600) -> str:
        """A bound token for a ServiceAccount, as its pod would get projected."""
        status, body = self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": seconds},
            },
        )
        if status != 201:
            raise ClusterError(f"token for {namespace}/{service_account}: HTTP {status} {body}")
        return str(body["status"]["token"])


_CORE = {
    "Namespace": ("namespaces", False),
    "Node": ("nodes", False),
    "PersistentVolume": ("persistentvolumes", False),
    "ServiceAccount": ("serviceaccounts", True),
    "Secret": ("secrets", True),
    "ConfigMap": ("configmaps", True),
    "Service": ("services", True),
    "PersistentVolumeClaim": ("persistentvolumeclaims", True),
    "Pod": ("pods", True),
}


def resource_path(obj: dict[str, Any]) -> str:
    """The collection URL of `obj` (the kinds dshare's tests apply)."""
    kind = obj["kind"]
    api_version = obj["apiVersion"]
    namespace = obj["metadata"].get("namespace")
    if kind in _CORE:
        plural, namespaced = _CORE[kind]
        base = "/api/v1"
    else:
        plural = kind[:-1].lower() + "ies" if kind.endswith("y") else kind.lower() + "s"
        namespaced = namespace is not None
        base = f"/apis/{api_version}"
    if namespaced:
        return f"{base}/namespaces/{namespace}/{plural}"
    return f"{base}/{plural}"

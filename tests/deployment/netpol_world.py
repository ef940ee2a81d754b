"""A small cluster on paper for np-guard's NetworkPolicy analyzer (k8snetpolicy).

No CNI runs here, so nothing enforces a NetworkPolicy: instead the analyzer computes which
connections the policies allow between the pods of a manifest directory. This module
writes that directory: the policies dshare ships (z2jh-values/manifests, as an operator
applies them) and pods labelled as the code that makes them labels them: the user's server
from DShareKubeSpawner's own pod manifest, job pods from the workflow compiler's own
output, the brokers from their rendered Deployments. Then it runs the analyzer and parses
its JSON into `Reach` (who reaches whom, on which ports), plus its exposure findings
(what a policy would admit from pods or addresses that are not in the directory).
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import json
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from kubernetes_asyncio.config import kube_config

from dshare_hub.k8s import objects
from dshare_hub.spawner.kube import DShareKubeSpawner
from dshare_server.workflow import CompileContext, compile_workflow, parse

from .conftest import ROOT, SCHEMAS, Z2JH, helm_merge, load_all, load_yaml

ANALYZER = ROOT / ".k8s-bin" / "k8snetpolicy"
HUB_NS = "dshare"
EVERYWHERE = "0.0.0.0-255.255.255.255"
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

# The chart's own pods, labelled as zero-to-jupyterhub 4.4.0 labels them; the chart's own
# NetworkPolicies for them are not rendered here (no chart), so the analysis sees the hub
# and the proxy as accepting anything: what it says about them is decided on the sending
# side, by dshare's policies.
HUB_LABELS = {
    "app": "jupyterhub",
    "component": "hub",
    "release": "dshare",
    "hub.jupyter.org/network-access-proxy-api": "true",
    "hub.jupyter.org/network-access-proxy-http": "true",
    "hub.jupyter.org/network-access-singleuser": "true",
}
PROXY_LABELS = {
    "app": "jupyterhub",
    "component": "proxy",
    "release": "dshare",
    "hub.jupyter.org/network-access-hub": "true",
    "hub.jupyter.org/network-access-singleuser": "true",
}
DNS_LABELS = {"k8s-app": "kube-dns"}


# --- the analyzer's answer ------------------------------------------------------------------

PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True)
class Conn:
    """A connection set as the analyzer prints it ("TCP 53,443,UDP 53", "All Connections")."""

    ports: Mapping[str, tuple[tuple[int, int], ...]]

    @classmethod
    def parse(cls, text: str) -> Conn:
        text = text.strip()
        if text == "All Connections":
            return cls({p: ((1, 65535),) for p in PROTOCOLS})
        if text == "No Connections":
            return cls({})
        out: dict[str, list[tuple[int, int]]] = {}
        proto = ""
        for token in text.split(","):
            token = token.strip()
            head, _, rest = token.partition(" ")
            if head in PROTOCOLS:
                proto, token = head, rest.strip()
                out.setdefault(proto, [])
                if not token:  # a protocol alone: all of its ports
                    out[proto].append((1, 65535))
                    continue
            if not proto:
                raise ValueError(f"cannot read the analyzer's connection set {text!r}")
            lo, _, hi = token.partition("-")
            out[proto].append((int(lo), int(hi or lo)))
        return cls({p: tuple(sorted(r)) for p, r in out.items()})

    def allows(self, proto: str, port: int) -> bool:
        return any(lo <= port <= hi for lo, hi in self.ports.get(proto, ()))

    def port_set(self) -> set[tuple[str, int]]:
        """Every (protocol, port) allowed; only for small sets (never All Connections)."""
        out = set()
        for proto, ranges in self.ports.items():
            for lo, hi in ranges:
                assert hi - lo < 1024, f"{proto} {lo}-{hi} is not a small set"
                out.update((proto, p) for p in range(lo, hi + 1))
        return out


def ip_ranges(peer: str) -> list[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]] | None:
    """An external peer ("10.0.0.0-10.255.255.255,192.168.0.0-...") as ranges, else None."""
    ranges = []
    for part in peer.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            ranges.append((ipaddress.IPv4Address(lo), ipaddress.IPv4Address(hi if sep else lo)))
        except ValueError:
            return None
    return ranges


def pod_peer(namespace: str, name: str, kind: str = "Pod") -> str:
    return f"{namespace}/{name}[{kind}]"


@dataclass
class Reach:
    """The analyzer's JSON: allowed connections and the exposure it found."""

    conns: list[tuple[str, str, Conn]] = field(default_factory=list)
    egress_exposure: list[tuple[str, str, Conn]] = field(default_factory=list)
    ingress_exposure: list[tuple[str, str, Conn]] = field(default_factory=list)

    @classmethod
    def parse(cls, doc: Any) -> Reach:
        def rows(items: Iterable[Mapping[str, str]]) -> list[tuple[str, str, Conn]]:
            return [(i["src"], i["dst"], Conn.parse(i["conn"])) for i in items or ()]

        exposure = doc.get("exposure_results") or {}
        return cls(
            rows(doc.get("connlist_results")),
            rows(exposure.get("egress_exposure")),
            rows(exposure.get("ingress_exposure")),
        )

    def from_(self, peer: str) -> dict[str, Conn]:
        """Where `peer` may connect to (pods in the directory and addresses)."""
        return {dst: conn for src, dst, conn in self.conns if src == peer}

    def to(self, peer: str) -> dict[str, Conn]:
        """Who may connect to `peer`."""
        return {src: conn for src, dst, conn in self.conns if dst == peer}

    def reaches_address(self, peer: str, address: str, proto: str, port: int) -> bool:
        """Whether `peer` may connect to an address outside the cluster's pods."""
        ip = ipaddress.IPv4Address(address)
        for dst, conn in self.from_(peer).items():
            ranges = ip_ranges(dst) or []
            if any(lo <= ip <= hi for lo, hi in ranges) and conn.allows(proto, port):
                return True
        return False

    def everything_of(self, peer: str) -> list[str]:
        """Every finding that names `peer` at either end, as readable lines."""
        found = []
        for kind, items in (
            ("conn", self.conns),
            ("egress exposure", self.egress_exposure),
            ("ingress exposure", self.ingress_exposure),
        ):
            found += [f"{kind}: {s} => {d} : {c}" for s, d, c in items if peer in (s, d)]
        return found


def analyze(directory: Path) -> Reach:
    """Run k8snetpolicy list over `directory`; its JSON output, parsed."""
    if not ANALYZER.exists():
        raise AssertionError(
            f"{ANALYZER} is missing: run `bash scripts/k8s-tools.sh` (make test does) to "
            "build np-guard's netpol-analyzer"
        )
    out = directory.parent / f"{directory.name}-connlist.json"
    # --exposure adds what a policy admits from pods and addresses not in the directory
    command = ["list", "--dirpath", str(directory), "--exposure", "-o", "json", "--file", str(out)]
    proc = subprocess.run(
        [str(ANALYZER), *command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # It exits 0 with an empty answer on some errors (with --fail, on any skipped object),
    # so its log is read too; test_the_analyzer_sees_a_planted_hole checks it can answer.
    assert proc.returncode == 0, f"k8snetpolicy failed ({proc.returncode}): {proc.stderr}"
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert not errors, f"k8snetpolicy reported errors: {errors}"
    return Reach.parse(json.loads(out.read_text(encoding="utf-8")))


# --- the pods ---------------------------------------------------------------------------------


def pod(namespace: str, name: str, labels: Mapping[str, str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {"containers": [{"name": "main", "image": "x"}], **spec},
    }


def namespace(name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    # The API server adds kubernetes.io/metadata.name to every namespace by itself.
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {**labels, "kubernetes.io/metadata.name": name}},
    }


def chart_values() -> dict[str, Any]:
    """dshare's values over the chart's defaults, as helm merges them."""
    defaults = load_yaml(SCHEMAS / "z2jh-4.4.0-values.yaml")
    return dict(helm_merge(defaults, load_yaml(Z2JH / "values.yaml")))


@contextmanager
def _no_cluster(tmp: Path) -> Iterator[None]:
    """KubeSpawner loads a kubeconfig when it is made; one that points nowhere will do,
    since building the pod manifest calls no API."""
    config = tmp / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: d\n"
        "clusters: [{name: d, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: d, context: {cluster: d, user: d}}]\n"
        "users: [{name: d, user: {token: not-a-real-token}}]\n"
    )
    saved = kube_config.KUBE_CONFIG_DEFAULT_LOCATION
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(config)
    try:
        yield
    finally:
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = saved


@dataclass(frozen=True)
class User:
    name: str
    org: str
    interactive: bool  # holds an interactive lease, mounted in the server


def server_objects(user: User, tmp: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(namespace, server pod) as DShareKubeSpawner makes them with dshare's values."""
    values = chart_values()
    config = values["hub"]["config"]["KubeSpawner"]
    hub_user = SimpleNamespace(
        name=user.name,
        id=1,
        url=f"/user/{user.name}/",
        escaped_name=user.name,
        groups=[SimpleNamespace(name=f"org:{user.org}"), SimpleNamespace(name="role:scientist")],
    )
    hub = SimpleNamespace(
        url="http://hub:8081/hub/",
        base_url="/hub/",
        api_url="http://hub:8081/hub/api",
        public_host="",
    )

    async def build() -> tuple[dict[str, Any], dict[str, Any]]:
        spawner = DShareKubeSpawner(
            _mock=True,
            user=hub_user,
            hub=hub,
            enable_user_namespaces=config["enable_user_namespaces"],
            user_namespace_template=config["user_namespace_template"],
            user_namespace_labels=config["user_namespace_labels"],
            extra_labels=values["singleuser"]["extraLabels"],
            image="dshare/singleuser:0.1.0",
            uid=1000,
            cmd=["jupyterhub-singleuser"],
        )
        identity = spawner.dshare_identity()
        # as dshare_prepare does before KubeSpawner's _ensure_namespace, which makes the
        # namespace with these labels expanded (tests/spawner checks that it does)
        spawner.user_namespace_labels = spawner.dshare_namespace_labels(identity)
        ns_labels = spawner._expand_all(spawner.user_namespace_labels)
        # what dshare_prepare makes of the broker's answer: an interactive lease mounted
        # read-only (the pod is then labelled data-access=interactive), another a skeleton
        mounts = [objects.InteractiveMount("payments", "dshare-l1")] if user.interactive else []
        spawner._dshare_parts = objects.make_pod_parts(
            user=identity.user,
            org=identity.org,
            datasets_path=spawner.datasets_path,
            token_volume=objects.make_projected_token_volume(
                audience="dshare", expiration_seconds=3600
            ),
            service_account_name=spawner.dshare_object_name,
            interactive=mounts,
            skeletons={"corpus": ["a.txt"]},
            skeleton_image="dshare/singleuser:0.1.0",
            uid=1000,
        )
        manifest = spawner.api.api_client.sanitize_for_serialization(
            await spawner.get_pod_manifest()
        )
        manifest["metadata"]["namespace"] = spawner.namespace
        return namespace(spawner.namespace, ns_labels), manifest

    with _no_cluster(tmp):
        return asyncio.run(build())


LEASE = "abcdef123456"
WORKFLOW = f"""
name: count
jobs:
- command: python count.py
  volumes: [{{id: {LEASE}, name: corpus, path: /home/jovyan/corpus}}]
- python sum.py
dags: [1 >> 2]
"""


def job_pods(user: str, ns: str, run_id: str) -> dict[str, dict[str, Any]]:
    """The pods Argo makes from the compiled workflow of one run: its first job mounts the
    run's data claim. Labels: the workflow's podMetadata, then the template's, then the two
    Argo adds; volumes as the template mounts them."""
    spec = parse(WORKFLOW, leases=None)
    ctx = CompileContext(
        user=user,
        run_id=run_id,
        image="dshare/singleuser:0.1.0",
        home_claim=f"claim-{user}",
        service_account=f"dshare-{user}",
        claims={LEASE: f"dshare-{run_id}-corpus"},
        lease_expiry={LEASE: NOW + timedelta(hours=2)},
        namespace=ns,
        now=NOW,
    )
    wf = compile_workflow(spec, ctx)
    wf_name = f"count-{run_id}"
    volumes = {v["name"]: v for v in wf["spec"]["volumes"]}
    pods = {}
    for tmpl in wf["spec"]["templates"]:
        if "container" not in tmpl:
            continue
        labels = {
            **wf["spec"]["podMetadata"]["labels"],
            **tmpl.get("metadata", {}).get("labels", {}),
            "workflows.argoproj.io/workflow": wf_name,
            "workflows.argoproj.io/completed": "false",
        }
        container = copy.deepcopy(tmpl["container"])
        mounts = container.get("volumeMounts", [])
        pods[tmpl["name"]] = pod(
            ns,
            f"{wf_name}-{tmpl['name']}",
            labels,
            containers=[container],
            volumes=[volumes[m["name"]] for m in mounts],
        )
    return pods


def claims(pod: Mapping[str, Any]) -> list[str]:
    return [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["spec"].get("volumes", [])
        if "persistentVolumeClaim" in v
    ]


def peer_of(obj: Mapping[str, Any]) -> str:
    """How the analyzer names a Pod or Deployment of the directory."""
    meta = obj["metadata"]
    return pod_peer(meta["namespace"], meta["name"], obj["kind"])


# --- the directory ------------------------------------------------------------------------


def shipped_policies(user_namespaces: Iterable[str]) -> list[dict[str, Any]]:
    """Every object of z2jh-values/manifests as an operator applies it: the per-user
    objects once per user namespace (kubectl apply -n), the rest as they are."""
    out: list[dict[str, Any]] = []
    for path in sorted((Z2JH / "manifests").rglob("*.yaml")):
        docs = load_all(path)
        if path.parent.name == "per-user-namespace":
            for ns in user_namespaces:
                for doc in docs:
                    placed = copy.deepcopy(doc)
                    placed["metadata"]["namespace"] = ns
                    out.append(placed)
        else:
            out += docs
    return out


def write_dir(directory: Path, docs: Iterable[Mapping[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump_all([dict(d) for d in docs], sort_keys=False)
    (directory / "cluster.yaml").write_text(text, encoding="utf-8")
    return directory


def chart_pods() -> list[dict[str, Any]]:
    return [
        namespace(HUB_NS, {}),
        namespace("kube-system", {}),
        pod(HUB_NS, "hub", HUB_LABELS),
        pod(HUB_NS, "proxy", PROXY_LABELS),
        pod("kube-system", "coredns", DNS_LABELS),
    ]

"""Who reaches whom under dshare's NetworkPolicies, computed by np-guard's analyzer.

No CNI runs here, so no policy is enforced: these tests prove what the shipped policies
allow, not what a cluster does. The analyzer (k8snetpolicy, built by scripts/k8s-tools.sh
from a pinned Go module) reads the rendered manifests and pods labelled by dshare's own
code, and lists every allowed connection plus its exposure findings (what a policy would
let in or out for pods and addresses that are not in the directory).

The attacker is the scientist: their token creates Argo Workflows, and Argo makes pods with
whatever labels and volumes the Workflow names, so they choose the labels of every pod in
their namespace except the server the hub makes. A job that mounts leased data must reach
nothing, whatever it calls itself.
"""

from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dshare_hub.k8s import names

from . import netpol_world as w
from .conftest import Z2JH, load_all, load_yaml

USERS = (w.User("ann", "UiS", True), w.User("bob", "UiO", False), w.User("cai", "UiB", False))
RUNS = {"ann": ("run-1", "run-2"), "bob": ("run-3",), "cai": ()}
ORGS = ("UiS", "UiO", "UiB")


@dataclass
class World:
    docs: list[dict[str, Any]]
    reach: w.Reach
    servers: dict[str, str] = field(default_factory=dict)  # user -> peer
    server_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    data_jobs: list[str] = field(default_factory=list)  # pods that mount a run's data
    other_user_pods: list[str] = field(default_factory=list)  # jobs without data
    forged: dict[str, str] = field(default_factory=dict)  # what it pretends -> peer
    brokers: dict[str, str] = field(default_factory=dict)  # org -> peer


def _forged(base: dict[str, Any], name: str, labels: dict[str, str]) -> dict[str, Any]:
    """`base` (a job pod that mounts leased data) as the user's own Workflow could make it:
    the same volumes, Argo's own labels, and whatever other labels they write."""
    pod = copy.deepcopy(base)
    argo = {k: v for k, v in base["metadata"]["labels"].items() if k.startswith("workflows.")}
    pod["metadata"]["name"] = name
    pod["metadata"]["labels"] = {**argo, **labels}
    return pod


def _forgeries(
    base: dict[str, Any], server: dict[str, str], docs: list[dict[str, Any]], reserved: set[str]
) -> dict[str, dict[str, Any]]:
    """Every pretence we could think of, each on a pod holding run-1's data claim."""
    own = {k: v for k, v in base["metadata"]["labels"].items() if not k.startswith("workflows.")}
    without_data_label = {k: v for k, v in own.items() if k != names.LABEL_DATA_ACCESS}
    broker = next(d for d in docs if d["kind"] == "Deployment")
    sets: dict[str, dict[str, str]] = {
        "no-data-access-label": without_data_label,
        "no-labels-at-all": {},
        **{
            f"data-access-{value}": {**without_data_label, names.LABEL_DATA_ACCESS: value}
            for value in ("false", "none", "skeleton", "interactive")
        },
        # everything the real server carries but the one label only the hub may set
        "server-lookalike": {k: v for k, v in server.items() if k not in reserved},
        "hub-lookalike": dict(w.HUB_LABELS),
        "proxy-lookalike": dict(w.PROXY_LABELS),
        "broker-lookalike": dict(broker["spec"]["template"]["metadata"]["labels"]),
        "dns-lookalike": dict(w.DNS_LABELS),
        "other-org": {**without_data_label, names.LABEL_ORG: "UiO"},
    }
    # ...and every label seen anywhere in this cluster, one at a time and all at once
    seen: dict[str, str] = {}
    for doc in docs:
        if doc["kind"] == "Pod":
            seen.update(doc["metadata"].get("labels") or {})
        elif doc["kind"] == "Deployment":
            seen.update(doc["spec"]["template"]["metadata"]["labels"])
    seen = {k: v for k, v in seen.items() if k not in reserved and not k.startswith("workflows.")}
    for i, (key, value) in enumerate(sorted(seen.items())):
        sets[f"label-{i}"] = {key: value}
    sets["every-label"] = seen
    return {name: _forged(base, f"forged-{name}", labels) for name, labels in sets.items()}


def build_world(tmp: Path, manifests: Any, extra: tuple[dict[str, Any], ...] = ()) -> World:
    docs = w.chart_pods()
    world = World(docs=docs, reach=w.Reach())
    namespaces = []
    for user in USERS:
        ns, server = w.server_objects(user, tmp)
        namespaces.append(ns["metadata"]["name"])
        docs += [ns, server]
        world.servers[user.name] = w.peer_of(server)
        world.server_labels[user.name] = server["metadata"]["labels"]
        for run in RUNS[user.name]:
            for pod in w.job_pods(user.name, ns["metadata"]["name"], run).values():
                docs.append(pod)
                mounts_data = any(c.startswith(f"dshare-{run}") for c in w.claims(pod))
                (world.data_jobs if mounts_data else world.other_user_pods).append(w.peer_of(pod))
    policies = w.shipped_policies(namespaces)
    docs += policies
    for doc in policies:
        if doc["kind"] == "Deployment":
            world.brokers[doc["metadata"]["labels"]["dshare.io/org"]] = w.peer_of(doc)
    base = w.job_pods("ann", "dshare-u-ann", "run-1")["job-1"]
    reserved = set(manifests.SERVER_LABELS)
    for name, pod in _forgeries(base, world.server_labels["ann"], docs, reserved).items():
        docs.append(pod)
        world.forged[name] = w.peer_of(pod)
    # the one forgery admission refuses (see test_the_server_label_is_the_hubs_alone)
    server_forgery = _forged(base, "forged-server", world.server_labels["ann"])
    docs.append(server_forgery)
    world.forged["server"] = w.peer_of(server_forgery)
    docs += list(extra)
    world.reach = w.analyze(w.write_dir(tmp / "cluster", docs))
    return world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, manifests_module: Any) -> World:
    return build_world(tmp_path_factory.mktemp("netpol"), manifests_module)


def _rendered(name: str) -> list[dict[str, Any]]:
    return load_all(Z2JH / "manifests" / name)


# --- 4. the scanner proves itself first -----------------------------------------------------


def test_the_analyzer_sees_a_planted_hole(tmp_path: Path, manifests_module: Any) -> None:
    """An empty answer is worth something only if a hole would have been reported."""
    planted = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "planted-allow-everything", "namespace": "dshare-u-ann"},
        "spec": {
            "podSelector": {"matchLabels": {names.LABEL_DATA_ACCESS: "true"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{}],
            "egress": [{}],
        },
    }
    world = build_world(tmp_path, manifests_module, (planted,))
    job = w.pod_peer("dshare-u-ann", "count-run-1-job-1")
    out = world.reach.from_(job)
    assert world.reach.reaches_address(job, "8.8.8.8", "TCP", 443)
    assert out[w.pod_peer(w.HUB_NS, "hub")].allows("TCP", 8081)
    assert out[w.pod_peer("dshare-u-ann", "count-run-2-job-1")].allows("TCP", 8888)
    assert world.reach.to(job)[w.pod_peer(w.HUB_NS, "hub")].allows("TCP", 8888)
    # the brokers' own policies still keep it out: the analyzer intersects both ends
    assert world.brokers["UiS"] not in out


# --- 1. job pods that mount data reach nothing ------------------------------------------------


def test_there_are_job_pods_that_mount_data(world: World) -> None:
    assert len(world.data_jobs) == 3  # run-1 and run-2 of ann, run-3 of bob
    assert all(p.endswith("-job-1[Pod]") for p in world.data_jobs)


def test_job_pods_that_mount_data_reach_nothing_and_nothing_reaches_them(world: World) -> None:
    for job in world.data_jobs:
        assert world.reach.everything_of(job) == []


def test_every_other_pod_of_a_user_but_the_server_is_as_isolated(world: World) -> None:
    # jobs without data too: a user's Workflow may mount data in any of them, so none
    # gets anything
    assert len(world.other_user_pods) == 3  # job-2 of run-1 and run-2 of ann, run-3 of bob
    for peer in world.other_user_pods:
        assert world.reach.everything_of(peer) == []


# --- 2. a user's server reaches its own broker and the hub ----------------------------------


def _server_expectation(world: World, user: w.User, cidrs: tuple[str, ...]) -> dict[str, str]:
    return {
        w.pod_peer("kube-system", "coredns"): "TCP 53,UDP 53",
        w.pod_peer(w.HUB_NS, "hub"): "TCP 8081",
        world.brokers[user.org]: "TCP 8080",
        **{_range(c): "TCP 443,6443" for c in cidrs},
    }


def _range(cidr: str) -> str:
    net = ipaddress.IPv4Network(cidr)
    return f"{net.network_address}-{net.broadcast_address}"


@pytest.mark.parametrize("user", USERS, ids=[u.name for u in USERS])
def test_a_server_reaches_dns_the_hub_its_own_broker_and_the_api_only(
    world: World, user: w.User, manifests_module: Any
) -> None:
    out = world.reach.from_(world.servers[user.name])
    expected = _server_expectation(world, user, manifests_module.KUBE_API_CIDRS)
    assert {dst: conn.ports for dst, conn in out.items()} == {
        dst: w.Conn.parse(conn).ports for dst, conn in expected.items()
    }
    # not the proxy: the server calls the hub's API directly; the proxy calls the server


@pytest.mark.parametrize("user", USERS, ids=[u.name for u in USERS])
def test_a_servers_one_way_out_of_the_pod_network_is_the_api_server(
    world: World, user: w.User, manifests_module: Any
) -> None:
    peer = world.servers[user.name]
    exposure = {dst: conn.ports for src, dst, conn in world.reach.egress_exposure if src == peer}
    # no "entire-cluster", no selector reaching pods beyond those above, no other address
    assert exposure == {
        _range(c): w.Conn.parse("TCP 443,6443").ports for c in manifests_module.KUBE_API_CIDRS
    }
    assert world.reach.reaches_address(peer, "172.18.0.2", "TCP", 6443)  # kind's control plane
    for address in ("8.8.8.8", "1.1.1.1", "169.254.169.254"):  # the internet, cloud metadata
        for port in (53, 80, 443, 6443):
            assert not world.reach.reaches_address(peer, address, "TCP", port)


@pytest.mark.parametrize("org", ORGS)
def test_a_broker_admits_the_hub_the_proxy_and_its_own_orgs_servers_only(
    world: World, org: str
) -> None:
    own = {world.servers[u.name] for u in USERS if u.org == org}
    assert own, org
    into = world.reach.to(world.brokers[org])
    # the forged server in ann's namespace is refused by admission (tested below)
    into.pop(world.forged["server"], None)
    assert set(into) == {w.pod_peer(w.HUB_NS, "hub"), w.pod_peer(w.HUB_NS, "proxy")} | own
    assert all(conn.port_set() == {("TCP", 8080)} for conn in into.values())


def test_servers_are_reached_by_hub_and_proxy_only(world: World) -> None:
    for peer in world.servers.values():
        into = {src: conn.port_set() for src, conn in world.reach.to(peer).items()}
        assert into == {
            w.pod_peer(w.HUB_NS, "hub"): {("TCP", 8888)},
            w.pod_peer(w.HUB_NS, "proxy"): {("TCP", 8888)},
        }


# --- 3. nothing depends on a label the user sets --------------------------------------------


def test_no_label_a_user_may_write_gains_a_data_pod_any_reach(world: World) -> None:
    forged = {k: v for k, v in world.forged.items() if k != "server"}
    assert len(forged) > 20
    gained = {name: world.reach.everything_of(peer) for name, peer in forged.items()}
    assert {name: found for name, found in gained.items() if found} == {}


def test_the_server_label_is_the_hubs_alone(world: World, manifests_module: Any) -> None:
    """The one label that grants reach in a user namespace is refused to everyone else.

    The analyzer cannot see admission: a pod with the server's labels would get the
    server's reach (and no more: the brokers go by the namespace's org, which the hub set).
    So every label a user-namespace policy grants on must be the admission policy's.
    """
    forged = world.reach.from_(world.forged["server"])
    real = world.reach.from_(world.servers["ann"])
    assert {d: c.ports for d, c in forged.items()} == {d: c.ports for d, c in real.items()}

    reserved = manifests_module.SERVER_LABELS
    per_user = _rendered("per-user-namespace/objects.yaml")
    for policy in (d for d in per_user if d["kind"] == "NetworkPolicy"):
        selector = policy["spec"]["podSelector"]
        assert selector in ({}, {"matchLabels": reserved}), policy["metadata"]["name"]
    for policy in _rendered("network-policies.yaml"):
        if policy["kind"] != "NetworkPolicy":
            continue
        for rule in policy["spec"]["ingress"]:
            for peer in rule["from"]:
                if "namespaceSelector" in peer:  # from users' namespaces: the server only
                    assert peer["podSelector"] == {"matchLabels": reserved}
    (vap,) = [
        d for d in _rendered("network-policies.yaml") if d["kind"] == "ValidatingAdmissionPolicy"
    ]
    spec = vap["spec"]
    assert spec["matchConstraints"]["resourceRules"][0]["resources"] == ["pods"]
    assert spec["matchConstraints"]["resourceRules"][0]["operations"] == ["CREATE", "UPDATE"]
    conditions = {c["name"]: c["expression"] for c in spec["matchConditions"]}
    assert conditions == {
        "in-a-user-namespace": "request.namespace.startsWith('dshare-u-')",
        "not-the-hub": "request.userInfo.username != 'system:serviceaccount:dshare:hub'",
    }
    server_check = {v["name"]: v["expression"] for v in spec["variables"]}["server"]
    for key, value in reserved.items():
        assert f"object.metadata.labels['{key}'] == '{value}'" in server_check
    assert spec["failurePolicy"] == "Fail"


def test_user_namespaces_carry_the_hubs_labels_and_refuse_host_networking(world: World) -> None:
    """The org label is what brokers admit by; Pod Security `baseline` refuses hostNetwork,
    which would put a job pod outside the pod network, where no NetworkPolicy applies."""
    nss = {d["metadata"]["name"]: d for d in world.docs if d["kind"] == "Namespace"}
    for user in USERS:
        labels = nss[f"dshare-u-{user.name}"]["metadata"]["labels"]
        assert labels[names.LABEL_ORG] == user.org
        assert labels[names.LABEL_USER_NAMESPACE] == "true"
        assert labels[names.LABEL_POD_SECURITY] == "baseline"
    # baseline refuses privileged containers: the chart must not add its iptables one
    values = load_yaml(Z2JH / "values.yaml")
    assert values["singleuser"]["cloudMetadata"]["blockWithIptables"] is False


def test_policies_and_spawner_name_the_same_labels(manifests_module: Any) -> None:
    assert manifests_module.NAMESPACE_ORG_LABEL == names.LABEL_ORG
    assert manifests_module.USER_NAMESPACE_LABEL == names.LABEL_USER_NAMESPACE
    assert manifests_module.USER_NAMESPACE_PREFIX == "dshare-u-"

"""Render dshare's Helm chart (charts/dshare) from the same pure builders as manifests/.

One source for every object: the builders of dshare_manifests.py are called once with
placeholder values for what the chart makes configurable (the organizations, the release's
namespace, the broker image), and each placeholder becomes its Helm expression. An object
named after an organization is repeated for every entry of `.Values.orgs`; a list entry that
names one (a binding's subject) is repeated inside its object. tests/deployment/test_chart.py
checks that `helm template` with the default values gives back exactly what manifests/ holds,
and tests/cluster/test_helm_install.py installs the chart into a real API server.

    python z2jh-values/dshare_chart.py --write
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import dshare_manifests as m

CHART_DIR = Path(__file__).resolve().parents[1] / "charts" / "dshare"
# Valid as label values and DNS names, and found nowhere else in the objects.
ORG = "Dshareorgplaceholder"
NAMESPACE = "dsharenamespaceplaceholder"
IMAGE = "dshare/image-placeholder:0"
EXPRESSIONS = {
    ORG: "{{ $org.name }}",
    ORG.lower(): "{{ lower $org.name }}",
    NAMESPACE: "{{ $.Release.Namespace }}",
    IMAGE: "{{ $.Values.image }}",
}
RANGE = "{{- range $org := $.Values.orgs }}"
END = "{{- end }}"
HEADER = "# Rendered by z2jh-values/dshare_chart.py from dshare_manifests.py: edit those, then\n"
HEADER += "# run `python z2jh-values/dshare_chart.py --write`.\n"


def objects() -> dict[str, list[m.Obj]]:
    """Template file -> the objects it holds, built with the placeholders."""
    return {
        "hub-rbac.yaml": m.hub_rbac(NAMESPACE),
        "broker-rbac.yaml": m.broker_rbac((ORG,), NAMESPACE) + m.broker_scope_policy(NAMESPACE),
        "brokers.yaml": m.brokers((ORG,), NAMESPACE, IMAGE),
        "network-policies.yaml": m.network_policies((ORG,), NAMESPACE),
        "argo-podspecpatch-policy.yaml": m.pod_spec_patch_policy(),
    }


def _names_org(obj: m.Obj) -> bool:
    meta = obj["metadata"]
    return any(ORG.lower() in str(meta.get(k, "")).lower() for k in ("name", "namespace"))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _repeat_list_entries(lines: list[str]) -> list[str]:
    """Wrap the list entry around each line that names the organization in a range."""
    wraps: dict[int, int] = {}  # first line of an entry -> one past its last
    for i, line in enumerate(lines):
        if ORG.lower() not in line.lower():
            continue
        start = i
        while start >= 0 and not (
            lines[start].lstrip().startswith("- ") and _indent(lines[start]) <= _indent(line)
        ):
            start -= 1
        if start < 0:
            raise ValueError(f"cannot repeat per organization: {line.strip()!r} is in no list")
        end = start + 1
        while end < len(lines) and _indent(lines[end]) > _indent(lines[start]):
            end += 1
        wraps[start] = end
    out: list[str] = []
    i = 0
    while i < len(lines):
        if i in wraps:
            pad = " " * _indent(lines[i])
            out += [pad + RANGE, *lines[i : wraps[i]], pad + END]
            i = wraps[i]
        else:
            out.append(lines[i])
            i += 1
    return out


def template(obj: m.Obj) -> str:
    text = m.yaml.dump(obj, Dumper=m._Dumper, sort_keys=False, default_flow_style=False)
    if _names_org(obj):
        body = f"{RANGE}\n---\n{text}{END}\n"
    else:
        body = "---\n" + "\n".join(_repeat_list_entries(text.rstrip("\n").split("\n"))) + "\n"
    for placeholder, expression in EXPRESSIONS.items():
        body = body.replace(placeholder, expression)
    return body


def rendered() -> dict[str, str]:
    return {name: HEADER + "".join(template(o) for o in objs) for name, objs in objects().items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render dshare's Helm chart templates.")
    parser.add_argument("--write", action="store_true", help="write charts/dshare/templates/")
    args = parser.parse_args(argv)
    stale = []
    for name, text in rendered().items():
        path = CHART_DIR / "templates" / name
        if args.write:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        elif not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    if stale:
        print("out of date, run with --write: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

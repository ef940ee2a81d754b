#!/usr/bin/env bash
# Builds the Kubernetes test tools from the Go module proxy: kube-apiserver,
# kube-controller-manager and kube-scheduler (one Kubernetes release), etcd, kwok, the Argo
# Workflows controller (and its CRDs), helm, and np-guard's NetworkPolicy analyzer
# (k8snetpolicy: no network plugin runs here, so tests/deployment/test_network_reach.py
# computes which connections the shipped policies allow). Each tool's wrapper module under tools/go/
# pins its version (go.mod + go.sum); its binaries are cached outside the repository under
# $DSHARE_TOOLS_CACHE/<tool>-<hash of its module and build flags>, reused while the hash
# holds and rebuilt when a pin changes. Then .k8s-bin/ in the checkout links to the
# current build of each, which is where tests/kube finds them.
#
# Measured on 2 cores with an empty module cache: kubernetes ~10.5 min, argo ~4 min,
# etcd, kwok, helm and k8snetpolicy ~1-2 min each; a cached run takes under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

# Go comes with the machine (/usr/local/go on this kind); a shell without it on PATH still
# finds it there.
command -v go >/dev/null || PATH=$PATH:/usr/local/go/bin
if ! command -v go >/dev/null; then
  echo "k8s-tools: no Go toolchain found (looked on PATH and in /usr/local/go/bin); install" \
    "Go 1.26 or newer" >&2
  exit 1
fi

cache=${DSHARE_TOOLS_CACHE:-$HOME/.cache/dshare/k8s-tools}
links=$PWD/.k8s-bin
export GOFLAGS=-mod=readonly CGO_ENABLED=0
mkdir -p "$cache" "$links"

kube_version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' tools/go/kubernetes/go.mod)
argo_version=$(awk '$1 == "require" && $2 ~ /argo-workflows/ {print $3}' tools/go/argo/go.mod)

key() {  # key TOOL LDFLAGS SPECS...: what a build of TOOL depends on (pins, code, flags)
  local tool=$1; shift
  { cat "tools/go/$tool"/go.mod "tools/go/$tool"/go.sum "tools/go/$tool"/*.go; echo "$*"; } |
    sha256sum | cut -c1-16
}

build() {  # build TOOL LDFLAGS PACKAGE=BINARY...
  local tool=$1 ldflags=$2; shift 2
  local dir
  dir="$cache/$tool-$(key "$tool" "$ldflags" "$@")"
  if [ ! -f "$dir/.complete" ]; then
    echo "k8s-tools: building $tool into $dir"
    local start=$SECONDS
    rm -rf "$dir.partial" && mkdir -p "$dir.partial"
    local spec
    for spec in "$@"; do
      (cd "tools/go/$tool" && go build -trimpath -ldflags "-s -w $ldflags" \
        -o "$dir.partial/${spec#*=}" "${spec%%=*}")
    done
    if [ "$tool" = argo ]; then
      # The CRDs with their full OpenAPI schemas, so the API server validates compiled
      # workflows against the version the controller is.
      local mod
      mod=$(cd tools/go/argo && go list -m -f '{{.Dir}}' github.com/argoproj/argo-workflows/v4)
      mkdir -p "$dir.partial/crds"
      cp "$mod"/manifests/base/crds/full/*.yaml "$dir.partial/crds/"
      chmod -R u+w "$dir.partial/crds"
    fi
    touch "$dir.partial/.complete"
    rm -rf "$dir" && mv "$dir.partial" "$dir"
    echo "k8s-tools: $tool built in $((SECONDS - start)) s"
    # Older builds of this tool go (hundreds of MB each); another checkout on other pins
    # rebuilds its own.
    find "$cache" -maxdepth 1 -name "$tool-*" ! -name "${dir##*/}" -exec rm -rf {} +
  fi
  for spec in "$@"; do ln -sfn "$dir/${spec#*=}" "$links/${spec#*=}"; done
  [ "$tool" = argo ] && ln -sfn "$dir/crds" "$links/argo-crds"
  return 0
}

kv="-X k8s.io/component-base/version.gitVersion=$kube_version"
kv="$kv -X k8s.io/component-base/version.gitMajor=1"
kv="$kv -X k8s.io/component-base/version.gitMinor=$(echo "$kube_version" | cut -d. -f2)"
kv="$kv -X k8s.io/component-base/version.gitTreeState=clean"
kv="$kv -X k8s.io/client-go/pkg/version.gitVersion=$kube_version"
build kubernetes "$kv" \
  k8s.io/kubernetes/cmd/kube-apiserver=kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager=kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler=kube-scheduler
build etcd "" .=etcd
build kwok "" sigs.k8s.io/kwok/cmd/kwok=kwok
build argo "-X github.com/argoproj/argo-workflows/v4.version=$argo_version" \
  github.com/argoproj/argo-workflows/v4/cmd/workflow-controller=workflow-controller
build helm "" helm.sh/helm/v4/cmd/helm=helm
build netpol "" github.com/np-guard/netpol-analyzer/cmd/netpolicy=k8snetpolicy
echo "k8s-tools: ready in $links"

#!/usr/bin/env bash
# Builds np-guard's netpol-analyzer (the k8snetpolicy command) from the Go module proxy,
# pinned by the wrapper module tools/go/netpol (go.mod + go.sum). NetworkPolicies are not
# enforced on these machines (no CNI), so tests/deployment/test_network_reach.py asks this
# analyzer which connections the shipped policies allow.
#
# The binary is cached outside the repository under
# $DSHARE_TOOLS_CACHE/netpol-<hash of the module and this script>/, reused while the hash
# holds (a .complete marker says the build finished) and rebuilt when a pin changes; then
# .k8s-bin/k8snetpolicy in the checkout links to it, which is where the test finds it.
#
# Measured on 2 cores: ~1.5 min with empty module and build caches; a cached run takes
# well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${DSHARE_TOOLS_CACHE:-$HOME/.cache/dshare/k8s-tools}
links=$PWD/.k8s-bin
module=tools/go/netpol
# readonly: the build uses exactly the committed go.sum and never rewrites go.mod
export GOFLAGS=-mod=readonly CGO_ENABLED=0

# what a build depends on: the pins, the import, and how this script builds them
key=$(cat "$module/go.mod" "$module/go.sum" "$module/tools.go" scripts/netpol-tool.sh |
  sha256sum | cut -c1-16)
dir="$cache/netpol-$key"
if [ ! -f "$dir/.complete" ]; then
  echo "netpol-tool: building k8snetpolicy into $dir"
  start=$SECONDS
  # A build interrupted half way leaves only .partial behind, never a directory that
  # looks complete.
  rm -rf "$dir.partial" && mkdir -p "$dir.partial"
  (cd "$module" && go build -trimpath -ldflags "-s -w" \
    -o "$dir.partial/k8snetpolicy" github.com/np-guard/netpol-analyzer/cmd/netpolicy)
  touch "$dir.partial/.complete"
  rm -rf "$dir" && mv "$dir.partial" "$dir"
  echo "netpol-tool: built in $((SECONDS - start)) s"
fi
mkdir -p "$links"
ln -sfn "$dir/k8snetpolicy" "$links/k8snetpolicy"
echo "netpol-tool: $links/k8snetpolicy"

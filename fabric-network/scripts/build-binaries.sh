#!/usr/bin/env bash
# Build Fabric's binaries (peer, orderer, osnadmin, configtxgen, configtxlator, cryptogen)
# and the chaincode-as-a-service builder into $FABRIC_HOME (~/.cache/dshare/fabric), and
# keep a copy of Fabric's sampleconfig there for prepare-config.sh.
#
# Fabric v2.5.16 is commit f871cf92a026aba7b12e6f06d71ded3e6e659d71 (its release commit,
# "Release commit for v2.5.16"). The module has no /v2 suffix, so Go addresses it by commit.
#
# Source: `go install ...@<commit>` through the Go module proxy; or, where the proxy does not
# serve the module, a checkout of that commit named by FABRIC_SRC (built with its vendor/).
set -euo pipefail
# shellcheck source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

FABRIC_COMMIT="${FABRIC_COMMIT:-f871cf92a026aba7b12e6f06d71ded3e6e659d71}"
COMMANDS=(peer orderer osnadmin configtxgen configtxlator cryptogen)
mkdir -p "$FABRIC_BIN" "$FABRIC_HOME/ccaas_builder/bin"

if [[ -n "${FABRIC_SRC:-}" ]]; then
	[[ -f "$FABRIC_SRC/go.mod" ]] || die "FABRIC_SRC=$FABRIC_SRC is not a Fabric checkout"
	head=$(git -C "$FABRIC_SRC" rev-parse HEAD 2>/dev/null || echo "$FABRIC_COMMIT")
	[[ "$head" == "$FABRIC_COMMIT" ]] || die "FABRIC_SRC is at $head, expected $FABRIC_COMMIT"
	(
		cd "$FABRIC_SRC"
		for cmd in "${COMMANDS[@]}"; do
			GOFLAGS=-mod=vendor go build -trimpath -o "$FABRIC_BIN/$cmd" "./cmd/$cmd"
		done
		cd ccaas_builder
		for cmd in detect build release; do
			go build -trimpath -o "$FABRIC_HOME/ccaas_builder/bin/$cmd" "./cmd/$cmd"
		done
	)
	sampleconfig="$FABRIC_SRC/sampleconfig"
else
	for cmd in "${COMMANDS[@]}"; do
		GOBIN="$FABRIC_BIN" go install "github.com/hyperledger/fabric/cmd/$cmd@$FABRIC_COMMIT"
	done
	for cmd in detect build release; do
		GOBIN="$FABRIC_HOME/ccaas_builder/bin" \
			go install "github.com/hyperledger/fabric/ccaas_builder/cmd/$cmd@$FABRIC_COMMIT"
	done
	module_dir=$(go list -m -json "github.com/hyperledger/fabric@$FABRIC_COMMIT" |
		"$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
	sampleconfig="$module_dir/sampleconfig"
fi

rm -rf "$FABRIC_HOME/sampleconfig"
cp -R "$sampleconfig" "$FABRIC_HOME/sampleconfig"
chmod -R u+w "$FABRIC_HOME/sampleconfig"
"$FABRIC_BIN/peer" version | head -3
echo "Fabric binaries in $FABRIC_BIN, sampleconfig in $FABRIC_HOME/sampleconfig"

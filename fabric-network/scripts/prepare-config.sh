#!/usr/bin/env bash
# Write build/config: Fabric's sampleconfig core.yaml and orderer.yaml with dshare's
# overrides merged in (channel participation, no Docker endpoint, the ccaas builder),
# plus configtx.yaml.
set -euo pipefail
# shellcheck source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

sample="$FABRIC_HOME/sampleconfig"
[[ -f "$sample/core.yaml" ]] || die "$sample/core.yaml is missing; run scripts/build-binaries.sh first"
mkdir -p "$FABRIC_CFG_PATH" "$BUILD/data"
for name in core orderer; do
	"$PYTHON" "$NETWORK_DIR/scripts/merge_yaml.py" "$sample/$name.yaml" \
		"$NETWORK_DIR/overrides/$name.yaml" "$FABRIC_CFG_PATH/$name.yaml" \
		"FABRIC_HOME=$FABRIC_HOME" "FABRIC_DATA=$BUILD/data"
done
cp "$NETWORK_DIR/configtx.yaml" "$FABRIC_CFG_PATH/configtx.yaml"
echo "Fabric configuration in $FABRIC_CFG_PATH"

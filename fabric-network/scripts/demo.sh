#!/usr/bin/env bash
# The whole local network in one go: binaries (if missing), processes up, channel with
# UiS and UiO, the chaincode, UiB added to the running channel, connection profiles.
set -euo pipefail
# shellcheck source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
here="$NETWORK_DIR/scripts"

[[ -x "$FABRIC_BIN/peer" ]] || "$here/build-binaries.sh"
"$here/network-up.sh"
"$here/create-channel.sh"
"$here/deploy-chaincode.sh" 1 UiS UiO
"$here/add-org.sh" UiB
"$here/connection-profiles.sh"

#!/usr/bin/env bash
# Create the application channel with the channel participation API: make its genesis
# block (UiS and UiO; UiB joins later with add-org.sh), join the orderer with osnadmin,
# then join each member's peer.
set -euo pipefail
# shellcheck source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
need_binaries

mkdir -p "$BUILD/channel"
block="$BUILD/channel/$CHANNEL.block"
configtxgen -configPath "$FABRIC_CFG_PATH" -profile DShareChannel \
	-outputBlock "$block" -channelID "$CHANNEL" 2>"$BUILD/logs/configtxgen.log"

orderer_tls="$ORDERER_DIR/orderers/orderer.orderer.dshare.local/tls"
osnadmin channel join --channelID "$CHANNEL" --config-block "$block" \
	-o "$ORDERER_ADMIN_ADDRESS" --ca-file "$ORDERER_CA" \
	--client-cert "$orderer_tls/server.crt" --client-key "$orderer_tls/server.key" >/dev/null

for org in UiS UiO; do
	as_admin "$org"
	# the orderer needs a moment to elect itself leader before it serves the block
	for attempt in 1 2 3 4 5 6 7 8 9 10; do
		if peer channel join -b "$block" 2>"$BUILD/logs/join-$org.log"; then
			break
		fi
		[[ $attempt -lt 10 ]] || die "peer of $org could not join $CHANNEL; see $BUILD/logs/join-$org.log"
		sleep 2
	done
done
echo "channel $CHANNEL: orderer, UiS and UiO joined"

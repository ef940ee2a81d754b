#!/usr/bin/env bash
# Add UiB to the running channel, as the thesis adds its third organization: a config
# update that a MAJORITY of the current members' admins (UiS and UiO) sign, then UiB's
# peer joins from the orderer and installs and approves the committed chaincode.
set -euo pipefail
# shellcheck source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
need_binaries

org="${1:-UiB}"
work="$BUILD/channel/add-$org"
mkdir -p "$work"

# UiB's definition (MSP, listing 4.1 policies, anchor peer) from configtx.yaml
configtxgen -configPath "$FABRIC_CFG_PATH" -printOrg "${org}MSP" >"$work/org.json" 2>"$BUILD/logs/printorg.log"

as_admin UiS
peer channel fetch config "$work/config_block.pb" -o "$ORDERER_ADDRESS" --tls \
	--cafile "$ORDERER_CA" -c "$CHANNEL" 2>"$BUILD/logs/fetch-config.log"
configtxlator proto_decode --input "$work/config_block.pb" --type common.Block \
	--output "$work/config_block.json"
"$PYTHON" - "$work" "${org}MSP" <<'PY'
import json, sys
work, msp = sys.argv[1], sys.argv[2]
block = json.load(open(f"{work}/config_block.json"))
config = block["data"]["data"][0]["payload"]["data"]["config"]
json.dump(config, open(f"{work}/config.json", "w"))
groups = config["channel_group"]["groups"]["Application"]["groups"]
if msp in groups:
    sys.exit(f"add-org.sh: {msp} is already a member of the channel")
groups[msp] = json.load(open(f"{work}/org.json"))
json.dump(config, open(f"{work}/modified.json", "w"))
PY
configtxlator proto_encode --input "$work/config.json" --type common.Config --output "$work/config.pb"
configtxlator proto_encode --input "$work/modified.json" --type common.Config --output "$work/modified.pb"
configtxlator compute_update --channel_id "$CHANNEL" --original "$work/config.pb" \
	--updated "$work/modified.pb" --output "$work/update.pb"
configtxlator proto_decode --input "$work/update.pb" --type common.ConfigUpdate --output "$work/update.json"
"$PYTHON" - "$work" "$CHANNEL" <<'PY'
import json, sys
work, channel = sys.argv[1], sys.argv[2]
update = json.load(open(f"{work}/update.json"))
envelope = {"payload": {"header": {"channel_header": {"channel_id": channel, "type": 2}},
                        "data": {"config_update": update}}}
json.dump(envelope, open(f"{work}/update_envelope.json", "w"))
PY
configtxlator proto_encode --input "$work/update_envelope.json" --type common.Envelope \
	--output "$work/update_in_envelope.pb"

# MAJORITY Admins of two members is both: UiS signs, UiO signs while submitting
as_admin UiS
peer channel signconfigtx -f "$work/update_in_envelope.pb" 2>"$BUILD/logs/sign-UiS.log"
as_admin UiO
peer channel update -f "$work/update_in_envelope.pb" -c "$CHANNEL" -o "$ORDERER_ADDRESS" \
	--tls --cafile "$ORDERER_CA" 2>"$BUILD/logs/update-add-$org.log" ||
	die "channel update failed; see $BUILD/logs/update-add-$org.log"

as_admin "$org"
peer channel fetch 0 "$work/genesis.block" -o "$ORDERER_ADDRESS" --tls --cafile "$ORDERER_CA" \
	-c "$CHANNEL" 2>/dev/null
peer channel join -b "$work/genesis.block" 2>"$BUILD/logs/join-$org.log" ||
	die "peer of $org could not join; see $BUILD/logs/join-$org.log"
touch "$BUILD/channel/$(tr '[:upper:]' '[:lower:]' <<<"$org")-joined"

# the chaincode is already committed: UiB installs and approves the same definition
if as_admin UiS && peer lifecycle chaincode querycommitted -C "$CHANNEL" -n "$CC_NAME" >/dev/null 2>&1; then
	sequence=$(peer lifecycle chaincode querycommitted -C "$CHANNEL" -n "$CC_NAME" -O json |
		"$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["sequence"])')
	DSHARE_SKIP_COMMIT=1 "$NETWORK_DIR/scripts/deploy-chaincode.sh" "$sequence" "$org"
fi
echo "$org joined channel $CHANNEL"

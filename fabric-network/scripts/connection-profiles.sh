#!/usr/bin/env bash
# Write what each organization's broker reads: build/profiles/<Org>/connection.json
# (dshare's FabricProfile format) next to the broker's client identity (cert.pem,
# key.pem) and its peer's TLS CA (tls-ca.pem). Paths in the profile are relative, so the
# same directory works on this machine and mounted as a Secret at /etc/dshare/fabric.
# key.pem is a private key: the directory is created 0700 and the key 0600.
# The profile always uses TLS (FabricProfile refuses none unless "plaintext": true) and lists
# the channel's members (channel_organizations), so an endorsement failure can say how many
# organizations the MAJORITY needs: run this again after scripts/add-org.sh.
set -euo pipefail
# shellcheck source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

members=(UiS UiO)
[[ -f "$BUILD/channel/uib-joined" ]] && members+=(UiB)
channel_orgs=$(printf '"%sMSP", ' "${members[@]}")
channel_orgs="[${channel_orgs%, }]"

for org in "${@:-UiS UiO UiB}"; do
	for one in $org; do
		domain=$(org_domain "$one")
		user="$ORGANIZATIONS/peerOrganizations/$domain/users/User1@$domain/msp"
		[[ -d "$user" ]] || die "$user is missing; run scripts/network-up.sh first"
		out="$BUILD/profiles/$one"
		mkdir -p "$out"
		chmod 700 "$out"
		cp "$user/signcerts/"*.pem "$out/cert.pem"
		install -m 600 "$user/keystore/"*_sk "$out/key.pem"
		cp "$(peer_dir "$one")/tls/ca.crt" "$out/tls-ca.pem"
		cat >"$out/connection.json" <<JSON
{
  "peer_endpoint": "127.0.0.1:$(org_port "$one")",
  "tls_server_name": "peer0.$domain",
  "msp_id": "${one}MSP",
  "channel": "$CHANNEL",
  "chaincode": "$CC_NAME",
  "cert_path": "cert.pem",
  "key_path": "key.pem",
  "tls_root_cert_path": "tls-ca.pem",
  "channel_organizations": $channel_orgs
}
JSON
		echo "$out/connection.json"
	done
done

#!/usr/bin/env bash
# Deploy the dshare contract as chaincode-as-a-service: package (type ccaas: the address of
# the service and the TLS material the peers dial it with), install on every member peer,
# start the service (one Python process, python -m dshare_chaincode.ccaas, mutual TLS: it
# refuses to start without TLS), approve for each member organization (a MAJORITY must
# approve), and commit the definition. CHAINCODE_MAX_CLOCK_SKEW (seconds, default 120), when
# set, is passed to the service: it refuses proposals dated further from its clock.
#
#   deploy-chaincode.sh [SEQUENCE] [ORG ...]   defaults: 1, the orgs whose peer joined
set -euo pipefail
# shellcheck source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
need_binaries

sequence="${1:-1}"
shift || true
orgs=("$@")
if [[ ${#orgs[@]} -eq 0 ]]; then
	orgs=(UiS UiO)
	[[ -f "$BUILD/channel/uib-joined" ]] && orgs+=(UiB)
fi

pkg_dir="$BUILD/chaincode"
tls_dir="$pkg_dir/tls"
mkdir -p "$pkg_dir/src"
label="${CC_NAME}_${CC_VERSION}"
"$NETWORK_DIR/scripts/chaincode-tls.sh" "$tls_dir" >/dev/null
# The ccaas builder's connection.json: the peer checks the service's certificate against
# root_cert and presents client_cert/client_key (PEM text, so the file holds a private key:
# it only lets a peer talk to this chaincode service). The same certificates give the same
# package, hence the same package id on every peer and on a rerun.
(
	umask 077
	"$PYTHON" - "$tls_dir" "$CC_ADDRESS" >"$pkg_dir/src/connection.json" <<'PY'
import json, pathlib, sys
tls, address = pathlib.Path(sys.argv[1]), sys.argv[2]
print(json.dumps({
    "address": address,
    "dial_timeout": "10s",
    "tls_required": True,
    "client_auth_required": True,
    "root_cert": (tls / "ca.crt").read_text(),
    "client_cert": (tls / "peer-client.crt").read_text(),
    "client_key": (tls / "peer-client.key").read_text(),
}, indent=2))
PY
)
cat >"$pkg_dir/src/metadata.json" <<JSON
{"type": "ccaas", "label": "$label"}
JSON
tar -C "$pkg_dir/src" -czf "$pkg_dir/code.tar.gz" connection.json
tar -C "$pkg_dir" -czf "$pkg_dir/$label.tgz" -C "$pkg_dir/src" metadata.json -C "$pkg_dir" code.tar.gz
package_id=$(peer lifecycle chaincode calculatepackageid "$pkg_dir/$label.tgz")

for org in "${orgs[@]}"; do
	as_admin "$org"
	if ! peer lifecycle chaincode queryinstalled 2>/dev/null | grep -q "$package_id"; then
		peer lifecycle chaincode install "$pkg_dir/$label.tgz" 2>"$BUILD/logs/install-$org.log" ||
			die "install on the peer of $org failed; see $BUILD/logs/install-$org.log"
	fi
done

# the chaincode service: one process serves every peer
pidfile="$BUILD/pids/chaincode.pid"
if ! { [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }; then
	CHAINCODE_ID="$package_id" CHAINCODE_SERVER_ADDRESS="$CC_ADDRESS" \
		CHAINCODE_TLS_KEY="$tls_dir/server.key" CHAINCODE_TLS_CERT="$tls_dir/server.crt" \
		CHAINCODE_CLIENT_CA_CERT="$tls_dir/ca.crt" \
		nohup "$PYTHON" -m dshare_chaincode.ccaas >"$BUILD/logs/chaincode.log" 2>&1 &
	echo $! >"$pidfile"
	wait_for_port "${CC_ADDRESS##*:}" "chaincode service"
fi

common=(-o "$ORDERER_ADDRESS" --tls --cafile "$ORDERER_CA" --channelID "$CHANNEL"
	--name "$CC_NAME" --version "$CC_VERSION" --sequence "$sequence")
for org in "${orgs[@]}"; do
	as_admin "$org"
	peer lifecycle chaincode approveformyorg "${common[@]}" --package-id "$package_id" \
		2>"$BUILD/logs/approve-$org.log" ||
		grep -q "attempted to redefine uncommitted sequence\|unchanged content" "$BUILD/logs/approve-$org.log" ||
		die "approval by $org failed; see $BUILD/logs/approve-$org.log"
done

if [[ "${DSHARE_SKIP_COMMIT:-}" != 1 ]]; then
	peers=()
	for org in "${orgs[@]}"; do
		peers+=(--peerAddresses "127.0.0.1:$(org_port "$org")"
			--tlsRootCertFiles "$(peer_dir "$org")/tls/ca.crt")
	done
	as_admin "${orgs[0]}"
	peer lifecycle chaincode commit "${common[@]}" "${peers[@]}" 2>"$BUILD/logs/commit.log" ||
		die "commit failed; see $BUILD/logs/commit.log"
fi
peer lifecycle chaincode querycommitted --channelID "$CHANNEL" --name "$CC_NAME"

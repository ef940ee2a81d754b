#!/usr/bin/env bash
# Shared settings of the local dshare Fabric network; sourced by the other scripts.
# Every process listens on 127.0.0.1. Override any of these in the environment.

NETWORK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export NETWORK_DIR
export FABRIC_HOME="${FABRIC_HOME:-$HOME/.cache/dshare/fabric}"
export FABRIC_BIN="$FABRIC_HOME/bin"
export BUILD="${DSHARE_FABRIC_BUILD:-$NETWORK_DIR/build}"
export ORGANIZATIONS="$BUILD/organizations"
export FABRIC_CFG_PATH="$BUILD/config"
export CHANNEL="${CHANNEL:-dshare}"
export CC_NAME="${CC_NAME:-dshare}"
export CC_VERSION="${CC_VERSION:-0.1.0}"
export CC_ADDRESS="${CC_ADDRESS:-127.0.0.1:9999}"
export PYTHON="${PYTHON:-python3}"
export PATH="$FABRIC_BIN:$PATH"

ORDERER_DIR="$ORGANIZATIONS/ordererOrganizations/orderer.dshare.local"
export ORDERER_CA="$ORDERER_DIR/orderers/orderer.orderer.dshare.local/tls/ca.crt"
export ORDERER_ADDRESS=127.0.0.1:7050
export ORDERER_ADMIN_ADDRESS=127.0.0.1:7053

die() {
	echo "$(basename "$0"): $*" >&2
	exit 1
}

# Peer port of an organization: UiS 7051, UiO 8051, UiB 9051 (chaincode port +1,
# operations 9444/9445/9446).
org_port() {
	case "$1" in
	UiS) echo 7051 ;;
	UiO) echo 8051 ;;
	UiB) echo 9051 ;;
	*) die "unknown organization '$1'; use UiS, UiO or UiB" ;;
	esac
}

org_domain() {
	echo "$(tr '[:upper:]' '[:lower:]' <<<"$1").dshare.local"
}

peer_dir() {
	local domain
	domain=$(org_domain "$1")
	echo "$ORGANIZATIONS/peerOrganizations/$domain/peers/peer0.$domain"
}

# Act as the organization's admin against its own peer (peer CLI environment).
as_admin() {
	local org="$1" domain
	domain=$(org_domain "$org")
	export CORE_PEER_TLS_ENABLED=true
	export CORE_PEER_LOCALMSPID="${org}MSP"
	export CORE_PEER_TLS_ROOTCERT_FILE
	CORE_PEER_TLS_ROOTCERT_FILE="$(peer_dir "$org")/tls/ca.crt"
	export CORE_PEER_MSPCONFIGPATH="$ORGANIZATIONS/peerOrganizations/$domain/users/Admin@$domain/msp"
	export CORE_PEER_ADDRESS
	CORE_PEER_ADDRESS="127.0.0.1:$(org_port "$org")"
}

# Wait until something listens on 127.0.0.1:$1 (bash's /dev/tcp; no extra tools).
wait_for_port() {
	local port="$1" what="$2" tries=60
	until (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
		tries=$((tries - 1))
		[[ $tries -gt 0 ]] || die "$what did not start listening on 127.0.0.1:$port; see $BUILD/logs"
		sleep 1
	done
}

need_binaries() {
	for bin in peer orderer osnadmin configtxgen configtxlator cryptogen; do
		[[ -x "$FABRIC_BIN/$bin" ]] || die "$FABRIC_BIN/$bin is missing; run scripts/build-binaries.sh first"
	done
}

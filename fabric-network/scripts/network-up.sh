#!/usr/bin/env bash
# Bring up the local network as native processes on 127.0.0.1: one Raft orderer and one
# peer per organization (UiS, UiO, UiB), all with TLS. Crypto material comes from
# cryptogen (test PKI). Logs and pid files go to build/logs and build/pids.
set -euo pipefail
# shellcheck source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
need_binaries

mkdir -p "$BUILD/logs" "$BUILD/pids" "$BUILD/data"
if [[ ! -d "$ORGANIZATIONS" ]]; then
	cryptogen generate --config="$NETWORK_DIR/crypto-config.yaml" --output="$ORGANIZATIONS" >/dev/null
fi
"$NETWORK_DIR/scripts/prepare-config.sh" >/dev/null

start() {
	local name="$1"
	shift
	if [[ -f "$BUILD/pids/$name.pid" ]] && kill -0 "$(cat "$BUILD/pids/$name.pid")" 2>/dev/null; then
		echo "$name is already running"
		return
	fi
	nohup "$@" >"$BUILD/logs/$name.log" 2>&1 &
	echo $! >"$BUILD/pids/$name.pid"
}

orderer_tls="$ORDERER_DIR/orderers/orderer.orderer.dshare.local/tls"
ORDERER_GENERAL_LOCALMSPID=OrdererMSP \
	ORDERER_GENERAL_LOCALMSPDIR="$ORDERER_DIR/orderers/orderer.orderer.dshare.local/msp" \
	ORDERER_GENERAL_TLS_PRIVATEKEY="$orderer_tls/server.key" \
	ORDERER_GENERAL_TLS_CERTIFICATE="$orderer_tls/server.crt" \
	ORDERER_GENERAL_TLS_ROOTCAS="[$orderer_tls/ca.crt]" \
	ORDERER_GENERAL_CLUSTER_CLIENTCERTIFICATE="$orderer_tls/server.crt" \
	ORDERER_GENERAL_CLUSTER_CLIENTPRIVATEKEY="$orderer_tls/server.key" \
	ORDERER_GENERAL_CLUSTER_ROOTCAS="[$orderer_tls/ca.crt]" \
	ORDERER_ADMIN_TLS_PRIVATEKEY="$orderer_tls/server.key" \
	ORDERER_ADMIN_TLS_CERTIFICATE="$orderer_tls/server.crt" \
	ORDERER_ADMIN_TLS_ROOTCAS="[$orderer_tls/ca.crt]" \
	ORDERER_ADMIN_TLS_CLIENTROOTCAS="[$orderer_tls/ca.crt]" \
	ORDERER_CONSENSUS_WALDIR="$BUILD/data/orderer/etcdraft/wal" \
	ORDERER_CONSENSUS_SNAPDIR="$BUILD/data/orderer/etcdraft/snapshot" \
	start orderer orderer
wait_for_port 7053 orderer

for org in UiS UiO UiB; do
	port=$(org_port "$org")
	dir=$(peer_dir "$org")
	domain=$(org_domain "$org")
	ops=$((9444 + (port - 7051) / 1000))
	CORE_PEER_ID="peer0.$domain" \
		CORE_PEER_LOCALMSPID="${org}MSP" \
		CORE_PEER_MSPCONFIGPATH="$dir/msp" \
		CORE_PEER_ADDRESS="127.0.0.1:$port" \
		CORE_PEER_LISTENADDRESS="127.0.0.1:$port" \
		CORE_PEER_CHAINCODEADDRESS="127.0.0.1:$((port + 1))" \
		CORE_PEER_CHAINCODELISTENADDRESS="127.0.0.1:$((port + 1))" \
		CORE_PEER_GOSSIP_BOOTSTRAP="127.0.0.1:$port" \
		CORE_PEER_GOSSIP_EXTERNALENDPOINT="127.0.0.1:$port" \
		CORE_PEER_TLS_CERT_FILE="$dir/tls/server.crt" \
		CORE_PEER_TLS_KEY_FILE="$dir/tls/server.key" \
		CORE_PEER_TLS_ROOTCERT_FILE="$dir/tls/ca.crt" \
		CORE_PEER_FILESYSTEMPATH="$BUILD/data/peer0.$domain" \
		CORE_OPERATIONS_LISTENADDRESS="127.0.0.1:$ops" \
		start "peer-$org" peer node start
done
for org in UiS UiO UiB; do
	wait_for_port "$(org_port "$org")" "peer of $org"
done
echo "orderer on 127.0.0.1:7050 (admin 7053); peers UiS 7051, UiO 8051, UiB 9051"

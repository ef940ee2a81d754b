#!/usr/bin/env bash
# TLS material of the chaincode service (python -m dshare_chaincode.ccaas), which refuses to
# start without it: a CA, the service's server certificate (for the host of CC_ADDRESS) and
# the client certificate every peer presents when it dials the service (mutual TLS: the
# service is started with CHAINCODE_CLIENT_CA_CERT = this CA). Test PKI for the local network,
# like cryptogen's; P-256 keys, one year. Writes only what is missing.
#
#   chaincode-tls.sh DIR   -> DIR/ca.crt, server.{crt,key}, peer-client.{crt,key}
set -euo pipefail
# shellcheck source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

dir="${1:?usage: chaincode-tls.sh DIR}"
command -v openssl >/dev/null || die "openssl is missing; install it (Debian: apt-get install openssl)"
mkdir -p "$dir"
chmod 700 "$dir"
host="${CC_ADDRESS%:*}"
if [[ "$host" =~ ^[0-9.]+$ ]]; then san="IP:$host"; else san="DNS:$host"; fi

key() {
	[[ -f "$1" ]] || (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1")
}

# issue NAME CN EXTENSIONS: NAME.key and NAME.crt signed by the CA
issue() {
	local name="$1" cn="$2" extensions="$3"
	[[ -f "$dir/$name.crt" ]] && return
	key "$dir/$name.key"
	openssl req -new -key "$dir/$name.key" -subj "/O=dshare/CN=$cn" -out "$dir/$name.csr"
	openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
		-CAcreateserial -days 365 -sha256 -out "$dir/$name.crt" \
		-extfile <(printf '%s\n' "$extensions" "keyUsage=critical,digitalSignature")
	rm -f "$dir/$name.csr"
}

if [[ ! -f "$dir/ca.crt" ]]; then
	key "$dir/ca.key"
	openssl req -x509 -new -key "$dir/ca.key" -subj "/O=dshare/CN=dshare chaincode TLS CA" \
		-days 365 -sha256 -out "$dir/ca.crt" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
fi
issue server dshare-ccaas "subjectAltName=$san
extendedKeyUsage=serverAuth"
issue peer-client "dshare peer" "extendedKeyUsage=clientAuth"
echo "chaincode TLS material in $dir (server certificate for $san)"

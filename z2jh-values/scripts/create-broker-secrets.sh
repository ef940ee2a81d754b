#!/usr/bin/env bash
# Create (or replace) the Secrets one organization's broker reads. Keys are generated
# here, on the operator's machine, and go straight to the cluster: nothing is written to
# disk or printed.
#
#   create-broker-secrets.sh ORG KEYSTORE_URL FABRIC_DIR
#
# ORG          UiS, UiO or UiB
# KEYSTORE_URL SQLAlchemy URL of the org's PostgreSQL key store, e.g.
#              postgresql+psycopg://broker:PASSWORD@db.example.org/dshare_uis
#              (pass "-" to read it from standard input, keeping it out of shell history)
# FABRIC_DIR   directory with connection.json, cert.pem, key.pem, tls-ca.pem for this org
#              (fabric-network/scripts/connection-profiles.sh writes one per org)
# The KEK is created once: an existing dshare-<org>-secrets keeps its kek, since a new
# one would make every wrapped data key of the org unreadable (use `dshare keys rotate`).
set -euo pipefail

NAMESPACE="${DSHARE_NAMESPACE:-dshare}"

usage() {
	echo "usage: $0 ORG KEYSTORE_URL|- FABRIC_DIR" >&2
	exit 2
}

[[ $# -eq 3 ]] || usage
org="$1"
keystore_url="$2"
fabric_dir="$3"
case "$org" in
UiS | UiO | UiB) ;;
*)
	echo "create-broker-secrets.sh: unknown organization '$org'; use UiS, UiO or UiB" >&2
	exit 2
	;;
esac
if [[ "$keystore_url" == "-" ]]; then
	IFS= read -r keystore_url
fi
if [[ "$keystore_url" != postgresql* ]]; then
	echo "create-broker-secrets.sh: KEYSTORE_URL must be a postgresql:// URL" >&2
	exit 2
fi
for f in connection.json cert.pem key.pem tls-ca.pem; do
	if [[ ! -f "$fabric_dir/$f" ]]; then
		echo "create-broker-secrets.sh: $fabric_dir/$f is missing; run fabric-network/scripts/connection-profiles.sh" >&2
		exit 2
	fi
done

name="dshare-$(tr '[:upper:]' '[:lower:]' <<<"$org")"

if kek=$(kubectl -n "$NAMESPACE" get secret "$name-secrets" -o 'jsonpath={.data.kek}' 2>/dev/null) && [[ -n "$kek" ]]; then
	kek=$(base64 -d <<<"$kek")
else
	# 32 random bytes, base64: the AES-256 key-encryption key
	kek=$(openssl rand -base64 32)
fi

kubectl -n "$NAMESPACE" create secret generic "$name-secrets" \
	--from-literal=kek="$kek" --from-literal=keystore-url="$keystore_url" \
	--dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$NAMESPACE" create secret generic "$name-fabric" \
	--from-file=connection.json="$fabric_dir/connection.json" \
	--from-file=cert.pem="$fabric_dir/cert.pem" \
	--from-file=key.pem="$fabric_dir/key.pem" \
	--from-file=tls-ca.pem="$fabric_dir/tls-ca.pem" \
	--dry-run=client -o yaml | kubectl apply -f - >/dev/null
echo "Secrets $name-secrets and $name-fabric are in namespace $NAMESPACE"

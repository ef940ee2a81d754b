#!/usr/bin/env bash
# Installs the Debian packages dshare needs, only those that are missing.
#   system-deps.sh demo   what the embedded deployment runs (bubblewrap sandboxes,
#                         setfacl for the views of interactive datasets, sudo for
#                         the non-root hub)
#   system-deps.sh test   the same plus what the test suites start for real
#                         (PostgreSQL, Chromium for the browser tests)
set -euo pipefail

want=(bubblewrap acl sudo)
if [ "${1:-demo}" = test ]; then
  want+=(postgresql chromium chromium-driver fonts-dejavu-core shellcheck)
fi

missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "dshare: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
echo "dshare: installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

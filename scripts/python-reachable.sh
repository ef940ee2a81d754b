#!/usr/bin/env bash
# Every hub user's server, each broker and each job runs the venv's Python as its own
# unprivileged OS user, so every directory on the way to that interpreter must be
# searchable by others. pyenv under /root (0700) is not: add search (x) only, never read,
# to those directories, and say so. Listing them stays refused.
set -euo pipefail
for venv in "$@"; do
  [ -x "$venv/bin/python" ] || continue
  real=$("$venv/bin/python" -c 'import os, sys; print(os.path.realpath(sys.executable))')
  dir=$(dirname "$real")
  while [ "$dir" != / ]; do
    if [ "$(stat -c %A "$dir" | cut -c10)" != x ] && [ "$(stat -c %A "$dir" | cut -c10)" != t ]; then
      echo "dshare: $dir holds the Python the per-user servers run; making it searchable (o+x)"
      chmod o+x "$dir"
    fi
    dir=$(dirname "$dir")
  done
done

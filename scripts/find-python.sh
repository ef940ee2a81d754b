#!/usr/bin/env bash
# Prints a Python interpreter of the wanted minor version (e.g. 3.12), or python3 when the
# machine has none: pyenv's shims only answer for the active version, so look past them.
want=${1:?usage: find-python.sh 3.12}
for candidate in "python$want" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want"*/bin/python"$want" \
                 /usr/bin/python"$want" /usr/local/bin/python"$want"; do
  if "$candidate" -c 'import sys' >/dev/null 2>&1; then
    command -v "$candidate" 2>/dev/null || echo "$candidate"
    exit 0
  fi
done
echo "dshare: no Python $want here; the JupyterHub 5.5 suites run on python3 instead" >&2
command -v python3

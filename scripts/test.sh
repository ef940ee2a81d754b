#!/usr/bin/env bash
# Every suite dshare has, in the order a failure is cheapest to find. Called by `make test`
# after the installs; runs them all even when one fails, then prints one summary line.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

out=test-output
rm -rf "$out" && mkdir -p "$out"
failed=()

step() {  # step NAME COMMAND...: run, remember failures, keep going
  local name=$1; shift
  echo
  echo "=== $name: $*"
  if ! "$@"; then failed+=("$name"); fi
}

export DSHARE_TEST_OUTPUT=$PWD/$out

step ruff .venv/bin/ruff check .
step ruff-format .venv/bin/ruff format --check .
step mypy .venv/bin/mypy
if [ -f labextension/package.json ]; then
  step eslint bash -c "cd labextension && npm run --silent lint:check"
  step jest bash -c "cd labextension && npm test --silent"
fi

# The newest JupyterHub line: every Python suite. The server-extension suite runs on its own
# because pytest-jupyter's loop fixtures must not reach the others.
step pytest-jh6 .venv/bin/pytest tests --ignore=tests/server -m "not benchmark" -p no:cacheprovider \
  --junitxml="$out/pytest-jh6.xml" -o junit_suite_name=jh6
step pytest-server .venv/bin/pytest tests/server -p pytest_jupyter.jupyter_server -p no:cacheprovider \
  --junitxml="$out/pytest-server.xml" -o junit_suite_name=server

# JupyterHub 5.5.0 + KubeSpawner 7.0.0 (the zero-to-jupyterhub 4.4.0 hub image): the suites
# that import JupyterHub or KubeSpawner, and the spawn on the real control plane.
jh5_suites=()
for d in tests/auth tests/spawner tests/k8s tests/broker tests/hub tests/cluster/test_spawn_on_cluster.py; do
  [ -e "$d" ] && jh5_suites+=("$d")
done
if [ ${#jh5_suites[@]} -gt 0 ]; then
  step pytest-jh5 .venv-jh5/bin/pytest "${jh5_suites[@]}" -m "not benchmark" -p no:cacheprovider \
    --junitxml="$out/pytest-jh5.xml" -o junit_suite_name=jh5
fi

echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "dshare: failed steps: ${failed[*]}"
fi
# The closing line CI reads: every pytest run added up; fails on no test collected.
.venv/bin/python scripts/junit_summary.py "$out"/pytest-*.xml
status=$?
[ ${#failed[@]} -eq 0 ] && exit $status
exit 1

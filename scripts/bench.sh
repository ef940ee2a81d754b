#!/usr/bin/env bash
# Runs every benchmark (tests/bench/bench_*.py) and collects their tables in one report.
# Benchmarks measure; they do not pass or fail on a number. Figures go into the README.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
mkdir -p test-output
report=test-output/benchmarks.md
{
  echo "# dshare benchmarks"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(.venv/bin/python --version)"
} > "$report"
status=0
for bench in tests/bench/bench_*.py; do
  echo "=== $bench"
  { echo; echo "## $(basename "$bench" .py)"; echo; } >> "$report"
  if ! .venv/bin/python "$bench" | tee -a "$report"; then
    echo "(failed: see the output above)" >> "$report"
    status=1
  fi
done
echo
echo "report: $report"
exit $status

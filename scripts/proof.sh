#!/usr/bin/env bash
# `make proof`: the proof suite at full counts, every benchmark, and the report built from
# what they measured (docs/proof-report.md, docs/proof-summary.md). A promise that does not
# hold fails this script; the report still says which one and by how much.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

out=test-output/proof
rm -rf "$out" && mkdir -p "$out/results"
export DSHARE_PROOF_FULL=1
export DSHARE_PROOF_RESULTS=$PWD/$out/results
export DSHARE_TEST_OUTPUT=$PWD/$out

echo "=== proof suite (full counts): tests/proof"
.venv/bin/pytest tests/proof -p no:cacheprovider -q --junitxml="$out/proof.xml" \
  -o junit_suite_name=proof
tests_status=$?

echo "=== benchmarks: scripts/bench.sh"
bash scripts/bench.sh
bench_status=$?

echo "=== report"
.venv/bin/python tests/proof/report.py \
  --results "$out/results" --junit "$out/proof.xml" --bench test-output/benchmarks.md \
  --bench-status "$bench_status" --report docs/proof-report.md --summary docs/proof-summary.md
report_status=$?

if [ $tests_status -ne 0 ] || [ $bench_status -ne 0 ] || [ $report_status -ne 0 ]; then
  echo "dshare proof: FAILED (tests $tests_status, benchmarks $bench_status, report $report_status)"
  exit 1
fi
echo "dshare proof: every promise held; see docs/proof-report.md"

#!/usr/bin/env bash
# Runs the kill -9 test (tests/reliability/test_worker_crash.py) N times in a row, outside the suite,
# and prints how many passed; the output of a failed run is kept in var/worker-crash-loop/.
# Usage: tests/reliability/loop_worker_crash.sh [N]   (default 20; about 45 s a run on 2 cores)
set -uo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-20}
out=var/worker-crash-loop
mkdir -p "$out"
passed=0
for i in $(seq 1 "$runs"); do
  if .venv/bin/python -m pytest -q -p no:cacheprovider tests/reliability/test_worker_crash.py > "$out/run-$i.log" 2>&1; then
    passed=$((passed + 1))
    rm -f "$out/run-$i.log"
    echo "run $i/$runs: passed"
  else
    echo "run $i/$runs: FAILED (see $out/run-$i.log)"
  fi
done
echo "$passed passed, $((runs - passed)) failed"
[ "$passed" -eq "$runs" ]

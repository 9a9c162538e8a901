#!/usr/bin/env bash
# Runs the rebalance storm (tests/reliability/test_rebalance_storm.py, one run of it is in the suite)
# N times in a row and prints each run's figures; a failed run's output and workers' logs are kept in
# var/stress-loop/run-K/. Usage: tests/reliability/loop_stress.sh [N]   (default 10; 2-5 min a run)
set -uo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-10}
out=var/stress-loop
mkdir -p "$out"
passed=0
for i in $(seq 1 "$runs"); do
  rm -rf "$out/run-$i"
  if .venv/bin/python -m pytest -q -s -p no:cacheprovider --basetemp="$out/run-$i" \
      tests/reliability/test_rebalance_storm.py > "$out/run-$i.log" 2>&1; then
    passed=$((passed + 1))
    logs=$(find "$out/run-$i" -maxdepth 2 -name 'worker-*.log')
    said() { cat $logs /dev/null | grep -c "$1"; }
    echo "run $i/$runs: passed ($(grep -o '[0-9]* visits.*' "$out/run-$i.log")); workers said:" \
      "$(said 'a gap') gaps, $(said 'dropped the message') dropped, $(said 'stream skipped') skipped," \
      "$(said 'is read again') rewinds"
    rm -rf "$out/run-$i" "$out/run-$i.log"
  else
    echo "run $i/$runs: FAILED (see $out/run-$i.log and $out/run-$i/)"
  fi
done
echo "$passed passed, $((runs - passed)) failed"
[ "$passed" -eq "$runs" ]

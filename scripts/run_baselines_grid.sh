#!/usr/bin/env bash
# The baseline grids (issue: metric and span baselines), cheapest first. Resumable: every finished
# cell is a record under results/, and a rerun skips it. Workers may share the grid (each cell is
# claimed before it runs): on two cores, two workers with one thread each.
#   OMP_NUM_THREADS=1 nohup bash scripts/run_baselines_grid.sh > a.log 2>&1 &
#   OMP_NUM_THREADS=1 nohup bash scripts/run_baselines_grid.sh > b.log 2>&1 &
set -u
export PYTHONUNBUFFERED=1
B=${BENCH:-bench}
EXTRA=("$@")
run() { echo "== $(date -u +%FT%TZ) bench $* ${EXTRA[*]}"; $B run --quiet "$@" "${EXTRA[@]}" | grep --line-buffered -E "K=[0-9]+ seed=[0-9]+: F1|error|warning|skip" || echo "!! failed or nothing new: $*"; }
run --suite table3 --method lookup                              # no learning: seconds a cell
# Seed by seed, every method and K, so that a grid cut short leaves whole seeds to pair.
for s in 0 1 2 3 4; do
  run --suite table3 --method ProtoNet --method WPZ --k 1 --seeds $s
  run --suite table3 --method SpanNER --k 1 --seeds $s
  run --suite table6 --seeds $s
  run --suite table3 --method ProtoNet --method WPZ --method SpanNER --k 5 --seeds $s
done
echo "== $(date -u +%FT%TZ) done"

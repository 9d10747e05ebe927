#!/usr/bin/env bash
# The MFNER measurements of issue 4, the main table first. Resumable: every finished cell is a
# record under results/, and a rerun skips it. Workers may share the grid (each cell is claimed
# before it runs): on two cores, two workers with one thread each finish sooner than one worker
# with two threads. Arguments are passed to every `bench run` (e.g. --target twitter2017):
#   OMP_NUM_THREADS=1 nohup bash scripts/run_mfner_grid.sh > a.log 2>&1 &
#   OMP_NUM_THREADS=1 nohup bash scripts/run_mfner_grid.sh > b.log 2>&1 &
set -u
export PYTHONUNBUFFERED=1  # a cell's line reaches the log when it finishes, not when the run ends
B=${BENCH:-bench}
EXTRA=("$@")
run() { echo "== $(date -u +%FT%TZ) bench $* ${EXTRA[*]}"; $B run --quiet "$@" "${EXTRA[@]}" | grep --line-buffered -E "K=[0-9]+ seed=[0-9]+: F1|error|skip" || echo "!! failed or nothing new: $*"; }
run --suite table3 --method proto-frozen                      # the floor, every cell (minutes)
run --suite ablations --method "MFNER frozen"                  # frozen-encoder profile (minutes)
run --suite table3 --method MFNER --k 5                        # default profile: the main table
run --suite table3 --method MFNER --k 1
run --suite ablations --method "MFNER text only" --k 1
run --suite ablations --method "MFNER fixed denoiser" --k 1
run --suite ablations --method "MFNER text only" --k 5
run --suite ablations --method "MFNER fixed denoiser" --k 5
echo "== $(date -u +%FT%TZ) done"

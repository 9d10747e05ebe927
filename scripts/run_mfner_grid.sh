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
# The base-sized encoder, 1-shot, one seed per direction first (T15->T17: 5795 s on one thread,
# 3.5x the one-thread MiniLM cell).
run --suite table3 --method MFNER --k 1 --encoder mpnet-base --seeds 0
# The ablations seed by seed, both variants together, so that a grid cut short leaves whole seeds
# for the paired comparison with MFNER.
for k in 1 5; do
  for s in 0 1 2 3 4; do
    run --suite ablations --method "MFNER text only" --method "MFNER fixed denoiser" --k $k --seeds $s
  done
done
# More seeds of the base-sized encoder: seed 1 both directions (two workers: one takes T15->T17,
# about 97 min on one thread, the other T17->T15, about 38 min, then T17->T15 seed 2).
run --suite table3 --method MFNER --k 1 --encoder mpnet-base --seeds 1
run --suite table3 --method MFNER --k 1 --encoder mpnet-base --seeds 2 --target twitter2015
echo "== $(date -u +%FT%TZ) done"

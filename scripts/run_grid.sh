#!/usr/bin/env bash
# What the open issues measure, in the order that serves the tables best. Resumable: every finished
# cell is a record under results/, and a rerun skips it. Workers share the grid (each cell is claimed
# by a lock file before it runs): on two cores, two workers with one thread each, WORKER=a and b.
#   WORKER=a OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 nohup bash scripts/run_grid.sh > a.log 2>&1 &
#   WORKER=b OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 nohup bash scripts/run_grid.sh > b.log 2>&1 &
# The grids of earlier issues (probes, table3 at MiniLM, table6, ablations, image-text sources, full data)
# are committed; git log -- scripts/run_grid.sh shows the order they ran in.
set -u
export PYTHONUNBUFFERED=1
B=${BENCH:-bench}
W=${WORKER:-a}
EXTRA=("$@")
# --no-report: a worker leaves the reports to whoever commits (`bench report`), not a minute a call.
# Each call logs its cells' F1 lines and its count of new records; a call that fails says so with bench's exit status
# (its traceback, on stderr, goes to the log unfiltered).
run() {
  echo "== $(date -u +%FT%TZ) bench $* ${EXTRA[*]}"
  $B run --quiet --no-report "$@" "${EXTRA[@]}" |
    grep --line-buffered -E "K=[0-9]+ seed=[0-9]+: F1|resumes|error|warning|skip|record\(s\), [0-9]+ new"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then echo "!! failed (exit $rc): $*"; fi
}
# The precision issue's paired F1 checks: MFNER fast in bf16 at MiniLM (T17 -> T15, 1 shot, 5 seeds, paired
# in reports/ablations.md with MFNER and with MFNER fast in fp32), and at mpnet-base (the base suite's first
# cells, paired with the committed fp32 MFNER@mpnet-base cells, seeds 0-2).
for s in 0 1 2 3 4; do
  run --suite ablations --method "MFNER fast" --set precision=bf16 --target twitter2015 --k 1 --seeds $s
  if [ "$s" -le 2 ]; then run --suite base --method "MFNER fast" --target twitter2015 --k 1 --seeds $s; fi
done
# MFNER's choices on the source domain (probes-mfner: T15 train -> valid), worker b, while a starts the grid;
# between its 1-shot and 5-shot probes, the few-shot peers' choices (NNShot's distance, StructShot's temperature,
# CONTaiNER's support steps, decoding and Viterbi: MiniLM, under an hour in all; they share cached source training).
PEER_PROBES=(--method NNShot --method "NNShot cosine" --method "StructShot temperature=1"
  --method "StructShot temperature=10" --method "StructShot temperature=100" --method CONTaiNER
  --method "CONTaiNER no support steps" --method "CONTaiNER word by word" --method "CONTaiNER gaussian")
if [ "$W" = b ]; then
  run --suite probes-mfner --k 1
  run --suite probes "${PEER_PROBES[@]}"
  run --suite probes-mfner --k 5
  # the strongest candidate of those probes (the encoder's dropout) again at mpnet-base: 2 cells
  run --suite probes-mfner-base
fi
# The paper's claims at base size (suite base: mpnet-base, bf16, embeddings frozen). 1. T17 -> T15, the
# fair target, seed by seed so that a grid cut short leaves whole seeds to pair; 1 shot, then 5 shots.
# NNShot and StructShot (the few-shot peers) load the transfer row's cached source tagger: a cell is its test episodes.
ROWS=(--method "MFNER fast" --method ProtoNet --method WPZ --method SpanNER --method "BERT+CRF transfer" --method BERT+CRF
  --method NNShot --method StructShot)
for s in 0 1 2 3 4; do run --suite base "${ROWS[@]}" --target twitter2015 --k 1 --seeds $s; done
# 2. MFNER's ablations (Tables 4 and 5) and 3. Table 6, T17 -> T15, 1 shot.
for s in 0 1 2 3 4; do
  run --suite base --method "MFNER fast text only" --method "MFNER fast fixed denoiser" --target twitter2015 --k 1 --seeds $s
  run --suite base --method "ProtoNet text+image" --method "WPZ text+image" --method "SpanNER text+image" --target twitter2015 --k 1 --seeds $s
done
for s in 0 1 2 3 4; do run --suite base "${ROWS[@]}" --target twitter2015 --k 5 --seeds $s; done
# The few-shot peers (NNShot, StructShot share BERT+CRF transfer's cached source tagger; CONTaiNER trains its
# own): their probes (above, or here if worker b has not run them), then table3 at MiniLM (about 6.5 h: it
# completes their issue, so it goes before items 5 and 4; its cells are minutes long, so a session's end cuts little).
run --suite probes "${PEER_PROBES[@]}"
for s in 0 1 2 3 4; do run --suite table3 --method NNShot --method StructShot --method CONTaiNER --seeds $s; done
# 5. The full-data ceiling at base size (3 cells of about 1.3 h, each one source training), before item 4,
# which is long and runs as far as compute allows.
run --suite fulldata-base
# 4. T15 -> T17 (824 source episodes: about 2.7x a T17 -> T15 cell), 1 shot then 5 shots.
for s in 0 1 2 3 4; do run --suite base "${ROWS[@]}" --target twitter2017 --k 1 --seeds $s; done
for s in 0 1 2 3 4; do run --suite base "${ROWS[@]}" --target twitter2017 --k 5 --seeds $s; done
echo "== $(date -u +%FT%TZ) done"

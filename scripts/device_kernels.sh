#!/usr/bin/env bash
# One prepared run for a lent GPU machine (see the device tool's README): the CRF tests on CUDA,
# a BLOCK_B sweep of the Triton kernels at (1024, 64, 9), then the kernels suite. Everything it
# writes lands in $OUT: results/kernels-cuda.json, reports/kernels.md and the logs.
#
# Before the call, here: `echo /.whl/ >> .git/info/exclude` and download pytorch-crf's wheel
# (pip download --no-deps -d .whl pytorch-crf==0.7.2); carry .whl.
# The call: run(command="bash scripts/device_kernels.sh", carry=[".whl"], timeout_s=420)
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name(0))" | tee "$OUT/env.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_crf.py tests/test_crf_triton.py 2>&1 | tail -5 | tee "$OUT/pytest.log"
python3 - <<'PY' 2>&1 | tee "$OUT/block_sweep.txt"
import os, torch
from bench.kernels import make_inputs, time_fn
x = make_inputs(1024, 64, 9, "cuda")
args = (x["emissions"], x["mask"], x["transitions"], x["start"], x["end"])
for bb in (1, 2, 4, 8, 16, 32):
    os.environ["MFNER_TRITON_BLOCK_B"] = str(bb)
    from mfner import crf_triton
    lz = time_fn(lambda: crf_triton.log_partition(*args), "cuda", 50)
    vt = time_fn(lambda: crf_triton.viterbi(*args), "cuda", 50)
    print(f"BLOCK_B={bb:2d}  log_partition {lz:.4f} ms  viterbi {vt:.4f} ms")
PY
unset MFNER_TRITON_BLOCK_B
mkdir -p "$OUT/res"
python3 -m bench.cli run --suite kernels --device cuda --results-dir "$OUT/res" 2>&1 | tee "$OUT/kernels.log"
cp reports/kernels.md "$OUT/" 2>/dev/null

"""pytest-benchmark micro-benchmarks of the CRF kernels beside pytorch-crf.

Run with timings: ``pytest tests/test_bench_kernels.py --benchmark-enable``. In the normal test
run benchmarks are disabled (each body runs once), so these double as smoke tests.
"""

import pytest
import torch

from bench.kernels import _ours, _peer, make_inputs

SIZE = (256, 64, 9)


@pytest.fixture(scope="module")
def inputs():
    return make_inputs(*SIZE, device="cpu")


@pytest.mark.parametrize("impl", ["auto", "reference", "pytorch-crf"])
@pytest.mark.parametrize("op", ["log-partition", "llh forward", "llh forward+backward", "viterbi"])
def test_kernel(benchmark, inputs, impl, op):
    pytest.importorskip("torchcrf")
    fns = _peer(inputs) if impl == "pytorch-crf" else _ours(inputs, impl)
    benchmark.group = f"{op} {SIZE}"
    out = benchmark(fns[op])
    if op in ("log-partition", "llh forward"):
        assert torch.isfinite(out).all()

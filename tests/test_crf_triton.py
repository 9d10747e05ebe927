"""The Triton kernels against the reference loop: on the GPU if there is one, else in the interpreter.

Triton reads TRITON_INTERPRET when a kernel is defined, so without a GPU the checks run in a
child process that sets it (slow per element, so sizes are small).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton")

ROOT = Path(__file__).resolve().parent.parent

CHECK = r"""
import json, sys, torch
from fewshot_ner import crf
from tests.test_crf import random_batch
device = sys.argv[1]
out = []
for b, length, n_tags, seed in [(5, 6, 3, 1), (19, 9, 9, 2), (3, 5, 37, 3)]:
    em, mask, trans, start, end = (x.float().to(device) for x in random_batch(b, length, n_tags, seed=seed))
    mask = mask.bool()
    row = {"size": [b, length, n_tags]}
    ref = crf.log_partition(em, mask, trans, start, end, impl="reference")
    row["logz"] = (ref - crf.log_partition(em, mask, trans, start, end, impl="triton")).abs().max().item()
    p_ref, s_ref = crf.viterbi(em, mask, trans, start, end, impl="reference")
    p_tri, s_tri = crf.viterbi(em, mask, trans, start, end, impl="triton")
    row["paths_equal"] = bool(torch.equal(p_ref, p_tri))
    row["score"] = (s_ref - s_tri).abs().max().item()
    grads = {}
    for impl in ("reference", "triton"):
        ins = [x.clone().requires_grad_(True) for x in (em, trans, start, end)]
        w = torch.linspace(-1, 2, b, device=device)
        (crf.log_partition(ins[0], mask, *ins[1:], impl=impl) * w).sum().backward()
        grads[impl] = [x.grad for x in ins]
    row["grads"] = [(a - b).abs().max().item() for a, b in zip(grads["reference"], grads["triton"])]
    out.append(row)
print(json.dumps(out))
"""


def _run_checks() -> list[dict]:
    if torch.cuda.is_available():
        env, device = dict(os.environ), "cuda"
    else:
        env, device = dict(os.environ, TRITON_INTERPRET="1"), "cpu"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", CHECK, device], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def results():
    return _run_checks()


def test_log_partition_matches_reference(results):
    for row in results:
        assert row["logz"] < 1e-4, row


def test_viterbi_paths_and_scores_match_reference(results):
    for row in results:
        assert row["paths_equal"] and row["score"] < 1e-4, row


def test_gradients_match_reference(results):
    for row in results:
        assert max(row["grads"]) < 1e-4, row


def test_triton_is_not_chosen_on_cpu_without_the_interpreter():
    from fewshot_ner import crf

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert crf._backend(torch.zeros(1, 1, 1), "auto").__name__ == "fewshot_ner.crf_numba"

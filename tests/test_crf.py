"""The CRF against brute-force enumeration, pytorch-crf, autograd and its own error messages."""

import itertools

import pytest
import torch

from fewshot_ner import crf, crf_numba
from fewshot_ner.crf import LinearChainCRF, check_inputs, gold_score, log_partition, marginals, nll, viterbi

IMPLS = ["reference"] + (["numba"] if crf_numba.available() else [])


def random_batch(b=5, length=4, n_tags=3, seed=0, dtype=torch.float64, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    em = torch.randn(b, length, n_tags, generator=g, dtype=dtype) * scale
    lengths = torch.randint(1, length + 1, (b,), generator=g)
    lengths[0] = length
    lengths[-1] = 1
    mask = torch.arange(length)[None] < lengths[:, None]
    trans = torch.randn(n_tags, n_tags, generator=g, dtype=dtype) * scale
    start = torch.randn(n_tags, generator=g, dtype=dtype)
    end = torch.randn(n_tags, generator=g, dtype=dtype)
    return em, mask, trans, start, end


def path_score(em, trans, start, end, path):
    s = start[path[0]] + end[path[-1]] + sum(em[i, p] for i, p in enumerate(path))
    return s + sum(trans[a, b] for a, b in itertools.pairwise(path))


def brute_force(em, mask, trans, start, end):
    """log Z, best path, best score and marginals of each sequence by enumerating all paths."""
    out = []
    n_tags = em.size(-1)
    for b in range(em.size(0)):
        n = int(mask[b].sum())
        paths = list(itertools.product(range(n_tags), repeat=n))
        scores = torch.stack([path_score(em[b], trans, start, end, p) for p in paths])
        log_z = torch.logsumexp(scores, 0)
        probs = (scores - log_z).exp()
        marg = torch.zeros(em.size(1), n_tags, dtype=em.dtype)
        for p, pr in zip(paths, probs, strict=True):
            for i, tag in enumerate(p):
                marg[i, tag] += pr
        best = int(scores.argmax())
        out.append((log_z, list(paths[best]), scores[best], marg))
    return out


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_brute_force(impl, seed):
    em, mask, trans, start, end = random_batch(seed=seed)
    truth = brute_force(em, mask, trans, start, end)
    log_z = log_partition(em, mask, trans, start, end, impl=impl)
    paths, scores = viterbi(em, mask, trans, start, end, impl=impl)
    marg = marginals(em, mask, trans, start, end)
    for b, (z, path, score, m) in enumerate(truth):
        n = len(path)
        assert log_z[b].item() == pytest.approx(z.item(), abs=1e-9)
        assert paths[b, :n].tolist() == path and (paths[b, n:] == -1).all()
        assert scores[b].item() == pytest.approx(score.item(), abs=1e-9)
        assert torch.allclose(marg[b], m, atol=1e-9)
        assert torch.allclose(marg[b, :n].sum(-1), torch.ones(n, dtype=em.dtype))


@pytest.mark.parametrize("impl", IMPLS)
def test_counting_all_zero_scores_gives_t_to_the_l_paths(impl):
    em = torch.zeros(3, 5, 4, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    z = torch.zeros(4, dtype=torch.float64)
    log_z = log_partition(em, mask, torch.zeros(4, 4, dtype=torch.float64), z, z, impl=impl)
    assert torch.allclose(
        log_z, torch.tensor([5.0, 2.0, 1.0], dtype=torch.float64) * torch.log(torch.tensor(4.0, dtype=torch.float64))
    )


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("b", "length", "n_tags"), [(7, 9, 5), (16, 30, 9), (4, 12, 37)])
def test_agrees_with_pytorch_crf(impl, b, length, n_tags):
    torchcrf = pytest.importorskip("torchcrf")
    em, mask, trans, start, end = random_batch(b, length, n_tags, seed=b, dtype=torch.float32)
    tags = torch.randint(0, n_tags, (b, length), generator=torch.Generator().manual_seed(1))
    peer = torchcrf.CRF(n_tags, batch_first=True)
    with torch.no_grad():
        peer.transitions.copy_(trans)
        peer.start_transitions.copy_(start)
        peer.end_transitions.copy_(end)
        expected_llh = peer(em, tags, mask, reduction="none")
        expected_paths = peer.decode(em, mask)
    ours = -nll(em, mask, tags, trans, start, end, reduction="none", impl=impl)
    assert torch.allclose(ours, expected_llh, atol=1e-4, rtol=1e-5)
    paths, _ = viterbi(em, mask, trans, start, end, impl=impl)
    assert [p[p >= 0].tolist() for p in paths] == expected_paths


@pytest.mark.parametrize("impl", IMPLS)
def test_gradcheck_nll_float64(impl):
    em, mask, trans, start, end = random_batch(4, 5, 3, seed=3)
    tags = torch.randint(0, 3, (4, 5), generator=torch.Generator().manual_seed(0))
    inputs = tuple(x.clone().requires_grad_(True) for x in (em, trans, start, end))

    def fn(e, tr, s, en):
        return nll(e, mask, tags, tr, s, en, reduction="sum", impl=impl)

    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_fast_path_gradients_equal_reference(scale):
    if not crf_numba.available():
        pytest.skip("numba missing")
    em, mask, trans, start, end = random_batch(6, 11, 5, seed=4, scale=scale)
    weights = torch.randn(6, dtype=torch.float64)
    grads = {}
    for impl in ("reference", "numba"):
        inputs = [x.clone().requires_grad_(True) for x in (em, trans, start, end)]
        (log_partition(inputs[0], mask, *inputs[1:], impl=impl) * weights).sum().backward()
        grads[impl] = [x.grad for x in inputs]
    for ref, fast in zip(grads["reference"], grads["numba"], strict=True):
        assert torch.allclose(ref, fast, atol=1e-9)


@pytest.mark.parametrize("impl", IMPLS)
def test_extreme_ranges_stay_finite(impl):
    em, mask, trans, start, end = random_batch(4, 8, 5, seed=5, scale=400.0)
    trans[0, 1] = -1e4  # a forbidden transition, as constrained CRFs write them
    ref = log_partition(em, mask, trans, start, end, impl="reference")
    assert torch.isfinite(ref).all()
    assert torch.allclose(log_partition(em, mask, trans, start, end, impl=impl), ref, rtol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_batched_equals_one_by_one_and_no_mask_equals_full_mask(impl):
    em, mask, trans, start, end = random_batch(6, 7, 4, seed=6)
    batched = log_partition(em, mask, trans, start, end, impl=impl)
    paths, _ = viterbi(em, mask, trans, start, end, impl=impl)
    for b in range(6):
        n = int(mask[b].sum())
        one = log_partition(em[b : b + 1, :n], None, trans, start, end, impl=impl)
        assert torch.allclose(one, batched[b : b + 1])
        assert viterbi(em[b : b + 1, :n], None, trans, start, end, impl=impl)[0][0].tolist() == paths[b, :n].tolist()
    full = torch.ones(6, 7, dtype=torch.bool)
    assert torch.equal(
        log_partition(em, None, trans, start, end, impl=impl), log_partition(em, full, trans, start, end, impl=impl)
    )


def test_nll_reductions_and_gold_score():
    em, mask, trans, start, end = random_batch(5, 4, 3, seed=7)
    tags = torch.randint(0, 3, (5, 4), generator=torch.Generator().manual_seed(2))
    per = nll(em, mask, tags, trans, start, end, reduction="none")
    assert torch.allclose(nll(em, mask, tags, trans, start, end, reduction="sum"), per.sum())
    assert torch.allclose(nll(em, mask, tags, trans, start, end, reduction="mean"), per.mean())
    assert torch.allclose(nll(em, mask, tags, trans, start, end, reduction="token_mean"), per.sum() / mask.sum())
    for b in range(5):
        n = int(mask[b].sum())
        expected = path_score(em[b], trans, start, end, tags[b, :n].tolist())
        assert gold_score(em, mask, tags, trans, start, end)[b].item() == pytest.approx(expected.item())
    with pytest.raises(ValueError, match="reduction must be"):
        nll(em, mask, tags, trans, start, end, reduction="avg")


def test_marginals_keep_the_graph_for_a_loss_on_them():
    em, mask, trans, start, end = random_batch(3, 4, 3, seed=8)
    em.requires_grad_(True)
    loss = marginals(em, mask, trans, start, end)[:, :, 0].sum()
    loss.backward()
    assert em.grad is not None and em.grad.abs().sum() > 0


E, M, TR, ST, EN = random_batch(2, 3, 4, dtype=torch.float32)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((E[0], M, TR, ST, EN), r"emissions must have shape \(B, L, T\), got \(3, 4\)"),
        ((E, M, TR[:3], ST, EN), r"expected transitions of shape \(4, 4\), got \(3, 4\)"),
        ((E, M, TR, ST[:2], EN), r"expected start of shape \(4,\), got \(2,\)"),
        ((E, M, TR.double(), ST, EN), "transitions dtype torch.float64 differs from emissions dtype torch.float32"),
        ((E, M[:, :2], TR, ST, EN), r"expected mask of shape \(2, 3\), got \(2, 2\)"),
        ((E, M.long(), TR, ST, EN), "mask must be bool"),
        ((E, torch.tensor([[1, 1, 1], [0, 0, 0]], dtype=torch.bool), TR, ST, EN), "needs a True first element"),
        ((E, torch.tensor([[1, 0, 1], [1, 1, 1]], dtype=torch.bool), TR, ST, EN), "right-padded"),
        ((E.long(), M, TR, ST, EN), "emissions must be floating point"),
    ],
)
def test_input_errors_show_shapes(args, message):
    with pytest.raises(ValueError, match=message):
        check_inputs(*args)


def test_tag_out_of_range_is_an_error():
    tags = torch.tensor([[0, 1, 4], [0, 0, 0]])
    with pytest.raises(ValueError, match=r"tag ids must lie in \[0, 4\), got min 0 max 4"):
        nll(E, torch.ones(2, 3, dtype=torch.bool), tags, TR, ST, EN)


def test_unknown_impl_is_an_error():
    with pytest.raises(ValueError, match="impl must be"):
        log_partition(E, None, TR, ST, EN, impl="cuda-magic")


def test_linear_chain_module_trains_towards_gold():
    torch.manual_seed(0)
    module = LinearChainCRF(3)
    em = torch.zeros(1, 4, 3)
    tags = torch.tensor([[0, 1, 2, 0]])
    opt = torch.optim.Adam(module.parameters(), lr=0.1)
    for _ in range(100):
        opt.zero_grad()
        module(em, tags).backward()
        opt.step()
    assert module.decode(em).tolist() == tags.tolist()
    assert crf is not None


def test_numba_serial_and_parallel_kernels_agree_exactly():
    if not crf_numba.available():
        pytest.skip("numba missing")
    em, mask, trans, start, end = random_batch(crf_numba.PARALLEL_MIN_BATCH + 3, 12, 5, seed=9, dtype=torch.float32)
    args = (em.numpy(), mask.sum(1).numpy(), trans.numpy(), start.numpy(), end.numpy())
    for a, b in zip(crf_numba._viterbi.serial(*args), crf_numba._viterbi.parallel(*args), strict=True):
        assert (a == b).all()
    exp_trans, shift = crf_numba._exp_trans(trans)
    fb = (em.numpy(), args[1], trans.numpy(), exp_trans, shift, start.numpy(), end.numpy())
    for a, b in zip(crf_numba._forward_backward.serial(*fb), crf_numba._forward_backward.parallel(*fb), strict=True):
        assert (a == b).all()


def test_parallel_numba_kernels_leave_torchs_thread_count_alone():
    import torch

    from fewshot_ner import crf_numba
    from fewshot_ner.crf import log_partition

    if not crf_numba.available():
        pytest.skip("numba is not installed")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        e = torch.randn(crf_numba.PARALLEL_MIN_BATCH, 6, 4, dtype=torch.float64)
        log_partition(
            e,
            None,
            torch.randn(4, 4, dtype=torch.float64),
            torch.zeros(4, dtype=torch.float64),
            torch.zeros(4, dtype=torch.float64),
            impl="numba",
        )
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("batch", [2, 64])
def test_numbas_first_call_leaves_one_thread_one_thread(batch):
    """In a fresh process with OMP_NUM_THREADS=1, numba's first kernel (serial or parallel) used to
    set torch to numba's thread count (all cores): every MFNER cell ran its encoder on 2 threads."""
    import os
    import subprocess
    import sys

    from fewshot_ner import crf_numba

    if not crf_numba.available():
        pytest.skip("numba is not installed")
    code = (
        "import torch\nfrom fewshot_ner.crf import nll\n"
        f"e = torch.randn({batch}, 5, 3)\n"
        f"nll(e, None, torch.zeros({batch}, 5, dtype=torch.long), torch.zeros(3, 3), torch.zeros(3), torch.zeros(3), impl='numba')\n"
        "print(torch.get_num_threads())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_NUM_THREADS"} | {"OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"

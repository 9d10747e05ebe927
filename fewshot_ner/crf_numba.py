"""CPU fast path of the CRF: numba-compiled loops, parallel over the batch.

Each sequence runs its whole time loop in compiled code, so the per-step cost is arithmetic,
not a chain of tensor-op launches. Log-sum-exp steps rescale by the running maximum (T exps and
one log-sum per step, with ``exp(transitions)`` computed once), so results match the log-space
reference to rounding for any input range. Gradients come from a forward-backward pass in the
same style, wrapped in a ``torch.autograd.Function``.

Everything here is optional: without numba, ``available()`` is False and ``fewshot_ner.crf`` uses the
reference loop.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

try:
    import numba
    from numba import njit, prange
except ImportError:  # pragma: no cover - exercised only where numba is missing
    njit = None


def available() -> bool:
    return njit is not None


PARALLEL_MIN_BATCH = 64  # below this, threads cost more than they give (MFNER's episodes are small)


class _BatchKernel:
    """One kernel compiled twice: parallel over the batch for large batches, serial for small ones.

    Every sequence is computed the same way in both, so the results are identical.
    """

    def __init__(self, fn) -> None:
        self.parallel = njit(parallel=True, cache=True)(fn)
        self.serial = njit(cache=True)(fn)

    def __call__(self, *args):
        # numba's OpenMP layer shares torch's runtime: its first call (serial or parallel) sets the
        # runtime to numba's thread count (all cores) and would leave torch there. Run with torch's
        # count and put it back either way, so OMP_NUM_THREADS=1 stays one thread for the encoder.
        threads = torch.get_num_threads()
        try:
            if args[0].shape[0] < PARALLEL_MIN_BATCH:
                return self.serial(*args)
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            return self.parallel(*args)
        finally:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)


if njit is not None:

    @njit(cache=True, inline="always")
    def _lse_step(prev, exp_trans, trans_max, out):  # pragma: no cover - compiled
        """out[j] = log sum_i exp(prev[i] + trans[i, j]), with exp_trans = exp(trans - trans_max)."""
        n_tags = prev.shape[0]
        m = prev[0]
        for i in range(1, n_tags):
            if prev[i] > m:
                m = prev[i]
        for j in range(n_tags):
            out[j] = 0.0
        for i in range(n_tags):
            w = math.exp(prev[i] - m)
            for j in range(n_tags):
                out[j] += w * exp_trans[i, j]
        for j in range(n_tags):
            out[j] = math.log(out[j]) + m + trans_max

    @_BatchKernel
    def _forward(em, lengths, exp_trans, trans_max, start, end):  # pragma: no cover - compiled
        """log Z per sequence: em (B, L, T), lengths (B,) -> (B,)."""
        batch, _, n_tags = em.shape
        out = np.empty(batch, em.dtype)
        for b in prange(batch):
            alpha = np.empty(n_tags, em.dtype)
            nxt = np.empty(n_tags, em.dtype)
            for j in range(n_tags):
                alpha[j] = start[j] + em[b, 0, j]
            for t in range(1, lengths[b]):
                _lse_step(alpha, exp_trans, trans_max, nxt)
                for j in range(n_tags):
                    alpha[j] = nxt[j] + em[b, t, j]
            m = alpha[0] + end[0]
            for j in range(1, n_tags):
                m = max(m, alpha[j] + end[j])
            s = 0.0
            for j in range(n_tags):
                s += math.exp(alpha[j] + end[j] - m)
            out[b] = math.log(s) + m
        return out

    @_BatchKernel
    def _forward_scaled(x, x_max, lengths, exp_trans, trans_max, start, end, em0):  # pragma: no cover - compiled
        """log Z in the probability domain with per-step normalisation (the fast forward).

        x = exp(em - x_max) (B, L, T) and x_max (B, L) come from one vectorised op outside; each step
        is then T^2 multiply-adds and one log. A sequence whose normaliser underflows is flagged
        (NaN) for the log-space kernel to redo.
        """
        batch, _, n_tags = x.shape
        out = np.empty(batch, np.float64)
        for b in prange(batch):
            alpha = np.empty(n_tags, np.float64)
            nxt = np.empty(n_tags, np.float64)
            c = start[0] + em0[b, 0]
            for j in range(1, n_tags):
                c = max(c, start[j] + em0[b, j])
            s = 0.0
            for j in range(n_tags):
                alpha[j] = math.exp(start[j] + em0[b, j] - c)
                s += alpha[j]
            log_c = c + math.log(s)
            for j in range(n_tags):
                alpha[j] /= s
            for t in range(1, lengths[b]):
                for j in range(n_tags):
                    nxt[j] = 0.0
                for i in range(n_tags):
                    a = alpha[i]
                    for j in range(n_tags):
                        nxt[j] += a * exp_trans[i, j]
                s = 0.0
                for j in range(n_tags):
                    nxt[j] *= x[b, t, j]
                    s += nxt[j]
                if not s > 1e-280:
                    log_c = math.nan
                    break
                inv = 1.0 / s
                for j in range(n_tags):
                    alpha[j] = nxt[j] * inv
                log_c += math.log(s) + x_max[b, t] + trans_max
            m = end[0]
            for j in range(1, n_tags):
                m = max(m, end[j])
            z = 0.0
            for j in range(n_tags):
                z += alpha[j] * math.exp(end[j] - m)
            out[b] = log_c + math.log(z) + m if z > 0.0 else math.nan
        return out

    @_BatchKernel
    def _forward_backward(em, lengths, trans, exp_trans, trans_max, start, end):  # pragma: no cover - compiled
        """log Z (B,), marginals (B, L, T), expected transition counts (B, T, T)."""
        batch, length, n_tags = em.shape
        log_z = np.empty(batch, em.dtype)
        marg = np.zeros((batch, length, n_tags), em.dtype)
        counts = np.zeros((batch, n_tags, n_tags), em.dtype)
        exp_trans_t = exp_trans.T.copy()
        for b in prange(batch):
            n = lengths[b]
            alpha = np.empty((n, n_tags), em.dtype)
            beta = np.empty((n, n_tags), em.dtype)
            tmp = np.empty(n_tags, em.dtype)
            for j in range(n_tags):
                alpha[0, j] = start[j] + em[b, 0, j]
            for t in range(1, n):
                _lse_step(alpha[t - 1], exp_trans, trans_max, tmp)
                for j in range(n_tags):
                    alpha[t, j] = tmp[j] + em[b, t, j]
            for j in range(n_tags):
                beta[n - 1, j] = end[j]
            for t in range(n - 2, -1, -1):
                for j in range(n_tags):
                    tmp[j] = em[b, t + 1, j] + beta[t + 1, j]
                _lse_step(tmp, exp_trans_t, trans_max, beta[t])
            m = alpha[n - 1, 0] + end[0]
            for j in range(1, n_tags):
                m = max(m, alpha[n - 1, j] + end[j])
            s = 0.0
            for j in range(n_tags):
                s += math.exp(alpha[n - 1, j] + end[j] - m)
            z = math.log(s) + m
            log_z[b] = z
            for t in range(n):
                for j in range(n_tags):
                    marg[b, t, j] = math.exp(alpha[t, j] + beta[t, j] - z)
            a_w = np.empty(n_tags, np.float64)
            v_w = np.empty(n_tags, np.float64)
            for t in range(1, n):
                # xi[i, j] = exp(alpha[t-1, i] + trans[i, j] + em[t, j] + beta[t, j] - z), factored into
                # A[i] * exp_trans[i, j] * V[j] * exp(shift): 2T exps a step instead of T^2.
                ma = alpha[t - 1, 0]
                mv = em[b, t, 0] + beta[t, 0]
                for i in range(1, n_tags):
                    ma = max(ma, alpha[t - 1, i])
                    mv = max(mv, em[b, t, i] + beta[t, i])
                shift = ma + mv + trans_max - z
                if shift > 600.0:  # the factors would overflow: take every exp directly
                    for i in range(n_tags):
                        for j in range(n_tags):
                            counts[b, i, j] += math.exp(alpha[t - 1, i] + trans[i, j] + em[b, t, j] + beta[t, j] - z)
                    continue
                scale = math.exp(shift)
                for i in range(n_tags):
                    a_w[i] = math.exp(alpha[t - 1, i] - ma) * scale
                    v_w[i] = math.exp(em[b, t, i] + beta[t, i] - mv)
                for i in range(n_tags):
                    for j in range(n_tags):
                        counts[b, i, j] += a_w[i] * exp_trans[i, j] * v_w[j]
        return log_z, marg, counts

    @_BatchKernel
    def _viterbi(em, lengths, trans, start, end):  # pragma: no cover - compiled
        """Best scores (B,) and paths (B, L), -1 where padded; back-pointers kept per sequence."""
        batch, length, n_tags = em.shape
        path = np.full((batch, length), -1, np.int64)
        scores = np.empty(batch, em.dtype)
        for b in prange(batch):
            n = lengths[b]
            pointers = np.empty((n, n_tags), np.int64)
            delta = np.empty(n_tags, em.dtype)
            nxt = np.empty(n_tags, em.dtype)
            for j in range(n_tags):
                delta[j] = start[j] + em[b, 0, j]
            for t in range(1, n):
                for j in range(n_tags):
                    best = delta[0] + trans[0, j]
                    arg = 0
                    for i in range(1, n_tags):
                        v = delta[i] + trans[i, j]
                        if v > best:
                            best = v
                            arg = i
                    nxt[j] = best + em[b, t, j]
                    pointers[t, j] = arg
                for j in range(n_tags):
                    delta[j] = nxt[j]
            best = delta[0] + end[0]
            arg = 0
            for j in range(1, n_tags):
                v = delta[j] + end[j]
                if v > best:
                    best = v
                    arg = j
            scores[b] = best
            path[b, n - 1] = arg
            for t in range(n - 1, 0, -1):
                arg = pointers[t, arg]
                path[b, t - 1] = arg
        return scores, path


def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _exp_trans(transitions: Tensor) -> tuple[np.ndarray, float]:
    trans = _np(transitions)
    finite = trans[np.isfinite(trans)]
    shift = float(finite.max()) if finite.size else 0.0
    return np.exp(trans - shift), shift


def _fast_forward(
    emissions: Tensor, lengths: Tensor, exp_trans: np.ndarray, shift: float, start: np.ndarray, end: np.ndarray
) -> np.ndarray:
    """The scaled forward, with the log-space kernel redoing any sequence that underflowed."""
    em_t = emissions.detach()
    x_max = em_t.amax(-1, keepdim=True)  # (B, L, 1)
    x = torch.sub(em_t, x_max).exp_()  # (B, L, T) in (0, 1]
    em = _np(em_t)
    lens = _np(lengths)
    log_z = _forward_scaled(_np(x), _np(x_max.squeeze(-1)), lens, exp_trans, shift, start, end, em[:, 0])
    bad = np.isnan(log_z)
    if bad.any():
        log_z[bad] = _forward(em[bad], lens[bad], exp_trans, shift, start, end)
    return log_z.astype(em.dtype)


class _LogPartition(torch.autograd.Function):
    @staticmethod
    def forward(ctx, emissions: Tensor, lengths: Tensor, transitions: Tensor, start: Tensor, end: Tensor) -> Tensor:  # type: ignore[override]
        exp_trans, shift = _exp_trans(transitions)
        em, lens, st, en = _np(emissions), _np(lengths), _np(start), _np(end)
        if any(ctx.needs_input_grad):
            log_z, marg, counts = _forward_backward(em, lens, _np(transitions), exp_trans, shift, st, en)
            ctx.save_for_backward(torch.from_numpy(marg), torch.from_numpy(counts), lengths)
        else:
            log_z = _fast_forward(emissions, lengths, exp_trans, shift, st, en)
        return torch.from_numpy(log_z)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        marg, counts, lengths = ctx.saved_tensors  # (B, L, T), (B, T, T), (B,)
        grad_em = grad[:, None, None] * marg
        grad_trans = torch.einsum("b,bij->ij", grad, counts)
        grad_start = grad @ marg[:, 0]
        last = marg[torch.arange(marg.size(0)), lengths - 1]  # (B, T)
        grad_end = grad @ last
        return grad_em, None, grad_trans, grad_start, grad_end


def log_partition(emissions: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """log Z ``(B,)`` for right-padded ``mask``; differentiable in emissions, transitions, start, end."""
    return _LogPartition.apply(emissions, mask.sum(1), transitions, start, end)


def viterbi(emissions: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor) -> tuple[Tensor, Tensor]:
    scores, path = _viterbi(_np(emissions), _np(mask.sum(1)), _np(transitions), _np(start), _np(end))
    return torch.from_numpy(path), torch.from_numpy(scores)

"""GPU fast path of the CRF: Triton kernels whose whole time loop runs inside one launch.

At the benchmark sizes the GPU is launch-bound (a (1024, 64, 9) batch is 2.4 MB), so a loop of
tensor ops over time costs one launch per step. Here one program takes ``BLOCK_B`` sequences and
walks all their steps in registers: the forward kernel (log semiring, optionally keeping the
alphas for the gradient), the backward kernel (beta recursion, marginals and expected transition
counts) and the Viterbi kernel (max semiring, back-pointers written to global memory and the
back-trace done in the same program). Tags are padded to a power of two with a large negative
score, so every score must be finite (use a large negative number, not -inf, to forbid a
transition).

Kernels are checked against the reference loop in the tests, on the GPU where there is one and in
Triton's interpreter (``TRITON_INTERPRET=1``) on the CPU.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised only where triton is missing
    triton = None

NEG = -1e30  # the score of a padded tag: finite, so max/exp never see inf - inf


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def available() -> bool:
    """Triton importable and a CUDA device (or the interpreter) to run on."""
    return triton is not None and (torch.cuda.is_available() or interpreting())


if triton is not None:

    @triton.jit
    def _tile(len_ptr, trans_ptr, B, T, stride_b, BLOCK_B: tl.constexpr, TP: tl.constexpr):
        """This program's sequences and tags: indices, masks, lengths, padded transitions, row offsets."""
        rb = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)  # (BB,)
        rt = tl.arange(0, TP)  # (TP,)
        bmask = rb < B
        tmask = rt < T
        m2 = bmask[:, None] & tmask[None, :]  # (BB, TP)
        lens = tl.load(len_ptr + rb, mask=bmask, other=1)
        trans = tl.load(
            trans_ptr + rt[:, None] * T + rt[None, :], mask=tmask[:, None] & tmask[None, :], other=NEG
        )  # (TP, TP)
        row = rb[:, None] * stride_b + rt[None, :]  # (BB, TP) offsets of step 0
        return rb, rt, bmask, m2, lens, trans, row

    @triton.jit
    def _vector(ptr, T, TP: tl.constexpr):
        """A (T,) score vector padded to (TP,) with NEG."""
        rt = tl.arange(0, TP)
        return tl.load(ptr + rt, mask=rt < T, other=NEG)

    @triton.jit
    def _forward_kernel(
        em_ptr, len_ptr, trans_ptr, start_ptr, end_ptr, out_ptr, alpha_ptr,
        B, T, stride_b, stride_l, max_len,
        STORE_ALPHA: tl.constexpr, BLOCK_B: tl.constexpr, TP: tl.constexpr,
    ):  # fmt: skip
        rb, rt, bmask, m2, lens, trans, row = _tile(len_ptr, trans_ptr, B, T, stride_b, BLOCK_B, TP)
        start = _vector(start_ptr, T, TP)
        end = _vector(end_ptr, T, TP)
        alpha = start[None, :] + tl.load(em_ptr + row, mask=m2, other=NEG).to(tl.float32)  # (BB, TP)
        if STORE_ALPHA:
            tl.store(alpha_ptr + (rb[:, None] * max_len) * TP + rt[None, :], alpha, mask=bmask[:, None])
        for t in range(1, max_len):
            e = tl.load(em_ptr + row + t * stride_l, mask=m2 & (t < lens)[:, None], other=NEG).to(tl.float32)
            s = alpha[:, :, None] + trans[None, :, :]  # (BB, TP_from, TP_to)
            m = tl.max(s, axis=1)  # (BB, TP)
            nxt = m + tl.log(tl.sum(tl.exp(s - m[:, None, :]), axis=1)) + e
            alpha = tl.where((t < lens)[:, None], nxt, alpha)
            if STORE_ALPHA:
                tl.store(alpha_ptr + (rb[:, None] * max_len + t) * TP + rt[None, :], alpha, mask=bmask[:, None])
        final = alpha + end[None, :]
        mx = tl.max(final, axis=1)
        log_z = mx + tl.log(tl.sum(tl.exp(final - mx[:, None]), axis=1))
        tl.store(out_ptr + rb, log_z, mask=bmask)

    @triton.jit
    def _backward_kernel(
        em_ptr, len_ptr, trans_ptr, end_ptr, alpha_ptr, logz_ptr, grad_ptr,
        gem_ptr, gtrans_ptr, gstart_ptr, gend_ptr,
        B, T, stride_b, stride_l, max_len,
        BLOCK_B: tl.constexpr, TP: tl.constexpr,
    ):  # fmt: skip
        """Beta recursion from each sequence's end; writes grad * marginals and accumulates counts."""
        rb, rt, bmask, m2, lens, trans, row = _tile(len_ptr, trans_ptr, B, T, stride_b, BLOCK_B, TP)
        end = _vector(end_ptr, T, TP)
        log_z = tl.load(logz_ptr + rb, mask=bmask, other=0.0)
        g = tl.load(grad_ptr + rb, mask=bmask, other=0.0)  # (BB,) upstream gradient
        beta = tl.zeros((BLOCK_B, TP), tl.float32) + end[None, :]  # beta at each sequence's last step
        counts = tl.zeros((TP, TP), tl.float32)
        gend = tl.zeros((TP,), tl.float32)
        for step in range(0, max_len):
            t = max_len - 1 - step
            active = (t < lens)[:, None]  # (BB, 1)
            is_last = (t == lens - 1)[:, None]
            alpha = tl.load(alpha_ptr + (rb[:, None] * max_len + t) * TP + rt[None, :], mask=bmask[:, None], other=NEG)
            marg = tl.where(active & m2, tl.exp(alpha + beta - log_z[:, None]), 0.0)  # (BB, TP)
            tl.store(gem_ptr + row + t * stride_l, g[:, None] * marg, mask=m2)
            gend += tl.sum(tl.where(is_last, g[:, None] * marg, 0.0), axis=0)
            if t == 0:
                tl.store(gstart_ptr + tl.program_id(0) * TP + rt, tl.sum(g[:, None] * marg, axis=0))
            else:
                e = tl.load(em_ptr + row + t * stride_l, mask=m2, other=NEG).to(tl.float32)
                prev = tl.load(
                    alpha_ptr + (rb[:, None] * max_len + t - 1) * TP + rt[None, :], mask=bmask[:, None], other=NEG
                )
                v = e + beta  # (BB, TP_to)
                xi = tl.exp(prev[:, :, None] + trans[None, :, :] + v[:, None, :] - log_z[:, None, None])  # (BB, TP, TP)
                xi = tl.where(active[:, :, None] & bmask[:, None, None], xi, 0.0)
                counts += tl.sum(g[:, None, None] * xi, axis=0)
                s = trans[None, :, :] + v[:, None, :]  # beta_{t-1}(i) = LSE_j(trans[i, j] + e_t(j) + beta_t(j))
                m = tl.max(s, axis=2)
                prev_beta = m + tl.log(tl.sum(tl.exp(s - m[:, :, None]), axis=2))
                beta = tl.where(active, prev_beta, tl.zeros((BLOCK_B, TP), tl.float32) + end[None, :])
        pid = tl.program_id(0)
        tl.store(gtrans_ptr + pid * TP * TP + rt[:, None] * TP + rt[None, :], counts)
        tl.store(gend_ptr + pid * TP + rt, gend)

    @triton.jit
    def _viterbi_kernel(
        em_ptr, len_ptr, trans_ptr, start_ptr, end_ptr, score_ptr, path_ptr, ptr_ptr,
        B, T, stride_b, stride_l, max_len,
        BLOCK_B: tl.constexpr, TP: tl.constexpr,
    ):  # fmt: skip
        rb, rt, bmask, m2, lens, trans, row = _tile(len_ptr, trans_ptr, B, T, stride_b, BLOCK_B, TP)
        start = _vector(start_ptr, T, TP)
        end = _vector(end_ptr, T, TP)
        delta = start[None, :] + tl.load(em_ptr + row, mask=m2, other=NEG).to(tl.float32)
        ident = tl.zeros((BLOCK_B, TP), tl.int32) + rt[None, :]
        for t in range(1, max_len):
            e = tl.load(em_ptr + row + t * stride_l, mask=m2, other=NEG).to(tl.float32)
            s = delta[:, :, None] + trans[None, :, :]  # (BB, TP_from, TP_to)
            best = tl.max(s, axis=1)  # (BB, TP)
            arg = tl.argmax(s, axis=1).to(tl.int32)
            active = (t < lens)[:, None]
            delta = tl.where(active, best + e, delta)
            tl.store(
                ptr_ptr + (rb[:, None] * max_len + t) * TP + rt[None, :],
                tl.where(active, arg, ident),
                mask=bmask[:, None],
            )
        final = delta + end[None, :]
        score = tl.max(final, axis=1)
        cur = tl.argmax(final, axis=1).to(tl.int32)  # (BB,)
        tl.store(score_ptr + rb, score, mask=bmask)
        tl.debug_barrier()
        for step in range(0, max_len):
            t = max_len - 1 - step
            tl.store(path_ptr + rb * max_len + t, tl.where(t < lens, cur, -1), mask=bmask)
            if t > 0:
                cur = tl.load(ptr_ptr + (rb * max_len + t) * TP + cur, mask=bmask, other=0)


def _launch_shape(emissions: Tensor) -> tuple[int, int, int, int]:
    b, length, n_tags = emissions.shape
    tp = max(2, triton.next_power_of_2(n_tags))
    # sequences per program: enough to fill the registers, not so many that few programs run
    block_b = int(os.environ.get("MFNER_TRITON_BLOCK_B", 0)) or max(1, min(16, 4096 // (tp * tp)))
    return b, length, tp, block_b


class _LogPartition(torch.autograd.Function):
    @staticmethod
    def forward(ctx, emissions: Tensor, lengths: Tensor, transitions: Tensor, start: Tensor, end: Tensor) -> Tensor:  # type: ignore[override]
        b, length, tp, block_b = _launch_shape(emissions)
        em = emissions.contiguous()
        trans, st, en = (x.float().contiguous() for x in (transitions, start, end))
        need_grad = any(ctx.needs_input_grad)
        out = torch.empty(b, dtype=torch.float32, device=em.device)
        alpha = torch.empty(b, length, tp, dtype=torch.float32, device=em.device) if need_grad else out
        grid = (triton.cdiv(b, block_b),)
        _forward_kernel[grid](
            em,
            lengths,
            trans,
            st,
            en,
            out,
            alpha,
            b,
            em.size(2),
            em.stride(0),
            em.stride(1),
            length,
            need_grad,
            block_b,
            tp,
        )
        if need_grad:
            ctx.save_for_backward(em, lengths, trans, en, alpha, out)
        return out.to(emissions.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        em, lengths, trans, en, alpha, log_z = ctx.saved_tensors
        b, length, tp, block_b = _launch_shape(em)
        n_prog = triton.cdiv(b, block_b)
        g_em = torch.zeros(em.shape, dtype=torch.float32, device=em.device)
        g_trans = torch.empty(n_prog, tp, tp, dtype=torch.float32, device=em.device)
        g_start = torch.empty(n_prog, tp, dtype=torch.float32, device=em.device)
        g_end = torch.empty(n_prog, tp, dtype=torch.float32, device=em.device)
        _backward_kernel[(n_prog,)](
            em, lengths, trans, en, alpha, log_z, grad.float().contiguous(),
            g_em, g_trans, g_start, g_end,
            b, em.size(2), em.stride(0), em.stride(1), length, block_b, tp,
        )  # fmt: skip
        t = em.size(2)
        dtype = em.dtype
        return (
            g_em.to(dtype),
            None,
            g_trans.sum(0)[:t, :t].to(dtype),
            g_start.sum(0)[:t].to(dtype),
            g_end.sum(0)[:t].to(dtype),
        )


def log_partition(emissions: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """log Z ``(B,)``, differentiable; one kernel launch forward, one backward."""
    return _LogPartition.apply(emissions, mask.sum(1).to(torch.int32), transitions, start, end)


def viterbi(emissions: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor) -> tuple[Tensor, Tensor]:
    """Best paths ``(B, L)`` (-1 padded) and scores ``(B,)`` in one launch."""
    b, length, tp, block_b = _launch_shape(emissions)
    em = emissions.contiguous()
    trans, st, en = (x.float().contiguous() for x in (transitions, start, end))
    scores = torch.empty(b, dtype=torch.float32, device=em.device)
    path = torch.empty(b, length, dtype=torch.int32, device=em.device)
    pointers = torch.empty(b, length, tp, dtype=torch.int32, device=em.device)
    lengths = mask.sum(1).to(torch.int32)
    grid = (triton.cdiv(b, block_b),)
    _viterbi_kernel[grid](
        em,
        lengths,
        trans,
        st,
        en,
        scores,
        path,
        pointers,
        b,
        em.size(2),
        em.stride(0),
        em.stride(1),
        length,
        block_b,
        tp,
    )
    return path.long(), scores.to(emissions.dtype)

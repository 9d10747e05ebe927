"""One linear-chain CRF for the whole project: log-partition, gold score, NLL, Viterbi, marginals.

Every function takes emissions ``(B, L, T)``, a right-padded bool mask ``(B, L)`` whose rows each
hold at least one True, transitions ``(T, T)`` (``[i, j]`` scores tag i followed by tag j), and
start/end vectors ``(T,)``. Parameters are arguments, not module state, so a per-episode
transition matrix (CDT) and a learned one (``LinearChainCRF``) share one implementation.

The dynamic program is written once per semiring: the log semiring gives the partition (and, by
autograd, the marginals), the max semiring gives the Viterbi score and, with back-pointers kept
on the device, the best path for the whole batch. ``impl="auto"`` picks the fastest checked path
for the device: the Triton kernel on CUDA when Triton is present (``fewshot_ner.crf_triton``), the
numba kernel on CPU when numba is present (``fewshot_ner.crf_numba``), the reference loop otherwise.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

Reduction = Literal["none", "sum", "mean", "token_mean"]
Impl = Literal["auto", "reference", "numba", "triton"]


def check_inputs(
    emissions: Tensor, mask: Tensor | None, transitions: Tensor, start: Tensor, end: Tensor, tags: Tensor | None = None
) -> Tensor:
    """Validate shapes, dtypes and devices; return the mask (all True when ``None``)."""
    if emissions.dim() != 3:
        raise ValueError(f"emissions must have shape (B, L, T), got {tuple(emissions.shape)}")
    b, length, n_tags = emissions.shape
    if length == 0 or b == 0 or n_tags == 0:
        raise ValueError(f"emissions must be non-empty, got shape {tuple(emissions.shape)}")
    if not emissions.is_floating_point():
        raise ValueError(f"emissions must be floating point, got {emissions.dtype}")
    if transitions.shape != (n_tags, n_tags):
        raise ValueError(f"expected transitions of shape {(n_tags, n_tags)}, got {tuple(transitions.shape)}")
    for name, vec in (("start", start), ("end", end)):
        if vec.shape != (n_tags,):
            raise ValueError(f"expected {name} of shape {(n_tags,)}, got {tuple(vec.shape)}")
    for name, t in (("transitions", transitions), ("start", start), ("end", end)):
        if t.dtype != emissions.dtype:
            raise ValueError(f"{name} dtype {t.dtype} differs from emissions dtype {emissions.dtype}")
        if t.device != emissions.device:
            raise ValueError(f"{name} is on {t.device}, emissions on {emissions.device}")
    if mask is None:
        mask = torch.ones(b, length, dtype=torch.bool, device=emissions.device)
    if mask.shape != (b, length):
        raise ValueError(f"expected mask of shape {(b, length)}, got {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool, got {mask.dtype}")
    if mask.device != emissions.device:
        raise ValueError(f"mask is on {mask.device}, emissions on {emissions.device}")
    if not bool(mask[:, 0].all()):
        raise ValueError(
            f"every mask row needs a True first element (right padding, length >= 1); mask shape {tuple(mask.shape)}"
        )
    if length > 1 and bool((mask[:, 1:] & ~mask[:, :-1]).any()):
        raise ValueError(f"mask must be right-padded (no True after a False); mask shape {tuple(mask.shape)}")
    if tags is not None:
        if tags.shape != (b, length):
            raise ValueError(f"expected tags of shape {(b, length)}, got {tuple(tags.shape)}")
        if tags.dtype != torch.long:
            raise ValueError(f"tags must be int64, got {tags.dtype}")
        real = tags[mask]
        if real.numel() and (int(real.min()) < 0 or int(real.max()) >= n_tags):
            raise ValueError(f"tag ids must lie in [0, {n_tags}), got min {int(real.min())} max {int(real.max())}")
    return mask


def _backend(emissions: Tensor, impl: Impl):
    """The kernel module for ``impl`` on this device, or None for the reference loop."""
    if impl == "reference":
        return None
    if impl == "auto":
        if emissions.device.type == "cuda":
            from fewshot_ner import crf_triton as module
        elif emissions.device.type == "cpu":
            from fewshot_ner import crf_numba as module
        else:
            return None
        return module if module.available() else None
    if impl == "numba":
        from fewshot_ner import crf_numba as module
    elif impl == "triton":
        from fewshot_ner import crf_triton as module
    else:
        raise ValueError(f"impl must be auto, reference, numba or triton, got {impl!r}")
    if not module.available():
        raise ValueError(f"impl={impl!r} is not available here (package missing or wrong device)")
    return module


def _log_forward(emissions: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """Reference forward algorithm in the log semiring; returns ``(B,)``."""
    score = start + emissions[:, 0]  # (B, T)
    trans = transitions.unsqueeze(0)  # (1, T, T)
    for t in range(1, emissions.size(1)):
        nxt = torch.logsumexp(score.unsqueeze(2) + trans, dim=1) + emissions[:, t]  # (B, T)
        score = torch.where(mask[:, t, None], nxt, score)
    return torch.logsumexp(score + end, dim=-1)


def _max_forward(
    emissions: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor
) -> tuple[Tensor, Tensor]:
    """Max semiring with back-pointers; returns paths ``(B, L)`` (-1 padded) and best scores ``(B,)``."""
    b, length, n_tags = emissions.shape
    score = start + emissions[:, 0]  # (B, T)
    trans = transitions.unsqueeze(0)  # (1, T, T)
    stay = torch.arange(n_tags, device=emissions.device).expand(b, n_tags)  # (B, T) identity pointers
    pointers = torch.empty(b, length, n_tags, dtype=torch.long, device=emissions.device)  # (B, L, T)
    pointers[:, 0] = stay
    for t in range(1, length):
        best, arg = (score.unsqueeze(2) + trans).max(dim=1)  # (B, T), (B, T)
        keep = mask[:, t, None]
        score = torch.where(keep, best + emissions[:, t], score)
        pointers[:, t] = torch.where(keep, arg, stay)  # padded steps point to themselves
    best_score, last = (score + end).max(dim=-1)  # (B,), (B,)
    return backtrace(pointers, last, mask), best_score


def backtrace(pointers: Tensor, last: Tensor, mask: Tensor) -> Tensor:
    """Follow back-pointers ``(B, L, T)`` from the final tags ``(B,)``; ``(B, L)`` paths, -1 where padded."""
    b, length, _ = pointers.shape
    path = torch.empty(b, length, dtype=torch.long, device=pointers.device)  # (B, L)
    cur = last
    path[:, length - 1] = cur
    for t in range(length - 1, 0, -1):
        cur = pointers[:, t].gather(1, cur.unsqueeze(1)).squeeze(1)  # (B,)
        path[:, t - 1] = cur
    return path.masked_fill(~mask, -1)


def log_partition(
    emissions: Tensor, mask: Tensor | None, transitions: Tensor, start: Tensor, end: Tensor, impl: Impl = "auto"
) -> Tensor:
    """log Z for each sequence, ``(B,)``; differentiable."""
    mask = check_inputs(emissions, mask, transitions, start, end)
    return _log_partition(emissions, mask, transitions, start, end, impl)


def _log_partition(
    emissions: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor, impl: Impl
) -> Tensor:
    backend = _backend(emissions, impl)
    if backend is not None:
        return backend.log_partition(emissions, mask, transitions, start, end)
    return _log_forward(emissions, mask, transitions, start, end)


def gold_score(
    emissions: Tensor, mask: Tensor | None, tags: Tensor, transitions: Tensor, start: Tensor, end: Tensor
) -> Tensor:
    """Score of the given tag paths ``(B, L)``, ``(B,)``; tags at padded positions are ignored."""
    mask = check_inputs(emissions, mask, transitions, start, end, tags)
    return _gold_score(emissions, mask, tags, transitions, start, end)


def _gold_score(
    emissions: Tensor, mask: Tensor, tags: Tensor, transitions: Tensor, start: Tensor, end: Tensor
) -> Tensor:
    tags = tags.masked_fill(~mask, 0)
    maskf = mask.to(emissions.dtype)  # (B, L)
    emit = emissions.gather(2, tags.unsqueeze(-1)).squeeze(-1)  # (B, L)
    trans = transitions[tags[:, :-1], tags[:, 1:]]  # (B, L-1)
    lengths = mask.sum(1)  # (B,)
    last = tags.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)  # (B,)
    return start[tags[:, 0]] + (emit * maskf).sum(1) + (trans * maskf[:, 1:]).sum(1) + end[last]


def nll(
    emissions: Tensor,
    mask: Tensor | None,
    tags: Tensor,
    transitions: Tensor,
    start: Tensor,
    end: Tensor,
    reduction: Reduction = "mean",
    impl: Impl = "auto",
) -> Tensor:
    """Negative log-likelihood of ``tags``: ``none`` (B,), ``sum``, ``mean`` over sequences, ``token_mean``."""
    mask = check_inputs(emissions, mask, transitions, start, end, tags)
    losses = _log_partition(emissions, mask, transitions, start, end, impl) - _gold_score(
        emissions, mask, tags, transitions, start, end
    )
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    if reduction == "mean":
        return losses.mean()
    if reduction == "token_mean":
        return losses.sum() / mask.sum()
    raise ValueError(f"reduction must be none, sum, mean or token_mean, got {reduction!r}")


def viterbi(
    emissions: Tensor, mask: Tensor | None, transitions: Tensor, start: Tensor, end: Tensor, impl: Impl = "auto"
) -> tuple[Tensor, Tensor]:
    """Best path and its score: ``(B, L)`` tag ids (-1 where padded) and ``(B,)`` scores. No gradient."""
    mask = check_inputs(emissions, mask, transitions, start, end)
    backend = _backend(emissions, impl)
    with torch.no_grad():
        if backend is not None:
            return backend.viterbi(emissions, mask, transitions, start, end)
        return _max_forward(emissions, mask, transitions, start, end)


def marginals(emissions: Tensor, mask: Tensor | None, transitions: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """Posterior ``p(y_l = j | x)`` as ``(B, L, T)``: the gradient of log Z (zeros where padded).

    Differentiable (the graph is kept), so a loss on the marginals (ITA's alignment) trains the inputs.
    """
    mask = check_inputs(emissions, mask, transitions, start, end)
    with torch.enable_grad():
        em = emissions if emissions.requires_grad else emissions.detach().requires_grad_(True)
        log_z = _log_forward(em, mask, transitions, start, end)
        (grad,) = torch.autograd.grad(log_z.sum(), em, create_graph=emissions.requires_grad)
    return grad * mask.unsqueeze(-1).to(grad.dtype)


class LinearChainCRF(nn.Module):
    """A CRF with its own learned ``(T, T)`` transitions and start/end scores (BERT+CRF, ITA)."""

    def __init__(self, num_tags: int) -> None:
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags must be >= 1, got {num_tags}")
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))
        self.start = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.end = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))

    def forward(
        self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None, reduction: Reduction = "mean"
    ) -> Tensor:
        """NLL of ``tags`` given emissions ``(B, L, T)``."""
        return nll(emissions, mask, tags, self.transitions, self.start, self.end, reduction)

    def decode(self, emissions: Tensor, mask: Tensor | None = None) -> Tensor:
        """Viterbi paths ``(B, L)``, -1 where padded."""
        return viterbi(emissions, mask, self.transitions, self.start, self.end)[0]

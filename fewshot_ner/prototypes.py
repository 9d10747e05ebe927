"""Prototypes of support word vectors per label, and similarity of words to them."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

Similarity = Literal["dot", "cosine", "euclidean"]


def prototypes(vectors: Tensor, ids: Tensor, n_labels: int) -> tuple[Tensor, Tensor]:
    """Mean vector per label.

    Args:
        vectors: ``(N, H)`` support word vectors.
        ids: ``(N,)`` label id of each word.
        n_labels: C, the episode's number of labels.

    Returns:
        ``(C, H)`` prototypes (zeros for absent labels) and a ``(C,)`` bool mask of present labels.
    """
    counts = torch.bincount(ids, minlength=n_labels).to(vectors.dtype)  # (C,)
    sums = torch.zeros(n_labels, vectors.size(-1), dtype=vectors.dtype, device=vectors.device)
    sums.index_add_(0, ids, vectors)  # (C, H)
    present = counts > 0
    return sums / counts.clamp(min=1).unsqueeze(-1), present


def similarity(x: Tensor, protos: Tensor, kind: Similarity = "euclidean") -> Tensor:
    """Scores ``(..., C)`` of words ``(..., H)`` against prototypes ``(C, H)``; higher is closer."""
    if kind == "dot":
        return x @ protos.T
    if kind == "cosine":
        return torch.nn.functional.normalize(x, dim=-1) @ torch.nn.functional.normalize(protos, dim=-1).T
    if kind == "euclidean":
        # -||x - c||^2 without materialising (..., C, H)
        return -(x.pow(2).sum(-1, keepdim=True) - 2 * x @ protos.T + protos.pow(2).sum(-1))
    raise ValueError(f"similarity must be dot, cosine or euclidean, got {kind!r}")

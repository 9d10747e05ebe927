"""Collapsed dependency transfer (CDT, Hou et al. 2020): label-set-free transition scores.

Learned abstract scores from {O, B, I} to {O, sB, sI, dB, dI} (s: same entity type as the previous
tag, d: a different one) and start/end scores over {O, B, I} are expanded, by a gather, into the
concrete ``(T, T)`` transitions of any episode's BIO label list. Concrete transitions that share an
abstract cell share its score (SPEC section 4.5).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor, nn

FROM = ("O", "B", "I")
TO = ("O", "sB", "sI", "dB", "dI")


def _split(label: str) -> tuple[str, str | None]:
    if label == "O":
        return "O", None
    prefix, _, etype = label.partition("-")
    if prefix not in ("B", "I") or not etype:
        raise ValueError(f"label {label!r} is not O, B-x or I-x")
    return prefix, etype


def abstract_cell(prev: str, cur: str) -> tuple[str, str]:
    """The abstract (from, to) cell of the concrete transition ``prev -> cur``."""
    p_kind, p_type = _split(prev)
    c_kind, c_type = _split(cur)
    if c_kind == "O":
        return p_kind, "O"
    # From O there is no previous type: O -> B-x is [O, sB], O -> I-x is [O, sI].
    same = p_kind == "O" or p_type == c_type
    return p_kind, ("s" if same else "d") + c_kind


@lru_cache(maxsize=64)
def expansion_index(labels: tuple[str, ...]) -> tuple[Tensor, Tensor]:
    """Indices into the flattened abstract matrix ``(T, T)`` and into the {O,B,I} vectors ``(T,)``."""
    trans = torch.tensor(
        [[FROM.index(f) * len(TO) + TO.index(t) for f, t in (abstract_cell(p, c) for c in labels)] for p in labels],
        dtype=torch.long,
    )  # (T, T)
    kind = torch.tensor([FROM.index(_split(lab)[0]) for lab in labels], dtype=torch.long)  # (T,)
    return trans, kind


class CDT(nn.Module):
    """Abstract transition (3x5) and start/end (3) scores, expanded per label list."""

    def __init__(self) -> None:
        super().__init__()
        self.abstract = nn.Parameter(torch.zeros(len(FROM), len(TO)))
        self.start = nn.Parameter(torch.zeros(len(FROM)))
        self.end = nn.Parameter(torch.zeros(len(FROM)))

    def forward(self, labels: tuple[str, ...]) -> tuple[Tensor, Tensor, Tensor]:
        """Concrete ``(T, T)`` transitions and ``(T,)`` start and end scores for ``labels``."""
        trans_idx, kind = expansion_index(tuple(labels))
        device = self.abstract.device
        transitions = self.abstract.flatten()[trans_idx.to(device)]  # (T, T)
        return transitions, self.start[kind.to(device)], self.end[kind.to(device)]

"""The meta-learned denoiser: per-token weights between the text view and the text+image view."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

DenoiserMode = Literal["learned", "fixed", "off"]


class Denoiser(nn.Module):
    """``(alpha, beta) = softmax(Linear([E_t ; E_m]))``, ``E_f = alpha E_t + beta E_m``.

    Modes: ``learned`` (the paper's), ``fixed`` (alpha = beta = 0.5, the "no denoiser" ablation),
    ``off`` (E_f = E_t: no image text). The linear layer starts at zero, i.e. at the fixed mix.
    """

    def __init__(self, hidden: int, mode: DenoiserMode = "learned") -> None:
        super().__init__()
        if mode not in ("learned", "fixed", "off"):
            raise ValueError(f"denoiser mode must be learned, fixed or off, got {mode!r}")
        self.mode = mode
        self.gate = nn.Linear(2 * hidden, 2)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def forward(self, text: Tensor, multi: Tensor | None, mode: DenoiserMode | None = None) -> tuple[Tensor, Tensor]:
        """Fused vectors ``(..., H)`` and the weights ``(..., 2)`` (alpha, beta) of each token.

        Args:
            text: ``(..., H)`` E_t, word vectors of the text alone.
            multi: ``(..., H)`` E_m, word vectors of the text followed by the image text
                (ignored, and may be None, in mode ``off``).
            mode: overrides the module's mode (case studies switch it at inference).
        """
        mode = mode or self.mode
        if mode == "off":
            weights = torch.zeros(*text.shape[:-1], 2, dtype=text.dtype, device=text.device)
            weights[..., 0] = 1.0
            return text, weights
        if multi is None or multi.shape != text.shape:
            raise ValueError(f"the image view must match the text view's shape {tuple(text.shape)}")
        if mode == "fixed":
            weights = torch.full((*text.shape[:-1], 2), 0.5, dtype=text.dtype, device=text.device)
        else:
            weights = torch.softmax(self.gate(torch.cat([text, multi], dim=-1)), dim=-1)  # (..., 2)
        fused = weights[..., :1] * text + weights[..., 1:] * multi
        return fused, weights

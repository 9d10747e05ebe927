"""L-TapNet emission scores (Hou et al. 2020): label-enhanced anchors in a task-adaptive space."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fewshot_ner.prototypes import Similarity, prototypes, similarity


def null_space(errors: Tensor, tol: float = 1e-6) -> Tensor:
    """Orthonormal basis ``(H, H - rank)`` of the null space of ``errors`` ``(C, H)``.

    The columns of V beyond the rank (the fixed form; the reference code took rows).
    """
    _, s, vh = torch.linalg.svd(errors, full_matrices=True)  # vh: (H, H)
    rank = int((s > tol * s.max().clamp(min=1e-12)).sum()) if s.numel() else 0
    return vh[rank:].T


class LTapNet(nn.Module):
    """Emission ``scale * sim(x M, a_j M)`` with anchors ``a_j = 0.3 c_j + 0.7 phi_j``.

    ``phi_j = (1 - r) s_j + r ref_j`` mixes the encoder's vector of the label's name (``s_j``) with a
    learned reference vector; reference j belongs to label position j, so nothing is drawn at
    random at test time. ``M`` spans the null space of the error vectors
    ``normalize(phi_j - mean_{i!=j} phi_i) - c_j / |c_j|``, computed per episode without gradient.
    Switches: ``label_enhanced=False`` uses ``phi_j = ref_j`` (TapNet); ``projection=False`` skips M.
    """

    def __init__(
        self,
        hidden: int,
        max_labels: int = 17,
        similarity: Similarity = "dot",
        label_enhanced: bool = True,
        projection: bool = True,
        r: float = 0.5,
        prototype_weight: float = 0.3,
        scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.references = nn.Parameter(torch.randn(max_labels, hidden) / hidden**0.5)
        self.log_scale = nn.Parameter(torch.tensor(float(scale)).log())
        self.similarity: Similarity = similarity
        self.label_enhanced = label_enhanced
        self.projection = projection
        self.r = r
        self.prototype_weight = prototype_weight

    def anchors(self, support: Tensor, support_ids: Tensor, names: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Anchors ``(C, H)``, label-enhanced vectors phi ``(C, H)`` and the present-label mask ``(C,)``.

        Args:
            support: ``(N, H)`` support word vectors.
            support_ids: ``(N,)`` their label ids.
            names: ``(C, H)`` label-name vectors (needed when label-enhanced).
        """
        n_labels = names.size(0) if names is not None else int(support_ids.max()) + 1
        if n_labels > self.references.size(0):
            raise ValueError(
                f"episode has {n_labels} labels, the model holds {self.references.size(0)} reference vectors"
            )
        refs = self.references[:n_labels]
        if self.label_enhanced:
            if names is None:
                raise ValueError("label-enhanced anchors need label-name vectors")
            phi = (1 - self.r) * names + self.r * refs
        else:
            phi = refs
        protos, present = prototypes(support, support_ids, n_labels)  # (C, H), (C,)
        mixed = self.prototype_weight * protos + (1 - self.prototype_weight) * phi
        anchors = torch.where(present.unsqueeze(-1), mixed, phi)  # absent labels: phi alone
        return anchors, phi, present

    @staticmethod
    def error_vectors(phi: Tensor, protos: Tensor) -> Tensor:
        """``e_j = normalize(phi_j - mean_{i != j} phi_i) - c_j / |c_j|`` for each row, ``(C, H)``."""
        n = phi.size(0)
        others = (phi.sum(0, keepdim=True) - phi) / max(n - 1, 1)
        return F.normalize(phi - others, dim=-1) - F.normalize(protos, dim=-1)

    def projection_matrix(self, phi: Tensor, support: Tensor, support_ids: Tensor, present: Tensor) -> Tensor:
        """``M`` ``(H, H - rank)`` from the present labels' error vectors (no gradient)."""
        with torch.no_grad():
            protos, _ = prototypes(support, support_ids, phi.size(0))
            errors = self.error_vectors(phi, protos)[present]
            return null_space(errors)

    def forward(self, query: Tensor, support: Tensor, support_ids: Tensor, names: Tensor | None) -> Tensor:
        """Emission scores ``(..., C)`` of query word vectors ``(..., H)``."""
        anchors, phi, present = self.anchors(support, support_ids, names)
        if self.projection:
            m = self.projection_matrix(phi, support, support_ids, present)  # (H, H')
            query, anchors = query @ m, anchors @ m
        return self.log_scale.exp() * similarity(query, anchors, self.similarity)

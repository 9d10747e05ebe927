"""WPZ as the paper describes it: ProtoNet with the prototype network replaced by a matching network.

Naming: see ``baselines/protonet.py`` (the paper's WPZ is a matching network; Hou et al.'s code
calls its prototypical network WPZ and its matching network ``mnet``).

Every query word attends over every support word: a = softmax over the support words of
cos(q, s) / tau, tau a learned temperature (log-parameterised, starts at 0.1). The score of tag j
is log of the attention mass on the support words tagged j (plus 1e-8). Unlike a prototype, the
mass follows the nearest support words, not the mean: a tag whose support words are spread out
wins a query word that sits near one of them (tests/test_baselines.py shows a case where the
two disagree). Token cross-entropy on the query, per-token argmax, no CRF. Tagging ``io`` by
default (a class per entity type; ``TokenClassifierConfig`` gives the probe that chose it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.protonet import LogScale
from fewshot_ner.meta_trained import TokenClassifier
from fewshot_ner.method import METHODS

EPS = 1e-8


def matching_scores(query: Tensor, support: Tensor, support_ids: Tensor, n_labels: int, tau: Tensor) -> Tensor:
    """log of the attention mass per label ``(..., C)`` for query words ``(..., H)``, support ``(N, H)``."""
    cos = F.normalize(query, dim=-1) @ F.normalize(support, dim=-1).T  # (..., N)
    attn = torch.softmax(cos / tau, dim=-1)  # (..., N)
    onehot = F.one_hot(support_ids, n_labels).to(attn.dtype)  # (N, C)
    return (attn @ onehot + EPS).log()  # (..., C)


@METHODS.register("wpz")
class WPZ(TokenClassifier):
    """WPZ (matching network): each query word attends over the support words; tag score = log attention mass.

    Deterministic at test time: a forward pass and an argmax, no draws.
    """

    shuffle_name = "wpz-train"

    def build_head(self) -> nn.Module:
        return LogScale(0.1)  # the temperature tau

    def scores(self, query: Tensor, support: Tensor, support_ids: Tensor, n_labels: int) -> Tensor:
        return matching_scores(query, support, support_ids, n_labels, self.head())

"""ProtoNet (the paper's "MNet" description): each tag's prototype is the mean of its support word vectors.

Naming: the paper (Section 4.2, SPEC section 5) calls this row ProtoNet/MNet and describes WPZ as
"replacing the prototype network with a matching network"; Hou et al.'s FewShotTagging code names
them the other way round (its WPZ, WarmProtoZero, is a prototypical network; its ``mnet`` a
matching network). We follow the paper's descriptions, so that our rows answer the paper's.

Emission of a query word for class j = scale * similarity(word, prototype_j), O an ordinary class,
classes absent from the support masked, a learned scale (log-parameterised, starts at 10 for
cosine, whose values lie in [-1, 1]; 1 otherwise); token cross-entropy on the query; per-token
argmax, no CRF.

Defaults, each chosen by the ``probes`` suite on the source domain (T15 train -> its valid split,
97 episodes; never a target's test episodes): ``similarity="cosine"`` (41.32 F1 against 26.99 for
``euclidean``, Snell et al.'s negative squared distance, and 21.92 for ``dot``) and
``tagging="io"`` (a class per entity type, B and I pooled: 48.16 against cosine's 41.32 with a
class per BIO label; euclidean with io 41.17). With BIO a 1-shot support whose entity of a type
is one word has no ``I-x`` vector, so the type's multi-word entities can't be written; the paper
does not say which its MNet used.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from fewshot_ner.meta_trained import TokenClassifier
from fewshot_ner.method import METHODS
from fewshot_ner.prototypes import prototypes, similarity


class LogScale(nn.Module):
    """A positive learned scalar, ``exp(log_value)``."""

    def __init__(self, value: float = 1.0) -> None:
        super().__init__()
        self.log_value = nn.Parameter(torch.tensor(float(value)).log())

    def forward(self) -> Tensor:
        return self.log_value.exp()


@METHODS.register("protonet")
class ProtoNet(TokenClassifier):
    """ProtoNet: fine-tuned encoder, per-tag mean prototypes, scaled similarity, per-token argmax.

    Deterministic at test time: a forward pass and an argmax, no draws.
    """

    extra_options = {"similarity": "cosine"}
    shuffle_name = "protonet-train"

    @classmethod
    def check_extra(cls, extra: dict[str, Any]) -> None:
        if extra["similarity"] not in ("euclidean", "dot", "cosine"):
            raise ValueError(f"ProtoNet similarity must be euclidean, dot or cosine, got {extra['similarity']!r}")

    def build_head(self, *, similarity: str) -> nn.Module:
        self.check_extra({"similarity": similarity})
        return LogScale(10.0 if similarity == "cosine" else 1.0)  # cosine lies in [-1, 1]: start as WPZ's 1/tau

    def scores(self, query: Tensor, support: Tensor, support_ids: Tensor, n_labels: int) -> Tensor:
        protos, _ = prototypes(support, support_ids, n_labels)  # (C, H)
        return self.head() * similarity(query, protos, self.extra["similarity"])  # (Bq, W, C)

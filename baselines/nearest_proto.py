"""Nearest prototype over frozen word vectors: no training, no CRF. The harness's floor."""

from __future__ import annotations

from typing import Any

import torch

from fewshot_ner.datasets import Domain
from fewshot_ner.encoder import View
from fewshot_ner.episodes import TestEpisode
from fewshot_ner.features import FrozenFeatures
from fewshot_ner.labels import label_ids
from fewshot_ner.method import METHODS, FewShotMethod, Input, RunContext, check_input
from fewshot_ner.prototypes import Similarity, prototypes, similarity


@METHODS.register("proto-frozen")
class FrozenNearestPrototype(FewShotMethod):
    """Nearest prototype over frozen word vectors, no training: the harness's floor and smoke test.

    Deterministic: no draws at all.
    """

    def __init__(self, ctx: RunContext, input: Input = "text", similarity: Similarity = "euclidean") -> None:
        super().__init__(ctx)
        self._input = check_input(input)
        self.view: View = input
        self.sim = similarity
        self.features: FrozenFeatures | None = None

    @classmethod
    def resolved_config(cls, options: dict[str, Any]) -> dict[str, Any]:
        return {"input": options.get("input", "text"), "similarity": options.get("similarity", "euclidean")}

    def config(self) -> dict[str, Any]:
        return {"input": self.view, "similarity": self.sim, "encoder": self.ctx.encoder}

    def prepare(self, target: Domain) -> None:
        self.features = FrozenFeatures(self.ctx.word_encoder(), (self.view,), self.ctx.progress)
        self.features.add_domain(target)

    def predict(self, episode: TestEpisode) -> list[list[str]]:
        if self.features is None:
            raise RuntimeError("call prepare(target) before predict")
        labels = episode.labels
        sup = self.features(list(episode.support), self.view)
        support = sup.vectors[sup.mask]  # (N, H): every support word, sentence by sentence
        ids = torch.tensor([i for s in episode.support for i in label_ids(s.tags, labels)])  # (N,)
        protos, present = prototypes(support, ids, len(labels))  # (C, H), (C,)
        query = self.features(list(episode.query), self.view)
        scores = similarity(query.vectors, protos, self.sim)  # (Q, W, C)
        best = scores.masked_fill(~present, float("-inf")).argmax(-1)  # (Q, W)
        return [[labels[i] for i in row[: len(s.tokens)].tolist()] for row, s in zip(best, episode.query, strict=True)]

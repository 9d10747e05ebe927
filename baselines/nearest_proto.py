"""Nearest prototype over frozen word vectors: no training, no CRF. The harness's floor."""

from __future__ import annotations

from typing import Any

import torch

from mfner.datasets import Domain
from mfner.encoder import View, WordEncoder, cached_word_vectors
from mfner.episodes import Episode
from mfner.method import METHODS, FewShotMethod, RunContext
from mfner.prototypes import Similarity, label_ids, prototypes, similarity


@METHODS.register("proto-frozen")
class FrozenNearestPrototype(FewShotMethod):
    """Each query word takes the label of the nearest support prototype (frozen encoder)."""

    def __init__(self, ctx: RunContext, view: View = "text", similarity: Similarity = "euclidean") -> None:
        super().__init__(ctx)
        self.view = view
        self.sim = similarity
        self.vectors: dict[str, torch.Tensor] = {}

    def config(self) -> dict[str, Any]:
        return {"view": self.view, "similarity": self.sim, "encoder": self.ctx.encoder}

    def prepare(self, target: Domain) -> None:
        encoder = WordEncoder(self.ctx.encoder)
        self.vectors = cached_word_vectors(
            encoder, list(target.sentences), target.data_hash, self.view, self.ctx.progress
        )

    def predict(self, episode: Episode) -> list[list[str]]:
        labels = episode.labels
        support = torch.cat([self.vectors[s.key] for s in episode.support])  # (N, H)
        ids = torch.tensor([i for s in episode.support for i in label_ids(s.tags, labels)])  # (N,)
        protos, present = prototypes(support, ids, len(labels))  # (C, H), (C,)
        out = []
        for sent in episode.query:
            scores = similarity(self.vectors[sent.key], protos, self.sim)  # (n_words, C)
            scores = scores.masked_fill(~present, float("-inf"))
            out.append([labels[i] for i in scores.argmax(-1).tolist()])
        return out

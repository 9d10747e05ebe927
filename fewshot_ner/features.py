"""Word features of a list of sentences, padded: from the live encoder or from frozen vectors."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from fewshot_ner.data import QuerySentence, Sentence
from fewshot_ner.datasets import Domain
from fewshot_ner.encoder import View, WordEncoder, cached_word_vectors


@dataclass
class Padded:
    """Word vectors of B sentences."""

    vectors: Tensor  # (B, W, H)
    mask: Tensor  # (B, W) bool


class LiveFeatures:
    """Runs the encoder (with gradient when it is training): the fine-tuning profiles."""

    def __init__(self, encoder: WordEncoder) -> None:
        self.encoder = encoder

    def __call__(self, sentences: list[Sentence | QuerySentence], view: View) -> Padded:
        batch = self.encoder.tokenize(sentences, view).to(self.encoder.device)
        return Padded(self.encoder(batch), batch.word_mask)

    def add_domain(self, domain: Domain) -> None:
        """Nothing to precompute."""


class FrozenFeatures:
    """Looks up cached frozen vectors (joblib on disk): the ``frozen`` profile."""

    def __init__(self, encoder: WordEncoder, views: tuple[View, ...], progress: bool = False) -> None:
        self.encoder = encoder
        self.views = views
        self.progress = progress
        self.table: dict[View, dict[str, Tensor]] = {v: {} for v in views}

    def add_domain(self, domain: Domain) -> None:
        for view in self.views:
            self.table[view].update(
                cached_word_vectors(self.encoder, list(domain.sentences), domain.data_hash, view, self.progress)
            )

    def __call__(self, sentences: list[Sentence | QuerySentence], view: View) -> Padded:
        try:
            rows = [self.table[view][s.key] for s in sentences]
        except KeyError as err:
            raise KeyError(f"no frozen {view!r} vectors for sentence {err.args[0]}: call add_domain first") from None
        vectors = pad_sequence(rows, batch_first=True).to(self.encoder.device)  # (B, W, H)
        lengths = torch.tensor([r.size(0) for r in rows], device=vectors.device)
        mask = torch.arange(vectors.size(1), device=vectors.device)[None] < lengths[:, None]
        return Padded(vectors, mask)

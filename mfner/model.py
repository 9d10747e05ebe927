"""MFNER: two views through one encoder, a meta-learned denoiser, L-TapNet emissions, CDT, a CRF."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from fewshot_ner import crf
from fewshot_ner.cdt import CDT
from fewshot_ner.data import QuerySentence, Sentence
from fewshot_ner.encoder import View
from fewshot_ner.episodes import Episode, TestEpisode
from fewshot_ner.features import FrozenFeatures, LiveFeatures, Padded, send_back
from fewshot_ner.labels import label_ids, label_name, tag_tensor
from fewshot_ner.prototypes import Similarity
from mfner.denoiser import Denoiser, DenoiserMode
from mfner.tapnet import LTapNet


@dataclass
class EpisodeOutput:
    """What one forward pass over an episode's query gives."""

    emissions: Tensor  # (Bq, W, C)
    mask: Tensor  # (Bq, W) bool
    weights: Tensor  # (Bq, W, 2) denoiser (alpha, beta) per query word
    transitions: Tensor  # (C, C)
    start: Tensor  # (C,)
    end: Tensor  # (C,)


class MFNERModel(nn.Module):
    """The parts that meta-train; the encoder features come from ``features``."""

    def __init__(
        self,
        features: LiveFeatures | FrozenFeatures,
        hidden: int,
        denoiser: DenoiserMode = "learned",
        similarity: Similarity = "euclidean",
        label_enhanced: bool = True,
        projection: bool = True,
        join_support_query: bool = False,
        label_vectors_per_step: bool = False,
        prototype_weight: float = 0.3,
        label_vector: Literal["mean", "cls"] = "mean",
    ) -> None:
        super().__init__()
        self.label_vector = label_vector
        self.features = features
        self.join_support_query = join_support_query
        self.label_vectors_per_step = label_vectors_per_step
        self.denoiser = Denoiser(hidden, denoiser)
        self.tapnet = LTapNet(
            hidden,
            similarity=similarity,
            label_enhanced=label_enhanced,
            projection=projection,
            prototype_weight=prototype_weight,
        )
        self.cdt = CDT()
        self._frozen_names: dict[tuple[str, ...], Tensor] = {}
        self._step_names: dict[tuple[str, ...], tuple[Tensor, Tensor]] = {}  # labels -> (encoder output, leaf)

    def clear_label_cache(self) -> None:
        self._frozen_names.clear()
        self._step_names.clear()

    def share_step(self, episodes: Sequence[Episode]) -> None:
        """The trainer's hook before a step's first episode: the live features encode the step's sentences once
        in each view the denoiser reads (``LiveFeatures.share_step``; nothing unless its ``step_tokens``)."""
        if isinstance(self.features, LiveFeatures):
            sentences: list[Sentence | QuerySentence] = [s for ep in episodes for s in (*ep.support, *ep.query)]
            views: tuple[View, ...] = ("text",) if self.denoiser.mode == "off" else ("text", "text+image")
            self.features.share_step(dict.fromkeys(views, sentences))

    def before_step(self) -> None:
        """The trainer's hook before each optimizer step: send the gradient the step's episodes left on what
        they shared (the label-name vectors with ``label_vectors_per_step``, the sentences' encodings after
        ``share_step``) through the encoder, in one backward pass.
        (A loop of one's own that calls ``loss`` in training mode must call it too, before each step.)"""
        pending = [(out, leaf.grad) for out, leaf in self._step_names.values() if leaf.grad is not None]
        if isinstance(self.features, LiveFeatures):
            pending += self.features.finish_step()
        send_back(pending)
        self._step_names.clear()

    def fused(
        self, sentences: list[Sentence | QuerySentence], mode: DenoiserMode | None = None
    ) -> tuple[Padded, Tensor]:
        """E_f ``(B, W, H)`` with its mask, and the denoiser weights ``(B, W, 2)``."""
        mode = mode or self.denoiser.mode
        text = self.features(sentences, "text")
        multi = self.features(sentences, "text+image").vectors if mode != "off" else None
        fused, weights = self.denoiser(text.vectors, multi, mode)
        return Padded(fused, text.mask), weights

    def label_vectors(self, labels: tuple[str, ...]) -> Tensor | None:
        """The encoder's vector of each label's name, ``(C, H)``: the mean over its words, or (``label_vector``
        ``cls``) the vector at the [CLS] position of ``[CLS] name [SEP]``."""
        if not self.tapnet.label_enhanced:
            return None
        frozen = isinstance(self.features, FrozenFeatures) or not torch.is_grad_enabled()
        if frozen and labels in self._frozen_names:
            return self._frozen_names[labels]
        shared = self.label_vectors_per_step and not frozen and self.training
        if shared and labels in self._step_names:
            return self._step_names[labels][1]
        names = [
            Sentence(f"label:{lab}", tuple(label_name(lab).split()), ("O",) * len(label_name(lab).split()), "")
            for lab in labels
        ]
        encoder = self.features.encoder
        batch = encoder.tokenize(names, "text").to(encoder.device)
        with torch.set_grad_enabled(not frozen):
            if self.label_vector == "cls":
                out = encoder.cls_vectors(batch)  # (C, H)
            else:
                vectors = encoder(batch)  # (C, W, H)
                m = batch.word_mask.unsqueeze(-1).to(vectors.dtype)
                out = (vectors * m).sum(1) / m.sum(1)  # (C, H)
        if frozen:
            self._frozen_names[labels] = out.detach()
        elif shared and out.requires_grad:  # (an encoder with nothing to train has nothing to send back)
            # The encoder's parameters do not move within an optimizer step, so the step's episodes
            # share one forward; their gradients gather on a leaf and go back once (before_step).
            leaf = out.detach().requires_grad_()
            self._step_names[labels] = (out, leaf)
            return leaf
        return out

    def forward(self, episode: Episode | TestEpisode, mode: DenoiserMode | None = None) -> EpisodeOutput:
        labels = episode.labels
        if self.join_support_query:  # one encoder call per view instead of two (pads to the longer part)
            both, both_weights = self.fused([*episode.support, *episode.query], mode)
            n = len(episode.support)
            w_s = int(both.mask[:n].sum(1).max())
            w_q = int(both.mask[n:].sum(1).max())
            support = Padded(both.vectors[:n, :w_s], both.mask[:n, :w_s])
            query = Padded(both.vectors[n:, :w_q], both.mask[n:, :w_q])
            weights = both_weights[n:, :w_q]  # (Bq, W, 2)
        else:
            support, _ = self.fused(list(episode.support), mode)
            query, weights = self.fused(list(episode.query), mode)
        ids = torch.tensor(
            [i for s in episode.support for i in label_ids(s.tags, labels)], device=support.vectors.device
        )
        emissions = self.tapnet(
            query.vectors, support.vectors[support.mask], ids, self.label_vectors(labels)
        )  # (Bq, W, C)
        transitions, start, end = self.cdt(labels)
        return EpisodeOutput(emissions, query.mask, weights, transitions, start, end)

    def loss(self, episode: Episode) -> Tensor:
        """CRF negative log-likelihood of the query's gold tags, mean over query sentences."""
        out = self.forward(episode)
        tags = tag_tensor([s.tags for s in episode.query], episode.labels, out.mask.size(1)).to(out.mask.device)
        return crf.nll(out.emissions, out.mask, tags, out.transitions, out.start, out.end, reduction="mean")

    @torch.no_grad()
    def decode(
        self, episode: Episode | TestEpisode, mode: DenoiserMode | None = None
    ) -> tuple[list[list[str]], EpisodeOutput]:
        """Viterbi tags for each query sentence, and the forward pass they came from."""
        out = self.forward(episode, mode)
        paths, _ = crf.viterbi(out.emissions, out.mask, out.transitions, out.start, out.end)
        labels = episode.labels
        tags = [
            [labels[i] for i in path[: len(s.tokens)].tolist()] for path, s in zip(paths, episode.query, strict=True)
        ]
        return tags, out

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


def length_chunks(lengths: list[int], max_tokens: int) -> list[tuple[int, int]]:
    """Split ascending sequence lengths into consecutive runs ``[a, b)`` whose padded batch (count times the
    run's longest) holds at most ``max_tokens`` tokens; a sequence longer than that is a run of its own."""
    if any(b < a for a, b in zip(lengths, lengths[1:], strict=False)):
        raise ValueError("lengths must be in ascending order")
    runs: list[tuple[int, int]] = []
    start = 0
    for i, n in enumerate(lengths):
        if i > start and (i - start + 1) * n > max_tokens:
            runs.append((start, i))
            start = i
    if lengths:
        runs.append((start, len(lengths)))
    return runs


@dataclass
class _Shared:
    """An optimizer step's sentences in one view, encoded once."""

    rows: dict[tuple[tuple[str, ...], str | None], int]  # each sentence's input key -> its row
    out: Tensor  # (U, W, H) the encoder's output, its graph kept until the step ends
    leaf: Tensor  # (U, W, H) the same values, detached: the episodes' losses leave their gradients here
    mask: Tensor  # (U, W) bool


def check_step_tokens(value: object) -> int:
    """``step_tokens`` as given, or a ``ValueError``: an integer >= 0 (0: one encoder call per request)."""
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"step_tokens must be an integer >= 0 (0: no sharing), got {value!r}")
    return value


class LiveFeatures:
    """Runs the encoder (with gradient when it is training): the fine-tuning profiles.

    ``step_tokens`` > 0 lets a trainer share one encoding among an optimizer step's episodes
    (``share_step``, then ``finish_step`` before the step): the encoder's weights do not move within a
    step, so each sentence is encoded once per view, in a few calls of length-sorted sentences of at most
    ``step_tokens`` padded sub-tokens each, instead of two or more calls per episode; each episode's loss
    sends its gradient to a detached copy, and the step sends their sum through the encoder once. The same
    function and gradient as one call per request, summed in another order (and, with dropout, other masks).
    """

    def __init__(self, encoder: WordEncoder, step_tokens: int = 0) -> None:
        self.encoder = encoder
        self.step_tokens = check_step_tokens(step_tokens)
        self._shared: dict[View, _Shared] = {}

    def __call__(self, sentences: list[Sentence | QuerySentence], view: View) -> Padded:
        shared = self._shared.get(view)
        if shared is not None:
            keys = [self.encoder.input_key(s, view) for s in sentences]
            if all(k in shared.rows for k in keys):
                idx = torch.tensor([shared.rows[k] for k in keys], device=shared.leaf.device)  # (B,)
                mask = shared.mask[idx]  # (B, W_step)
                w = int(mask.sum(1).max()) if len(keys) else 0
                return Padded(shared.leaf[idx, :w], mask[:, :w])  # as one call on these sentences pads them
        batch = self.encoder.tokenize(sentences, view).to(self.encoder.device)
        return Padded(self.encoder(batch), batch.word_mask)

    def share_step(self, inputs: dict[View, list[Sentence | QuerySentence]]) -> None:
        """Encode a step's sentences, each once per view, for the calls until ``finish_step`` (no-op unless
        ``step_tokens``)."""
        self._shared.clear()
        if not self.step_tokens:
            return
        for view, sentences in inputs.items():
            unique = {self.encoder.input_key(s, view): s for s in sentences}
            keys, sents = list(unique), list(unique.values())
            counts = self.encoder.token_counts(sents, view)
            order = sorted(range(len(keys)), key=counts.__getitem__)  # by length, stable
            n_words = max((len(s.tokens) for s in sents), default=0)
            outs, masks = [], []
            for a, b in length_chunks([counts[i] for i in order], self.step_tokens):
                batch = self.encoder.tokenize([sents[i] for i in order[a:b]], view).pad_words(n_words)
                batch = batch.to(self.encoder.device)
                outs.append(self.encoder(batch))  # (b - a, n_words, H)
                masks.append(batch.word_mask)
            out = torch.cat(outs)  # (U, W, H), rows in length order
            leaf = out.detach().requires_grad_(out.requires_grad)
            self._shared[view] = _Shared({keys[i]: row for row, i in enumerate(order)}, out, leaf, torch.cat(masks))

    def finish_step(self) -> list[tuple[Tensor, Tensor]]:
        """End the step's sharing: each shared encoding with the gradient the step's losses left on it, for one
        backward pass through the encoder (``send_back``)."""
        pending = [(s.out, s.leaf.grad) for s in self._shared.values() if s.leaf.grad is not None]
        self._shared.clear()
        return pending

    def add_domain(self, domain: Domain) -> None:
        """Nothing to precompute."""


def send_back(pending: list[tuple[Tensor, Tensor]]) -> None:
    """One backward pass from each output with its gradient (``LiveFeatures.finish_step``'s pairs)."""
    if pending:
        torch.autograd.backward([out for out, _ in pending], [grad for _, grad in pending])


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

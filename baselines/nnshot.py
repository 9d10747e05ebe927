"""NNShot and StructShot (Yang and Katiyar, EMNLP 2020): a supervised tagger on the source, then nearest neighbours.

Both train the encoder as a tagger on every labelled source sentence: the source training of
``BERT+CRF transfer`` (the same configuration, so the same cached weights: the record's fit report
names the cache file it loaded). At test time neither learns anything from the support:

- ``nnshot``: each query word takes the tag of its nearest support word (``O`` included), by squared
  Euclidean distance between the trained encoder's word vectors (the paper's; ``distance: cosine``
  the alternative a probe may choose); an ``I-X`` that no ``B-X`` or ``I-X`` precedes is read as ``B-X``
  (IOB2).
- ``structshot``: NNShot's per-tag scores (the negative distance to the tag's nearest support word),
  over a temperature and normalised by a softmax over the episode's tags, are the emissions of a
  Viterbi decoding whose transitions are abstract: how often the source's tag sequences go O to O,
  O to B, B or I to I of the same type, B or I to B of another type, and so on, each probability
  shared evenly among the episode's tags of that kind (``abstract_transitions``); a transition the
  source never makes (O to I) is impossible. Decoded with the project's CRF kernels.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from baselines.bert_crf import CANONICAL_TYPES, BertCRF
from fewshot_ner import crf
from fewshot_ner.episodes import TestEpisode
from fewshot_ner.labels import canonical_label, io_classes, io_to_bio, label_ids
from fewshot_ner.method import METHODS, RunContext, SourceTask
from fewshot_ner.registry import check_choice

DISTANCES = ("euclidean", "cosine")
TAGGINGS = ("bio", "io")  # io: one class per type, B and I pooled (Few-NERD's setting), written back as IOB2
IMPOSSIBLE = -1e4  # the log-probability of a transition the source never makes


def nearest_tag_scores(
    query: Tensor, support: Tensor, support_ids: Tensor, n_labels: int, distance: str = "euclidean"
) -> Tensor:
    """Per query word and tag, minus the distance to the tag's nearest support word ``(B, W, C)``.

    ``query`` ``(B, W, H)``, ``support`` ``(N, H)`` with tag ids ``(N,)``; a tag without support
    words scores ``-inf``. Squared Euclidean, or cosine distance (1 - cosine similarity).
    """
    if distance == "euclidean":
        dist = torch.cdist(query, support.unsqueeze(0).expand(query.size(0), -1, -1)) ** 2  # (B, W, N)
    elif distance == "cosine":
        q = torch.nn.functional.normalize(query, dim=-1)
        s = torch.nn.functional.normalize(support, dim=-1)
        dist = 1.0 - q @ s.T  # (B, W, N)
    else:
        raise ValueError(f"distance must be one of {', '.join(DISTANCES)}, got {distance!r}")
    return nearest_by_tag(dist, support_ids, n_labels)


def nearest_by_tag(dist: Tensor, support_ids: Tensor, n_labels: int) -> Tensor:
    """Minus each tag's smallest distance ``(B, W, C)`` from distances ``(B, W, N)`` to support words of tag ids
    ``(N,)``; a tag without support words scores ``-inf``."""
    scores = torch.full((*dist.shape[:2], n_labels), -math.inf, dtype=dist.dtype)  # (B, W, C)
    for c in support_ids.unique().tolist():
        scores[..., c] = -dist[..., support_ids == c].min(dim=-1).values
    return scores


def tag_classes(labels: tuple[str, ...], tagging: str) -> tuple[tuple[str, ...], Tensor]:
    """The tags the nearest neighbours choose among and each label's tag ``(L,)``: the episode's BIO labels, or
    with ``io`` an IO tag per type (``I-PER``; ``B-PER`` and ``I-PER`` support words alike) and ``O``."""
    if tagging == "bio":
        return labels, torch.arange(len(labels))
    classes, of_label = io_classes(labels)
    return tuple(c if c == "O" else f"I-{c}" for c in classes), torch.tensor(of_label)


def as_io(tags: Sequence[str]) -> tuple[str, ...]:
    """A BIO tag sequence in IO: ``B-X`` becomes ``I-X``."""
    return tuple(t if t == "O" else f"I-{t[2:]}" for t in tags)


def repair_iob2(tags: Sequence[str]) -> list[str]:
    """IOB2: an ``I-X`` whose previous tag is neither ``B-X`` nor ``I-X`` opens an entity (``B-X``)."""
    out: list[str] = []
    for tag in tags:
        if tag.startswith("I-") and (not out or out[-1][2:] != tag[2:] or out[-1] == "O"):
            tag = "B-" + tag[2:]
        out.append(tag)
    return out


def _kind(tag: str) -> str:
    return "O" if tag == "O" else tag[0]


def transition_kind(prev: str, nxt: str) -> str:
    """The abstract kind of a transition: ``O>O``, ``O>B``, ``O>I``, ``B>O``, ``B>B=`` (same type),
    ``B>B!`` (another), ``B>I=``, ``B>I!``, and the same from ``I``; ``S>`` from the sentence start."""
    head = f"{_kind(prev)}>{_kind(nxt)}"
    if prev == "O" or nxt == "O":
        return head
    return head + ("=" if prev[2:] == nxt[2:] else "!")


def abstract_counts(sequences: Iterable[Sequence[str]]) -> Counter[str]:
    """How often each abstract transition occurs in tag sequences, sentence starts as ``S>O``/``S>B``/``S>I``."""
    counts: Counter[str] = Counter()
    for tags in sequences:
        if tags:
            counts[f"S>{_kind(tags[0])}"] += 1
        for prev, nxt in zip(tags, tags[1:], strict=False):
            counts[transition_kind(prev, nxt)] += 1
    return counts


def abstract_transitions(
    counts: Counter[str], labels: tuple[str, ...], power: float | None = None
) -> tuple[Tensor, Tensor]:
    """Log-probabilities ``(C, C)`` of moving between the episode's labels, and ``(C,)`` of starting in each.

    Each abstract kind's probability (its count over the counts from the same kind of tag) is shared
    evenly among the labels it leads to here; a kind never seen is ``IMPOSSIBLE``. With ``power``
    (CONTaiNER's ``temp_trans``), each row's probabilities are raised to it and normalised again
    (``power`` < 1 flattens them towards uniform; what is impossible stays all but so).
    """

    def log_share(kind: str, origin: str, targets: list[str]) -> float:
        total = sum(v for k, v in counts.items() if k.startswith(origin + ">"))
        p = counts.get(kind, 0) / total if total else 0.0
        return math.log(p / len(targets)) if p > 0 else IMPOSSIBLE

    n = len(labels)
    transitions = torch.empty(n, n)
    for i, prev in enumerate(labels):
        kinds = [transition_kind(prev, nxt) for nxt in labels]
        for j, kind in enumerate(kinds):
            transitions[i, j] = log_share(
                kind, _kind(prev), [t for t, k in zip(labels, kinds, strict=True) if k == kind]
            )
    starts = [f"S>{_kind(lab)}" for lab in labels]
    start = torch.tensor(
        [log_share(k, "S", [t for t, kk in zip(labels, starts, strict=True) if kk == k]) for k in starts]
    )
    if power is not None:  # p ** power / sum(p ** power), row by row, in log space
        transitions, start = torch.log_softmax(power * transitions, -1), torch.log_softmax(power * start, -1)
    return transitions, start


@METHODS.register("nnshot")
class NNShot(BertCRF):
    """NNShot (Yang and Katiyar 2020): the source-trained tagger's word vectors, each query word tagged as its nearest support word."""

    #: The options NNShot adds to the source tagger's (``BertCRF``'s), with their defaults.
    own_options: dict[str, Any] = {"distance": "euclidean", "tagging": "bio"}
    #: The source tagger's options that this method fixes or defaults (``BertCRF``'s otherwise).
    tagger_defaults: dict[str, Any] = {"protocol": "transfer", "steps": 0}
    transfer_owner: str | None = "BertCRF"  # its source training is BERT+CRF transfer's: the same cache file

    def __init__(self, ctx: RunContext, **options: Any) -> None:
        own, _ = self.split_own(options)
        self.own = {**self.own_options, **own}
        super().__init__(ctx, **options)

    @classmethod
    def split_own(cls, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        own = {k: v for k, v in options.items() if k in cls.own_options}
        return own, {k: v for k, v in options.items() if k not in cls.own_options}

    @classmethod
    def check_options(cls, options: dict[str, Any]):  # type: ignore[override]
        own, tagger = cls.split_own(options)
        cls.check_own({**cls.own_options, **own})
        cfg = super().check_options(cls.tagger_defaults | tagger)
        if cfg.protocol != "transfer" or cfg.steps:
            raise ValueError(f"{cls.__name__} trains on the source only: protocol transfer, steps 0")
        return cfg

    @classmethod
    def check_own(cls, own: dict[str, Any]) -> None:
        """A ``ValueError`` for an own option out of range."""
        check_choice("distance", own["distance"], DISTANCES)
        check_choice("tagging", own.get("tagging", "bio"), TAGGINGS)
        if float(own.get("temperature", 1.0)) <= 0:
            raise ValueError(f"temperature must be > 0, got {own['temperature']}")

    @classmethod
    def resolved_config(cls, options: dict[str, Any]) -> dict[str, Any]:
        own, _ = cls.split_own(options)
        return super().resolved_config(options) | cls.own_options | own

    def config(self) -> dict[str, Any]:
        return super().config() | self.own

    def fit(self, sources: list[SourceTask]) -> None:
        super().fit(sources)
        self.source_tags = [
            tuple(canonical_label(t) for t in s.tags) for task in sources for s in task.domain.sentences
        ]

    @property
    def tagging(self) -> str:
        return str(self.own.get("tagging", "bio"))

    @torch.no_grad()
    def scores(self, episode: TestEpisode) -> tuple[Tensor, Tensor, tuple[str, ...]]:
        """NNShot's scores of the query ``(Bq, W, C)`` over its tags (``tag_classes``), its word mask ``(Bq, W)``
        and the tags."""
        self.encoder.eval()
        view = self.predict_view()
        support = self.features(list(episode.support), view)
        query = self.features(list(episode.query), view)
        classes, of_label = tag_classes(episode.labels, self.tagging)
        ids = of_label[torch.tensor([i for s in episode.support for i in label_ids(s.tags, episode.labels)])]
        vectors = support.vectors[support.mask]  # (N, H): the support's real words, in order
        scores = nearest_tag_scores(query.vectors, vectors, ids, len(classes), self.own["distance"])
        return scores, query.mask, classes

    def write_tags(self, tags: list[str]) -> list[str]:
        """A sentence's chosen tags as IOB2: with ``io`` each run of a type is one entity, with ``bio`` an orphan
        ``I-X`` opens one."""
        return io_to_bio([t.partition("-")[2] or "O" for t in tags]) if self.tagging == "io" else repair_iob2(tags)

    def predict(self, episode: TestEpisode) -> list[list[str]]:
        scores, _, classes = self.scores(episode)
        best = scores.argmax(-1)  # (Bq, W)
        return [
            self.write_tags([classes[j] for j in best[b, : len(s.tokens)].tolist()])
            for b, s in enumerate(episode.query)
        ]


@METHODS.register("structshot")
class StructShot(NNShot):
    """StructShot (Yang and Katiyar 2020): NNShot's scores as emissions, abstract source transitions, Viterbi."""

    own_options: dict[str, Any] = {"distance": "euclidean", "temperature": 1.0, "tagging": "bio"}

    def predict(self, episode: TestEpisode) -> list[list[str]]:
        scores, mask, classes = self.scores(episode)
        emissions = torch.log_softmax(scores / float(self.own["temperature"]), dim=-1)  # (Bq, W, C)
        emissions = emissions.nan_to_num(neginf=IMPOSSIBLE)  # a tag without support words
        canon = tuple(canonical_label(lab) for lab in classes)
        source = self.source_tags if self.tagging == "bio" else [as_io(t) for t in self.source_tags]
        transitions, start = abstract_transitions(abstract_counts(source), canon)
        paths, _ = crf.viterbi(emissions, mask, transitions, start, torch.zeros(len(canon)))
        rows = [[classes[j] for j in paths[b, : len(s.tokens)].tolist()] for b, s in enumerate(episode.query)]
        # the Viterbi path is IOB2 already (no transition the source never makes); IO runs are written as NNShot's
        return [self.write_tags(r) for r in rows] if self.tagging == "io" else rows


__all__ = [
    "CANONICAL_TYPES",
    "NNShot",
    "StructShot",
    "abstract_counts",
    "abstract_transitions",
    "as_io",
    "nearest_by_tag",
    "nearest_tag_scores",
    "tag_classes",
]

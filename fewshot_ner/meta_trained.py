"""Methods meta-trained on source episodes over the encoder's word vectors: what the baselines share.

``MetaTrained`` holds it once: the options (``MetaTrainedConfig``: the input axis and MFNER's
encoder learning rate and step budget), the encoder fine-tuned through the shared episodic
trainer, the method's own small parameters (its ``head``), and the stored configuration. A
subclass brings its ``loss`` on a source episode and its ``predict``.

``TokenClassifier`` (ProtoNet, WPZ) goes one step further: a subclass gives only its ``scores``
(query words against the support, one score per class). Here: the input axis (``text`` or
``text+image``: the tweet's own words read from the tweet [SEP] image-text view, as MFNER's
second view), the tagging scheme (``bio``: a class per BIO label; ``io``: a class per entity type,
``B-x`` and ``I-x`` pooled, written back as IOB2 by runs), token cross-entropy on each source
episode's query, classes absent from the support masked, and per-token argmax at test time (no CRF).
"""

from __future__ import annotations

import dataclasses
import time
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fewshot_ner.data import QuerySentence, Sentence
from fewshot_ner.datasets import Domain
from fewshot_ner.encoder import TrainLayers, View, check_train_layers
from fewshot_ner.episodes import Episode, TestEpisode
from fewshot_ner.features import LiveFeatures, check_step_tokens, send_back
from fewshot_ner.labels import io_classes, io_to_bio, label_ids, tag_tensor
from fewshot_ner.method import ConfiguredMethod, Input, RunContext, SourceTask, check_input
from fewshot_ner.trainer import TrainerConfig, train_episodic

ABSENT = -1e4  # score of a label the support lacks: finite, so a query word gold-tagged with it costs a bounded loss


@dataclass(frozen=True)
class MetaTrainedConfig:
    """Options shared by the meta-trained baselines; stored with every result.

    Defaults are MFNER's (encoder learning rate, passes, step floor, episodes per step, clipping),
    so that a baseline row differs from MFNER's in its model, not in its training budget.
    """

    input: Input = "text"
    encoder_lr: float = 5e-5
    head_lr: float = 1e-2
    passes: int = 2
    min_steps: int = 200
    episodes_per_step: int = 4
    grad_clip_value: float = 5.0
    max_train_episodes: int | None = None  # per source domain; None: all
    encoder_dropout: bool = True  # the encoder's dropout while meta-training (MFNER trains its encoder without)
    train_layers: TrainLayers = None  # the top N transformer layers; "all": every layer, embeddings frozen; None: all
    # 0: the encoder runs per request (support, query) of each episode; N: once per optimizer step on the step's
    # sentences, in length-sorted calls of at most N padded sub-tokens (fewshot_ner.features.LiveFeatures)
    step_tokens: int = 0

    @property
    def trainer(self) -> TrainerConfig:
        return TrainerConfig(self.passes, self.min_steps, self.episodes_per_step, self.grad_clip_value)


class MetaTrained(ConfiguredMethod):
    """Base: a subclass sets ``config_class``, builds its ``head`` and gives its ``loss`` and ``predict``."""

    config_class: type[MetaTrainedConfig] = MetaTrainedConfig
    extra_options: dict[str, Any] = {}  # options of the subclass's head, with their defaults
    shuffle_name: str = "meta-trained"

    def __init__(self, ctx: RunContext, **options: Any) -> None:
        super().__init__(ctx)
        base, extra = self.split_options(options)
        self.cfg = self.config_class(**base)
        self.extra = {**self.extra_options, **extra}
        self._input = check_input(self.cfg.input)
        self.encoder = ctx.word_encoder()
        self.features = LiveFeatures(self.encoder, self.cfg.step_tokens)
        self.head = self.build_head(**self.extra).to(ctx.torch_device)
        self._report: dict[str, Any] = {}

    @classmethod
    def split_options(cls, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        fields = {f.name for f in dataclasses.fields(cls.config_class)}
        unknown = set(options) - fields - set(cls.extra_options)
        if unknown:
            known = sorted(fields | set(cls.extra_options))
            raise ValueError(
                f"method {cls.__name__} has no option {', '.join(sorted(unknown))}; known: {', '.join(known)}"
            )
        return {k: v for k, v in options.items() if k in fields}, {k: v for k, v in options.items() if k not in fields}

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        base, extra = cls.split_options(options)
        cfg = cls.config_class(**base)
        check_input(cfg.input)
        check_train_layers(cfg.train_layers)
        check_step_tokens(cfg.step_tokens)
        cls.check_extra({**cls.extra_options, **extra})

    @classmethod
    def resolved_config(cls, options: dict[str, Any]) -> dict[str, Any]:
        base, extra = cls.split_options(options)
        return dataclasses.asdict(cls.config_class(**base)) | cls.extra_options | extra

    @classmethod
    def check_extra(cls, extra: dict[str, Any]) -> None:  # noqa: B027 - subclasses with choices check them
        """Raise ``ValueError`` on a bad value of a subclass option."""

    @classmethod
    def quick_options(cls) -> dict[str, Any]:
        return {"passes": 1, "min_steps": 0, "episodes_per_step": 1}  # a step per source episode: bench's 64

    @abstractmethod
    def build_head(self, **extra: Any) -> nn.Module:
        """The method's own parameters (a scale, a temperature, span scorers), trained at ``head_lr``; called
        with every option of ``extra_options``, given or defaulted there (the one place a default lives)."""

    @abstractmethod
    def loss(self, episode: Episode) -> Tensor:
        """The method's training loss on one source episode (gold tags on support and query)."""

    def step_inputs(self, episodes: Sequence[Episode]) -> dict[View, list[Sentence | QuerySentence]]:
        """The sentences a step's ``loss`` calls read through ``features``, by view (encoded once a step with
        ``step_tokens``; a sentence left out is encoded where it is asked for)."""
        return {self.cfg.input: [s for ep in episodes for s in (*ep.support, *ep.query)]}

    def share_step(self, episodes: Sequence[Episode]) -> None:
        """The trainer's hook before a step's first episode: the step's sentences encoded once (``step_tokens``)."""
        self.features.share_step(self.step_inputs(episodes))

    def before_step(self) -> None:
        """The trainer's hook before each optimizer step: the gradient the step's losses left on the shared
        encoding, sent through the encoder in one backward pass."""
        send_back(self.features.finish_step())

    def config(self) -> dict[str, Any]:
        return super().config() | self.extra

    def fit(self, sources: list[SourceTask]) -> None:
        t0 = time.perf_counter()
        episodes = [ep for task in sources for ep in task.episodes[: self.cfg.max_train_episodes]]
        groups = [{"params": list(self.head.parameters()), "lr": self.cfg.head_lr}]
        trained = self.encoder.trainable(self.cfg.train_layers, self.cfg.encoder_lr > 0)
        if trained:
            groups.append({"params": trained, "lr": self.cfg.encoder_lr})
        self.encoder.train(self.cfg.encoder_lr > 0 and self.cfg.encoder_dropout)
        self.head.train()
        shared = self.cfg.step_tokens > 0
        report = train_episodic(
            self.loss,
            episodes,
            groups,
            self.cfg.trainer,
            f"{self.shuffle_name}:{self.ctx.seed}",
            self.ctx.progress,
            before_step=self.before_step if shared else None,
            checkpoint=self.ctx.checkpoint,
            start_step=self.share_step if shared else None,
        )
        self.encoder.eval()
        self.head.eval()
        self._report = report | {"fit_s": round(time.perf_counter() - t0, 1)}

    def prepare(self, target: Domain) -> None:
        self.encoder.eval()
        self.head.eval()


Tagging = Literal["bio", "io"]


@dataclass(frozen=True)
class TokenClassifierConfig(MetaTrainedConfig):
    """``MetaTrainedConfig`` plus the tagging scheme of the token-wise methods.

    ``bio`` (a class per label): in 1 shot the support's one entity of a type is often a single
    word, so ``I-x`` has no support vector, is masked, and no multi-word entity of that type can be
    written. ``io`` (the default; Few-NERD's ProtoBERT setting): one class per type, prototypes from
    every word of the type's entities, runs written back as IOB2; two same-type entities side by
    side merge. Chosen by the ``probes`` suite on the source domain (T15 train -> valid, 97
    episodes): ProtoNet (cosine) 48.16 with io against 41.32 with bio, WPZ 43.69 against 38.54.
    The paper does not say which scheme its baselines used.
    """

    tagging: Tagging = "io"

    def __post_init__(self) -> None:
        if self.tagging not in ("bio", "io"):
            raise ValueError(f"tagging must be bio or io, got {self.tagging!r}")


class TokenClassifier(MetaTrained):
    """Base of the token-wise metric methods: a subclass implements ``scores``."""

    config_class = TokenClassifierConfig
    cfg: TokenClassifierConfig
    shuffle_name = "token-classifier"

    @abstractmethod
    def scores(self, query: Tensor, support: Tensor, support_ids: Tensor, n_labels: int) -> Tensor:
        """Scores ``(Bq, W, C)`` of query words ``(Bq, W, H)`` given support words ``(N, H)`` with class ids
        ``(N,)``; C classes."""

    def _classes(self, labels: tuple[str, ...]) -> tuple[tuple[str, ...], Tensor]:
        """The classes scored (the labels, or their IO types) and each label's class ``(L,)``."""
        if self.cfg.tagging == "io":
            classes, of_label = io_classes(labels)
            return classes, torch.tensor(of_label)
        return labels, torch.arange(len(labels))

    def _emissions(self, episode: Episode | TestEpisode) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Masked scores ``(Bq, W, C)`` over the classes (absent ones at ``ABSENT``), the query mask
        ``(Bq, W)``, the classes present in the support ``(C,)`` and each label's class ``(L,)``."""
        classes, of_label = self._classes(episode.labels)
        sup = self.features(list(episode.support), self.cfg.input)
        qry = self.features(list(episode.query), self.cfg.input)
        of_label = of_label.to(sup.vectors.device)
        support_labels = [i for s in episode.support for i in label_ids(s.tags, episode.labels)]
        ids = of_label[torch.tensor(support_labels, device=of_label.device)]  # (N,) class of each support word
        scores = self.scores(qry.vectors, sup.vectors[sup.mask], ids, len(classes))  # (Bq, W, C)
        present = torch.bincount(ids, minlength=len(classes)) > 0  # (C,)
        return scores.masked_fill(~present, ABSENT), qry.mask, present, of_label

    def loss(self, episode: Episode) -> Tensor:
        """Token cross-entropy of the query's gold tags, mean over the query words whose gold label the
        support holds. A word gold-tagged with a label the support lacks (in 1-shot, often an ``I-X``)
        can't be scored by any support vector; kept in the loss at ``ABSENT`` it would cost 1e4 and
        swamp every other word (the first ProtoNet cells trained that way: mean NLL 350, F1 15)."""
        scores, mask, present, of_label = self._emissions(episode)
        gold_labels = tag_tensor([s.tags for s in episode.query], episode.labels, mask.size(1))  # (Bq, W)
        gold = of_label[gold_labels.to(mask.device)]  # (Bq, W) class ids
        keep = mask & present[gold]  # (Bq, W)
        if not keep.any():
            return scores.sum() * 0.0  # nothing scorable: no gradient, but a graph for backward
        return F.cross_entropy(scores[keep], gold[keep])

    @torch.no_grad()
    def predict(self, episode: TestEpisode) -> list[list[str]]:
        scores, _, _, _ = self._emissions(episode)
        best = scores.argmax(-1)  # (Bq, W) class ids
        classes, _ = self._classes(episode.labels)
        rows = [[classes[i] for i in row[: len(s.tokens)].tolist()] for row, s in zip(best, episode.query, strict=True)]
        return [io_to_bio(r) for r in rows] if self.cfg.tagging == "io" else rows

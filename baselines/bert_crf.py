"""BERT+CRF: the encoder, a linear layer to the episode's tags and the project's CRF, fine-tuned per episode.

Input (``input``, default ``text+image`` as the paper ran it): the tweet [SEP] its image text;
only the tweet's words get vectors, tags and CRF positions (the image text is context only).

Two protocols (``protocol``):

- ``support`` (the paper's): per test episode, the pre-trained encoder as it was before the
  episode (restored bit for bit afterwards), a new tag head and CRF initialised from the
  episode's generator, ``steps`` Adam steps on batches of ``batch_size`` support sentences drawn
  by that generator (dropout too), then Viterbi on the query. Nothing is learned from the source.
- ``transfer`` (a practitioner's): ``fit`` first fine-tunes encoder, head and CRF on every
  labelled sentence of the source domains for ``transfer_epochs`` passes, with the catch-all
  type under one name (Twitter-2015's OTHER and Twitter-2017's MISC are both "MISC", so the
  head's rows serve either target); per episode, the head rows and CRF scores of the episode's
  labels are taken from it, ``steps`` support steps follow (0: none), and the weights are
  restored after the episode.
- ``fulldata`` (beyond the paper, the ``fulldata`` suite): ``fit`` trains on a target's standard train
  split for ``fulldata_epochs`` passes with one optimizer (source training's rates, batch and frozen
  embeddings), checks F1 on its valid split after each pass and keeps the best pass's weights; ``predict``
  tags the whole test split with them.

Every per-episode draw comes from ``ctx.generator(episode.index)``: an episode's tags do not
depend on which episodes ran before it.

Defaults, chosen by the ``probes-finetune`` suite (T15 train -> valid, the first 30 dev episodes,
1 shot): per-episode steps train the head and CRF only (``train_layers=0``) at ``head_lr=1e-2``
(8.82 F1; 4.53 at 1e-3). Fine-tuning encoder layers at the paper's rates was not detectably better
and costs 20-60x more: all layers at 1e-4 scored 11.86 (12.57 with head 1e-2), at 1e-5 2.62, at
1e-6 4.65; the top 2 layers at 1e-4 with head 1e-2 10.73, +1.91 [-1.77, +5.84] over head only. All
layers take ~10 s an episode, a 200-episode cell past the 1,200 s budget. The transfer rows take no
support steps (20 steps: -0.88 [-6.22, +4.32]; 59.04 against 59.92), and their source training leaves
the word embeddings frozen (``transfer_train_layers=6``: 59.92, as with every parameter trained, in 523 s
of fit against 602 s, separate runs under different load; the top 3 layers only: 54.21, -5.70 [-11.21, -0.26], in 328 s).

The source training of ``transfer`` depends on neither K nor the episodes, so its weights are kept on
disk (``$MFNER_CACHE/transfer``), keyed by everything that decides them (the method, its
configuration, the encoder's weights, the seed, the source sentences, torch's version, device and
thread count): the 5-shot cells of a seed load what its 1-shot cells trained, bit for bit.

Source training (``transfer`` and ``fulldata``) saves its state to the cell's checkpoint (``ctx.checkpoint``)
every few minutes, as the episodic trainer does: a cell cut short goes on where it stopped, to the same
weights bit for bit (a full-data cell at base size trains for over an hour).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from fewshot_ner import crf
from fewshot_ner.data import Sentence
from fewshot_ner.encoder import DEFAULT_PRECISION, TrainLayers, check_train_layers
from fewshot_ner.episodes import TestEpisode
from fewshot_ner.features import LiveFeatures, Padded
from fewshot_ner.labels import bio_labels, canonical_label, tag_tensor
from fewshot_ner.method import METHODS, ConfiguredMethod, Input, RunContext, SourceTask, check_input, derived_seed
from fewshot_ner.metrics import episode_f1
from fewshot_ner.paths import atomic_path, cache_dir, computed_once
from fewshot_ner.trainer import LoopCheckpoint, restore, snapshot

CANONICAL_TYPES = ("PER", "LOC", "ORG", "MISC")


WordsFn = Callable[[list[Sentence], str], Padded]


@runtime_checkable
class PassHook(Protocol):
    """What a supervised loop calls after each pass (``_steps``' ``after``), with the state a checkpoint keeps."""

    def __call__(self) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class BestOnValid:
    """The full-data protocol's model selection, as a ``PassHook``: after each pass, ``score`` (F1 on the valid
    split); the weights of ``modules`` after the best pass so far are kept (the first of equal passes)."""

    def __init__(self, score: Callable[[], float], modules: tuple[nn.Module, ...]) -> None:
        self.score, self.modules = score, modules
        self.scores: list[float] = []
        self.best: list[dict[str, Tensor]] = []

    def __call__(self) -> None:
        f1 = self.score()
        if not self.scores or f1 > max(self.scores):
            self.best = [snapshot(m) for m in self.modules]
        self.scores.append(f1)

    def restore_best(self) -> None:
        if not self.best:
            raise RuntimeError("no pass was scored on the valid split")
        for module, saved in zip(self.modules, self.best, strict=True):
            restore(module, saved)

    def state_dict(self) -> dict[str, Any]:
        return {"scores": self.scores, "best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scores, self.best = list(state["scores"]), list(state["best"])


def cached_words(features: LiveFeatures, sentences: list[Sentence], views: tuple[str, ...]) -> WordsFn:
    """Word vectors of ``sentences`` in each view, computed once without gradient; a lookup by batch."""
    with torch.no_grad():
        table = {view: features(sentences, view) for view in views}
    row = {s.key: i for i, s in enumerate(sentences)}

    def lookup(batch: list[Sentence], view: str) -> Padded:
        idx = torch.tensor([row[s.key] for s in batch])
        full = table[view]
        mask = full.mask[idx]  # (b, W)
        width = int(mask.sum(1).max())
        return Padded(full.vectors[idx, :width], mask[:, :width])

    return lookup


@dataclass(frozen=True)
class FineTuneConfig:
    """Everything that decides a fine-tuning run; stored with every result (see docs/methods.md for the probe)."""

    input: Input = "text+image"
    protocol: str = "support"  # support | transfer | fulldata
    encoder_lr: float = 1e-5  # the paper's grid: 1e-4, 1e-5, 1e-6
    head_lr: float = 1e-2  # probes-finetune (T15 train -> valid, 30 episodes): 8.82 F1 against 4.53 at 1e-3
    steps: int = 20  # per-episode Adam steps on the support
    train_layers: TrainLayers = (
        0  # per-episode steps update the top N transformer layers (None: all and the embeddings)
    )
    batch_size: int = 4
    grad_clip_value: float = 5.0
    transfer_epochs: int = 1
    fulldata_epochs: int = 5  # the full-data protocol: this many passes, one Adam, the best pass on valid kept
    transfer_max_sentences: int | None = None  # the first N source (full data: train) sentences; --quick caps it
    transfer_batch_size: int = 16
    transfer_encoder_lr: float = 5e-5
    transfer_head_lr: float = 1e-3
    # source training updates the top N layers (None: all and the word embeddings); probes-finetune: 6 (MiniLM's
    # every layer, the embeddings frozen) scores as all (59.92 both), top 3 loses 5.70 [-11.21, -0.26]
    transfer_train_layers: TrainLayers = 6

    def __post_init__(self) -> None:
        check_input(self.input)
        if self.protocol not in ("support", "transfer", "fulldata"):
            raise ValueError(f"protocol must be support, transfer or fulldata, got {self.protocol!r}")
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError("steps must be >= 0 and batch_size >= 1")
        for name in ("train_layers", "transfer_train_layers"):
            check_train_layers(getattr(self, name), name)


class TagHead(nn.Module):
    """A linear layer to C tags and a CRF's transition, start and end scores."""

    def __init__(self, hidden: int, n_tags: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden, n_tags)
        self.transitions = nn.Parameter(torch.zeros(n_tags, n_tags))
        self.start = nn.Parameter(torch.zeros(n_tags))
        self.end = nn.Parameter(torch.zeros(n_tags))
        with torch.no_grad():
            bound = hidden**-0.5  # nn.Linear's own range, drawn from the given generator
            self.linear.weight.uniform_(-bound, bound, generator=generator)
            self.linear.bias.uniform_(-bound, bound, generator=generator)

    def emissions(self, words: Padded) -> Tensor:
        return self.linear(words.vectors)  # (B, W, C)

    def nll(self, words: Padded, tags: Tensor) -> Tensor:
        return crf.nll(self.emissions(words), words.mask, tags, self.transitions, self.start, self.end)

    def decode(self, words: Padded) -> Tensor:
        return crf.viterbi(self.emissions(words), words.mask, self.transitions, self.start, self.end)[0]

    def rows(self, index: list[int], generator: torch.Generator | None = None) -> TagHead:
        """A head over a subset of this one's tags (their rows and CRF scores), as a new module."""
        out = TagHead(self.linear.in_features, len(index), generator)
        idx = torch.tensor(index)
        with torch.no_grad():
            out.linear.weight.copy_(self.linear.weight[idx])
            out.linear.bias.copy_(self.linear.bias[idx])
            out.transitions.copy_(self.transitions[idx][:, idx])
            out.start.copy_(self.start[idx])
            out.end.copy_(self.end[idx])
        return out


@METHODS.register("bert-crf")
class BertCRF(ConfiguredMethod):
    """BERT+CRF fine-tuned per episode on its support (protocol support) or on the source first (transfer)."""

    #: Whose source training a subclass shares (its cache key names that class): NNShot trains as BERT+CRF.
    transfer_owner: str | None = None

    def __init__(self, ctx: RunContext, **options: Any) -> None:
        super().__init__(ctx)
        self.cfg = self.check_options(options)
        self._input = self.cfg.input
        self.encoder = ctx.word_encoder()
        self.features = LiveFeatures(self.encoder)
        self.source_head: TagHead | None = None
        self._snap: dict[str, Tensor] | None = None
        self._report: dict[str, Any] = {}

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> FineTuneConfig:  # type: ignore[override]
        fields = {f.name for f in dataclasses.fields(FineTuneConfig)}
        unknown = sorted(set(options) - fields)
        if unknown:
            raise ValueError(
                f"method {cls.__name__} has no option {', '.join(unknown)}; known: {', '.join(sorted(fields))}"
            )
        return FineTuneConfig(**options)

    @classmethod
    def resolved_config(cls, options: dict[str, Any]) -> dict[str, Any]:
        return dataclasses.asdict(cls.check_options(options))

    @classmethod
    def quick_options(cls) -> dict[str, Any]:
        return {"transfer_max_sentences": 512, "fulldata_epochs": 1}

    # -- the loss of one batch, and the view predictions read (ITA overrides both) --------------

    def batch_loss(self, head: TagHead, batch: list[Sentence], labels: tuple[str, ...], words: WordsFn) -> Tensor:
        words = words(batch, self.cfg.input)
        tags = tag_tensor([s.tags for s in batch], labels, words.mask.size(1)).to(words.mask.device)
        return head.nll(words, tags)

    def predict_view(self) -> str:
        return self.cfg.input

    def batch_views(self) -> tuple[str, ...]:
        """The views ``batch_loss`` reads."""
        return (self.cfg.input,)

    # -- training loops ----------------------------------------------------------------------

    def _steps(
        self,
        head: TagHead,
        sentences: list[Sentence],
        labels: tuple[str, ...],
        n_steps: int,
        batch_size: int,
        lrs: tuple[float, float],
        generator: torch.Generator,
        train_layers: TrainLayers = None,
        every: int = 0,
        after: Callable[[], None] | PassHook | None = None,
        checkpoint: Path | None = None,
    ) -> tuple[list[float], dict[str, Any]]:
        """``n_steps`` Adam steps on batches drawn without replacement (reshuffled when used up); with ``after``,
        it is called after every ``every`` steps with the encoder in eval mode (one optimizer throughout).

        ``checkpoint``: the loop saves there every few minutes (``LoopCheckpoint``) and resumes from what it finds:
        the weights, Adam, the batch order still to come, ``generator``'s and the global random states, and
        ``after``'s state (a ``PassHook``). Returns the losses and the resumed part of a fit report ({} if fresh).
        """
        groups = [{"params": list(head.parameters()), "lr": lrs[1]}]
        trained = self.encoder.trainable(train_layers, lrs[0] > 0)
        if trained:
            groups.append({"params": trained, "lr": lrs[0]})
        opt = torch.optim.Adam(groups)
        params = [p for g in groups for p in g["params"]]
        order: list[int] = []
        losses: list[float] = []
        saver = LoopCheckpoint(checkpoint, params, opt, (len(sentences), n_steps)) if checkpoint else None
        hook = after if isinstance(after, PassHook) else None

        def state() -> dict[str, Any]:
            """Where the loop stands after a step: what ``saver`` keeps beside the tensors."""
            kept = {"steps": len(losses), "losses": losses, "order": order, "generator": generator.get_state()}
            return kept | {"after": hook.state_dict() if hook is not None else {}}

        words: WordsFn = self.features
        if not trained:  # the encoder is frozen for these steps: its word vectors are computed once, not per step
            self.encoder.eval()
            words = cached_words(self.features, sentences, self.batch_views())
        else:
            self.encoder.train()
        with torch.random.fork_rng(devices=[]):  # dropout draws from a seed of this episode, not the global stream
            torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
            if saver is not None and (saved := saver.resume()) is not None:  # the global random state is back too
                losses, order = list(saved["losses"]), list(saved["order"])
                generator.set_state(saved["generator"])
                if hook is not None:
                    hook.load_state_dict(saved["after"])
            for _ in range(len(losses), n_steps):
                if len(order) < batch_size:
                    order += torch.randperm(len(sentences), generator=generator).tolist()
                batch, order = [sentences[i] for i in order[:batch_size]], order[batch_size:]
                loss = self.batch_loss(head, batch, labels, words)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_value_(params, self.cfg.grad_clip_value)
                opt.step()
                losses.append(float(loss.detach()))
                if after is not None and every and len(losses) % every == 0:
                    self.encoder.eval()
                    after()
                    if trained:
                        self.encoder.train()
                if saver is not None and saver.due():
                    saver.save(state())
            if saver is not None and saver.whole_fit_worth_saving():  # the whole fit, should the rest fail
                saver.save(state())
        self.encoder.eval()
        return losses, saver.resumed_report() if saver is not None else {}

    def _source_steps(
        self,
        head: TagHead,
        sentences: list[Sentence],
        labels: tuple[str, ...],
        passes: int,
        generator: torch.Generator,
        after_each_pass: PassHook | None = None,
    ) -> tuple[list[float], dict[str, Any]]:
        """``passes`` passes over ``sentences`` with source training's batch size, rates and trained layers
        (the ``transfer`` and ``fulldata`` protocols), saving to the cell's checkpoint; ``after_each_pass`` and
        what it returns as ``_steps``'."""
        per_pass = -(-len(sentences) // self.cfg.transfer_batch_size)
        return self._steps(
            head,
            sentences,
            labels,
            per_pass * passes,
            self.cfg.transfer_batch_size,
            (self.cfg.transfer_encoder_lr, self.cfg.transfer_head_lr),
            generator,
            self.cfg.transfer_train_layers,
            every=per_pass,
            after=after_each_pass,
            checkpoint=self.ctx.checkpoint,
        )

    def fit(self, sources: list[SourceTask]) -> None:
        if self.cfg.protocol == "fulldata":
            self._fit_fulldata(sources)
            return
        if self.cfg.protocol != "transfer":
            return
        t0 = time.perf_counter()
        labels = bio_labels(CANONICAL_TYPES)
        sentences = [
            dataclasses.replace(s, tags=tuple(canonical_label(t) for t in s.tags))
            for task in sources
            for s in task.domain.sentences
        ][: self.cfg.transfer_max_sentences]
        generator = torch.Generator().manual_seed(derived_seed(self.ctx.seed, "transfer"))
        self.source_head = self.new_source_head(len(labels), generator)
        path = cache_dir() / "transfer" / f"{self.transfer_key(sentences)}.pt"
        # two workers after the same source training (--jobs, or grid workers): one trains, the other waits, loads
        with computed_once(path):
            if path.is_file():
                saved = torch.load(path, map_location=self.ctx.torch_device, weights_only=True)
                restore(self.encoder, saved["encoder"])
                restore(self.source_head, saved["head"])
                self.encoder.eval()
                self._report = json.loads(saved["report"]) | {
                    "loaded_from_cache": path.name,
                    "load_s": round(time.perf_counter() - t0, 1),
                }
                return
            losses, resumed = self._source_steps(
                self.source_head, sentences, labels, self.cfg.transfer_epochs, generator
            )
            self._report = {
                "transfer_sentences": len(sentences),
                "transfer_steps": len(losses),
                "mean_nll_last_100": round(sum(losses[-100:]) / max(len(losses[-100:]), 1), 4),
                "fit_s": round(time.perf_counter() - t0, 1),
            }
            # a cell that loads the weights resumed nothing (its report must not say so); they took all the training
            whole = self._report | {"fit_s": round(self._report["fit_s"] + resumed.get("earlier_train_s", 0.0), 1)}
            saved = {"encoder": snapshot(self.encoder), "head": snapshot(self.source_head), "report": json.dumps(whole)}
            self._report |= resumed
            with atomic_path(path) as tmp:  # a worker reading the cache sees the whole file or none
                torch.save(saved, tmp)

    def new_source_head(self, n_tags: int, generator: torch.Generator) -> nn.Module:
        """The head source training fits beside the encoder (a tag layer and CRF; CONTaiNER: Gaussian heads)."""
        return TagHead(self.encoder.hidden_size, n_tags, generator).to(self.ctx.torch_device)

    def transfer_key(self, sentences: list[Sentence]) -> str:
        """What decides the weights that source training ends with, hashed: the cache file's name."""
        data = hashlib.sha256()
        for s in sentences:
            data.update(json.dumps([s.tokens, s.tags, s.image_text]).encode())
        parts = {
            "method": self.transfer_owner or type(self).__name__,
            "config": dataclasses.asdict(self.cfg),
            "fit": self.fit_options(),
            "encoder": self.encoder.fingerprint,
            "image_view": self.encoder.image_view,
            "seed": self.ctx.seed,
            "data": data.hexdigest(),
            "torch": torch.__version__,
            "device": str(self.ctx.torch_device),
            "threads": torch.get_num_threads(),
        }
        if self.encoder.precision != DEFAULT_PRECISION:  # fp32 keeps the keys its cached weights have
            parts["precision"] = self.encoder.precision
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def fit_options(self) -> dict[str, Any]:
        """Options beyond ``cfg`` that source training reads (ITA: its temperature)."""
        return {}

    def _fit_fulldata(self, sources: list[SourceTask]) -> None:
        """Supervised training on the ``-train`` source for up to ``fulldata_epochs`` passes (one optimizer, the
        layers of ``transfer_train_layers``, as source training); after each pass, F1 on the ``-valid`` source;
        the best pass's weights are kept (model selection on valid, never on test)."""
        t0 = time.perf_counter()
        parts = {task.domain.name.rsplit("-", 1)[-1]: task.domain for task in sources}
        train = list(parts["train"].sentences)[: self.cfg.transfer_max_sentences]
        valid = list(parts["valid"].sentences)
        labels = bio_labels(parts["train"].types)
        generator = torch.Generator().manual_seed(derived_seed(self.ctx.seed, "fulldata"))
        head = self.source_head = TagHead(self.encoder.hidden_size, len(labels), generator).to(self.ctx.torch_device)
        keep = BestOnValid(
            lambda: round(episode_f1([s.tags for s in valid], self._decode(head, valid, labels)), 4),
            (self.encoder, head),
        )
        _, resumed = self._source_steps(head, train, labels, self.cfg.fulldata_epochs, generator, after_each_pass=keep)
        keep.restore_best()
        self._report = {
            "train_sentences": len(train),
            "valid_f1_per_epoch": keep.scores,
            "epochs_kept": 1 + keep.scores.index(max(keep.scores)),
            "fit_s": round(time.perf_counter() - t0, 1),
        } | resumed

    @torch.no_grad()
    def _decode(self, head: TagHead, sentences: list[Any], labels: tuple[str, ...], batch: int = 64) -> list[list[str]]:
        """Viterbi tags of ``sentences`` read in the predicting view, ``batch`` sentences at a time."""
        out = []
        for i in range(0, len(sentences), batch):
            part = sentences[i : i + batch]
            paths = head.decode(self.features(part, self.predict_view()))
            out += [[labels[j] for j in row[: len(s.tokens)].tolist()] for row, s in zip(paths, part, strict=True)]
        return out

    def prepare(self, target: Any) -> None:
        self.encoder.eval()
        self._snap = snapshot(self.encoder)

    def episode_head(self, labels: tuple[str, ...], generator: torch.Generator) -> TagHead:
        if self.cfg.protocol == "transfer":
            assert self.source_head is not None, "fit() trains the source head first"
            canon = bio_labels(CANONICAL_TYPES)
            return self.source_head.rows([canon.index(canonical_label(lab)) for lab in labels], generator)
        return TagHead(self.encoder.hidden_size, len(labels), generator).to(self.ctx.torch_device)

    def predict(self, episode: TestEpisode) -> list[list[str]]:
        if self._snap is None:
            raise RuntimeError("call prepare(target) before predict")
        generator = self.ctx.generator(episode.index)
        labels = episode.labels
        if self.cfg.protocol == "fulldata":  # trained once in fit: tag the whole test split
            assert self.source_head is not None, "fit() trains on the full training split first"
            return self._decode(self.source_head, list(episode.query), labels)
        head = self.episode_head(labels, generator)
        try:
            if self.cfg.steps:
                self._steps(
                    head,
                    list(episode.support),
                    labels,
                    self.cfg.steps,
                    self.cfg.batch_size,
                    (self.cfg.encoder_lr, self.cfg.head_lr),
                    generator,
                    self.cfg.train_layers,
                )
            return self._decode(head, list(episode.query), labels)
        finally:
            restore(self.encoder, self._snap)  # the next episode starts from the same weights

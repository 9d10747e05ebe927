"""MFNER as a method of the harness: configuration, profiles, meta-training (the shared trainer), traces."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from fewshot_ner.datasets import Domain
from fewshot_ner.encoder import VIEWS, TrainLayers, WordEncoder, check_train_layers
from fewshot_ner.episodes import Episode, TestEpisode
from fewshot_ner.features import FrozenFeatures, LiveFeatures, check_step_tokens
from fewshot_ner.method import METHODS, ConfiguredMethod, Input, ReportContext, RunContext, SourceTask, check_input
from fewshot_ner.trainer import TrainerConfig, train_episodic
from mfner import report_hook
from mfner.denoiser import DenoiserMode
from mfner.model import MFNERModel


@dataclass(frozen=True)
class MFNERConfig:
    """Everything that decides a trained MFNER; stored with every result.

    Learning rates are per parameter group (encoder, CDT, denoiser, the L-TapNet head: reference
    vectors and scale). Training is Algorithm 1: prototypes from each source episode's support,
    no inner steps, CRF loss on its query, ``episodes_per_step`` episodes per optimizer step,
    gradients clipped by value, ``passes`` whole passes, more while under ``min_steps`` optimizer
    steps (5-shot pools are a fifth the size of 1-shot ones); no model selection on test data.
    """

    profile: str = "finetune"
    encoder_lr: float = 5e-5
    cdt_lr: float = 1e-2
    denoiser_lr: float = 1e-2
    head_lr: float = 1e-2
    passes: int = 2
    min_steps: int = 200  # more whole passes until at least this many optimizer steps (see plan_passes)
    episodes_per_step: int = 4
    grad_clip_value: float = 5.0
    sparse_embedding_grad: bool = False  # same sums in another order; ~25% faster fine-tuning on CPU (docs/cost.md)
    train_layers: TrainLayers = None  # the top N transformer layers; "all": every layer, embeddings frozen; None: all
    join_support_query: bool = False  # one encoder call per view for an episode's support and query
    label_vectors_per_step: bool = False  # one label-name forward per optimizer step, shared by its episodes
    # 0: the encoder runs per episode (and per part without join_support_query); N: once per optimizer step on the
    # step's sentences, in length-sorted calls of at most N padded sub-tokens (fewshot_ner.features.LiveFeatures)
    step_tokens: int = 0
    input: Input = "text+image"  # "text": E_f = E_t, the paper's "without image text" ablation
    denoiser: str = "learned"  # learned | fixed (alpha = beta = 0.5)
    similarity: str = "euclidean"  # dot in the reference code; see docs/methods.md (MFNER defaults)
    # The issue-31 probes (reports/probes-mfner.md); each default keeps the committed cells' arithmetic.
    encoder_dropout: bool = False  # the encoder's dropout while meta-training (the reference trains with it)
    schedule: str = "constant"  # constant | linear: 10% warm-up, then linear decay (the reference's)
    prototype_weight: float = 0.3  # the anchor mix: weight * support prototype + (1 - weight) * phi
    label_vector: str = "mean"  # mean of the label name's word vectors | cls: its [CLS] vector (the reference)
    label_enhanced: bool = True
    projection: bool = True
    max_train_episodes: int | None = None  # per source domain; None: all

    @property
    def mode(self) -> DenoiserMode:
        return "off" if self.input == "text" else self.denoiser  # type: ignore[return-value]

    @property
    def frozen(self) -> bool:
        return self.profile == "frozen"

    @property
    def trainer(self) -> TrainerConfig:
        return TrainerConfig(self.passes, self.min_steps, self.episodes_per_step, self.grad_clip_value, self.schedule)


#: Named starting points; options given to the method override them field by field.
PROFILES: dict[str, dict[str, Any]] = {
    "finetune": {},  # fine-tunes the bundled MiniLM on CPU
    "frozen": {"encoder_lr": 0.0, "passes": 4},
    "finetune-gpu": {"encoder_lr": 1e-5, "passes": 3},  # BERT-base-sized encoders on a GPU
    # MiniLM's 6 layers fine-tuned with its word embedding frozen, support and query in one encoder call
    # per view, one label-name forward per optimizer step: F1 paired with finetune over 5 seeds in
    # reports/ablations.md (row "MFNER fast"), fit time against the old code in results/mfner-cell-speedup.json.
    # "all": every transformer layer, whatever the encoder's depth (MiniLM's 6, as the profile's first records).
    "fast": {"train_layers": "all", "join_support_query": True, "label_vectors_per_step": True},
}


def make_config(**options: Any) -> MFNERConfig:
    profile = options.get("profile", "finetune")
    if profile not in PROFILES:
        raise ValueError(f"unknown MFNER profile {profile!r}; known: {', '.join(PROFILES)}")
    fields = {f.name for f in dataclasses.fields(MFNERConfig)}
    unknown = set(options) - fields
    if unknown:
        raise TypeError(f"unknown MFNER options {sorted(unknown)}; known: {sorted(fields)}")
    cfg = MFNERConfig(**{**PROFILES[profile], **options})
    check_input(cfg.input)
    check_train_layers(cfg.train_layers)
    if cfg.label_vector not in ("mean", "cls"):
        raise ValueError(f"label_vector must be mean or cls, got {cfg.label_vector!r}")
    check_step_tokens(cfg.step_tokens)
    if not 0.0 <= cfg.prototype_weight <= 1.0:
        raise ValueError(f"prototype_weight must lie in [0, 1], got {cfg.prototype_weight}")
    cfg.trainer  # noqa: B018 - checks the schedule's name
    return cfg


@METHODS.register("mfner")
class MFNER(ConfiguredMethod):
    """MFNER (the paper's model): image text as a second view, a meta-learned denoiser, L-TapNet + CDT, a CRF.

    Deterministic at test time: prediction is a forward pass and Viterbi, with no draws.
    """

    def __init__(self, ctx: RunContext, **options: Any) -> None:
        super().__init__(ctx)
        self.cfg = make_config(**options)
        encoder = ctx.word_encoder()
        views = VIEWS if self.cfg.mode != "off" else ("text",)
        if self.cfg.frozen:
            features: FrozenFeatures | LiveFeatures = FrozenFeatures(encoder, views, ctx.progress)
        else:
            features = LiveFeatures(encoder, self.cfg.step_tokens)
        self.model = MFNERModel(
            features,
            encoder.hidden_size,
            denoiser=self.cfg.mode,
            similarity=self.cfg.similarity,  # type: ignore[arg-type]
            label_enhanced=self.cfg.label_enhanced,
            projection=self.cfg.projection,
            join_support_query=self.cfg.join_support_query,
            label_vectors_per_step=self.cfg.label_vectors_per_step,
            prototype_weight=self.cfg.prototype_weight,
            label_vector=self.cfg.label_vector,  # type: ignore[arg-type]
        ).to(ctx.torch_device)
        self._report: dict[str, Any] = {}
        self._input = self.cfg.input

    @classmethod
    def resolved_config(cls, options: dict[str, Any]) -> dict[str, Any]:
        return dataclasses.asdict(make_config(**options))

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        try:
            make_config(**options)
        except TypeError as err:
            raise ValueError(str(err)) from None

    @classmethod
    def quick_options(cls) -> dict[str, Any]:
        return {"passes": 1, "min_steps": 0, "episodes_per_step": 1}

    @property
    def encoder(self) -> WordEncoder:
        return self.model.features.encoder

    def _param_groups(self) -> list[dict[str, Any]]:
        m = self.model
        groups = [
            {"params": list(m.cdt.parameters()), "lr": self.cfg.cdt_lr},
            {"params": list(m.denoiser.parameters()), "lr": self.cfg.denoiser_lr},
            {"params": list(m.tapnet.parameters()), "lr": self.cfg.head_lr},
        ]
        trained = self.encoder.trainable(self.cfg.train_layers, not self.cfg.frozen and self.cfg.encoder_lr > 0)
        if trained:
            groups.append({"params": trained, "lr": self.cfg.encoder_lr})
            # Dense, each backward zero-fills and adds a (vocab, H) gradient (MiniLM: 30522 x 384) for
            # every encoder call; sparse, the rows touched are kept until one densify per step.
            self.encoder.model.get_input_embeddings().sparse = self.cfg.sparse_embedding_grad
        return groups

    def fit(self, sources: list[SourceTask]) -> None:
        t0 = time.perf_counter()
        episodes: list[Episode] = []
        for task in sources:
            self.model.features.add_domain(task.domain)
            episodes += task.episodes[: self.cfg.max_train_episodes]
        if not episodes:
            raise ValueError("MFNER needs source episodes to meta-train on")
        groups = self._param_groups()
        self.model.train()  # the encoder is not a submodule of the model (features hold it): set on its own
        trains_encoder = not (self.cfg.frozen or self.cfg.encoder_lr == 0 or self.cfg.train_layers == 0)
        self.encoder.train(trains_encoder and self.cfg.encoder_dropout)
        report = train_episodic(
            self.model.loss,
            episodes,
            groups,
            self.cfg.trainer,
            f"mfner-train:{self.ctx.seed}",
            self.ctx.progress,
            before_step=self.model.before_step,
            checkpoint=self.ctx.checkpoint,
            start_step=self.model.share_step if self.cfg.step_tokens and not self.cfg.frozen else None,
        )
        self.model.eval()
        self.encoder.eval()
        self._report = report | {"fit_s": round(time.perf_counter() - t0, 1)}

    def prepare(self, target: Domain) -> None:
        self.model.features.add_domain(target)
        self.model.eval()
        self.encoder.eval()
        self.model.clear_label_cache()  # label-name vectors are recomputed once with the trained encoder

    def predict(self, episode: TestEpisode) -> list[list[str]]:
        tags, _ = self.model.decode(episode)
        return tags

    def trace(self, episode: TestEpisode) -> list[dict[str, Any]]:
        """Per query token: predictions with/without image text and denoiser, alpha/beta.

        The variants switch the trained model's denoiser at inference (``off``: text view only;
        ``fixed``: 0.5/0.5), so they show what each part contributes to this model's decisions.
        """
        full, out = self.model.decode(episode)
        no_image, _ = self.model.decode(episode, "off")
        rows = []
        if self.cfg.mode == "off":
            fixed = full
        else:
            fixed, _ = self.model.decode(episode, "fixed")
        for b, sent in enumerate(episode.query):
            for w, token in enumerate(sent.tokens):
                alpha, beta = out.weights[b, w].tolist()
                rows.append(
                    {
                        "sentence": b,
                        "word": w,
                        "key": sent.key,
                        "token": token,
                        "pred": full[b][w],
                        "pred_no_image": no_image[b][w],
                        "pred_fixed_denoiser": fixed[b][w],
                        "alpha": round(alpha, 4),
                        "beta": round(beta, 4),
                        "image_text": sent.image_text if w == 0 else "",
                    }
                )
        return rows

    @classmethod
    def report_sections(cls, context: ReportContext) -> list[tuple[str, str]]:
        """The Denoiser section and the case-study figures (``mfner.report_hook``)."""
        return report_hook.report_sections(context)

"""The one contract every method implements, and the registry of methods."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from fewshot_ner.datasets import DEFAULT_IMAGE_TEXT, Domain
from fewshot_ner.encoder import DEFAULT_ENCODER, DEFAULT_PRECISION, Precision, WordEncoder
from fewshot_ner.episodes import Episode, TestEpisode
from fewshot_ner.registry import Registry, check_choice

#: What a method reads for each tweet: its words, or its words followed by the image text.
#: The same option name (``input``) in every method that reads word vectors.
Input = Literal["text", "text+image"]
INPUTS: tuple[str, ...] = ("text", "text+image")


def check_input(value: str) -> Input:
    return check_choice("input", value, INPUTS)  # type: ignore[return-value]


def derived_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (``seed``, ``"episode"``, index): stable across runs and machines."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@dataclass(frozen=True)
class RunContext:
    """What the harness hands a method: seed, device, encoder and its precision, image-text source, verbosity."""

    seed: int = 0
    device: str = "cpu"
    encoder: str = DEFAULT_ENCODER
    progress: bool = True
    image_text: str = DEFAULT_IMAGE_TEXT  # the run's image-text source; "none": the text+image view is the text view
    precision: Precision = DEFAULT_PRECISION  # the encoder's arithmetic (fewshot_ner.encoder: fp32 | bf16)
    checkpoint: Path | None = None  # where a long training loop keeps its state, to resume a cell cut short

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    def word_encoder(self) -> WordEncoder:
        """The run's encoder on its device, the one way methods build it (``WordEncoder``'s ``image_view``)."""
        return WordEncoder(self.encoder, image_view=self.image_text != "none", precision=self.precision).to(
            self.torch_device
        )

    def generator(self, episode_index: int) -> torch.Generator:
        """The only source of randomness a method may use at test time, one per test episode.

        Derived from (seed, episode index): an episode's draws (a fresh head's initial weights,
        dropout, shuffling of the support) do not depend on which episodes ran before it.
        """
        return torch.Generator().manual_seed(derived_seed(self.seed, "episode", episode_index))


@dataclass(frozen=True)
class SourceTask:
    """One source domain and its training episodes (gold tags everywhere: this is training data)."""

    domain: Domain
    episodes: list[Episode] = field(default_factory=list)


class FewShotMethod(ABC):
    """Meta-train on source episodes, then tag a test episode's query given its support.

    Life cycle, driven by the harness for one (target, K, seed) cell: ``fit(sources)`` once,
    ``prepare(target)`` once, ``predict(episode)`` per test episode. ``predict`` receives a
    ``TestEpisode``: its query carries no gold tags, and ``prepare`` gets the target's sentences
    for precomputation only (its tags must not be read).

    Determinism: the same (seed, target, K, episode) gives the same tags, to the last digit on the
    same torch thread count. The harness seeds Python, NumPy and torch before ``fit``; a method
    that draws at test time (per-episode fine-tuning: head initialisation, dropout, shuffling)
    takes its generator from ``ctx.generator(episode.index)`` and nothing else.
    """

    def __init__(self, ctx: RunContext, **options: Any) -> None:
        self.ctx = ctx
        if options:
            raise TypeError(f"{type(self).__name__} takes no options, got {sorted(options)}")

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """Raise ``ValueError`` naming what is wrong if ``options`` can't configure this method.

        Called before a run starts, so that a mistyped option fails at once, not after a fit.
        The default checks the names against the constructor's keyword parameters.
        """
        if cls.__init__ is FewShotMethod.__init__:
            params = []  # the base constructor takes no options (its **options only reject them)
        else:
            params = list(inspect.signature(cls.__init__).parameters.values())[2:]  # after self, ctx
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return
        known = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(
                f"method {cls.__name__} has no option {', '.join(unknown)}; known: {', '.join(known) or 'none'}"
            )
        if "input" in options:
            check_input(options["input"])

    @classmethod
    def summary(cls) -> str:
        """One line for ``bench list``: the first line of the class docstring."""
        return (inspect.getdoc(cls) or cls.__name__).splitlines()[0]

    @classmethod
    def quick_options(cls) -> dict[str, Any]:
        """Options that keep a ``--quick`` cell to seconds (a fixed, small training budget); default none."""
        return {}

    def config(self) -> dict[str, Any]:
        """The resolved configuration, stored with every result."""
        return {}

    @classmethod
    def resolved_config(cls, options: dict[str, Any]) -> dict[str, Any] | None:
        """What ``config()`` will hold for ``options`` (each default filled in), known before the method is built;
        the encoder's name and fingerprint, and what ``fit`` decides, left out. ``None``: not known this way.

        The harness compares it with a finished record's ``config``: a record whose configuration differs from
        what its row asks now is stale, and reruns (``bench.runner.stale_options``).
        """
        return None

    @property
    def input(self) -> Input:
        """What this method reads (a field of every record); methods with an ``input`` option set it."""
        return getattr(self, "_input", "text")

    def fit(self, sources: list[SourceTask]) -> None:  # noqa: B027 - training-free methods keep this
        """Meta-train on the source domains (default: nothing to train)."""

    def prepare(self, target: Domain) -> None:  # noqa: B027
        """Optional: precompute per-target state (frozen vectors, say) before predicting."""

    @abstractmethod
    def predict(self, episode: TestEpisode) -> list[list[str]]:
        """One tag sequence per query sentence, as long as the sentence, tags from ``episode.labels``."""

    def trace(self, episode: TestEpisode) -> list[dict[str, Any]]:
        """Per-token diagnostics of one test episode for the report hook (default: none).

        Rows carry ``sentence`` and ``word`` indices; the harness adds the gold tag afterwards.
        """
        return []

    @classmethod
    def report_sections(cls, context: ReportContext) -> list[tuple[str, str]]:
        """Extra report sections (title, markdown) this method contributes from its traces (default: none)."""
        return []

    def fit_report(self) -> dict[str, Any]:
        """What training measured (losses, steps, time), stored with the result; empty by default."""
        return {}


class ConfiguredMethod(FewShotMethod):
    """A method configured by one dataclass (``self.cfg``) around one encoder (``self.encoder``).

    Its stored configuration is the dataclass with the encoder's name and weights fingerprint;
    what ``fit`` measured goes in ``self._report``.
    """

    cfg: Any
    encoder: Any  # fewshot_ner.encoder.WordEncoder
    _report: dict[str, Any]

    def config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.cfg) | {
            "encoder": self.ctx.encoder,
            "encoder_fingerprint": self.encoder.fingerprint,
        }

    def fit_report(self) -> dict[str, Any]:
        return self._report


@dataclass(frozen=True)
class ReportContext:
    """What a report hands a method's ``report_sections``: the traces of its rows, where to draw."""

    suite: str
    trace_episodes: int
    traces: list[tuple[str, Any]]  # (record file name, pandas frame of trace rows) per traced cell
    figures_dir: Any  # pathlib.Path: where figures go; markdown links are relative to its parent
    other_suites: tuple[str, ...] = ()  # the other suites whose figures share figures_dir (never a method's to remove)


METHODS: Registry[type[FewShotMethod]] = Registry("method")

"""The one interface every method implements, and the registry of methods."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch

from mfner.datasets import Domain
from mfner.episodes import Episode
from mfner.registry import Registry


@dataclass(frozen=True)
class RunContext:
    """What the harness hands a method: seed, device, encoder choice, verbosity."""

    seed: int = 0
    device: str = "cpu"
    encoder: str = "minilm"
    progress: bool = True

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)


@dataclass(frozen=True)
class SourceTask:
    """One source domain and its training episodes."""

    domain: Domain
    episodes: list[Episode] = field(default_factory=list)


class FewShotMethod(ABC):
    """Meta-train on source episodes, then label a test episode's query given its support.

    Life cycle, driven by the harness for one (target, K, seed) cell:
    ``fit(sources)`` once, ``prepare(target)`` once, ``predict(episode)`` per test episode.
    ``predict`` must be deterministic: no random draws at test time.
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

    def config(self) -> dict[str, Any]:
        """The resolved configuration, stored with every result."""
        return {}

    def fit(self, sources: list[SourceTask]) -> None:  # noqa: B027 - training-free methods keep this
        """Meta-train on the source domains (default: nothing to train)."""

    def prepare(self, target: Domain) -> None:  # noqa: B027
        """Optional: precompute per-target state (frozen vectors, say) before predicting."""

    @abstractmethod
    def predict(self, episode: Episode) -> list[list[str]]:
        """One tag sequence per query sentence, tags from ``episode.labels``."""

    def fit_report(self) -> dict[str, Any]:
        """What training measured (losses, steps, time), stored with the result; empty by default."""
        return {}


METHODS: Registry[type[FewShotMethod]] = Registry("method")

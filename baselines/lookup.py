"""Lookup: a floor that learns nothing, to show how much of a table is memorisable name overlap.

Every entity name seen in the source domains (all their sentences: in leave-one-out the whole
source domain is training data), tagged with its most frequent type there (ties: the type first
in the target's type order), then the support's entity names, which override the source's type.
On a query sentence: longest match first, left to right, case-sensitive, on whole words. Source
types are mapped to the target's: Twitter-2015's OTHER and Twitter-2017's MISC are one type
("miscellaneous/other"); a source type the target lacks is dropped. Deterministic: no draws.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from fewshot_ner.data import Sentence
from fewshot_ner.episodes import TestEpisode
from fewshot_ner.labels import TYPE_ALIASES, canonical_type, spans
from fewshot_ner.method import METHODS, FewShotMethod, RunContext, SourceTask


def entities(sentence: Sentence) -> list[tuple[tuple[str, ...], str]]:
    """The (words, type) of each strict IOB2 entity of a tagged sentence."""
    return [(sentence.tokens[a:b], etype) for a, b, etype in spans(sentence.tags)]


def map_type(etype: str, target_types: tuple[str, ...]) -> str | None:
    """The target's name for a source type (``canonical_type`` equal), or None if the target lacks it."""
    return next((t for t in target_types if canonical_type(t) == canonical_type(etype)), None)


def tag_by_lookup(tokens: tuple[str, ...], names: dict[tuple[str, ...], str], longest: int) -> list[str]:
    """IOB2 tags: at each position the longest name that matches there, else O."""
    tags = ["O"] * len(tokens)
    i = 0
    while i < len(tokens):
        for n in range(min(longest, len(tokens) - i), 0, -1):
            etype = names.get(tuple(tokens[i : i + n]))
            if etype is not None:
                tags[i : i + n] = [f"B-{etype}"] + [f"I-{etype}"] * (n - 1)
                i += n
                break
        else:
            i += 1
    return tags


@METHODS.register("lookup")
class Lookup(FewShotMethod):
    """Lookup floor: source-domain and support entity names, longest match first, no learning."""

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self.counts: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)

    @classmethod
    def resolved_config(cls, options: dict[str, Any]) -> dict[str, Any]:
        return {"case_sensitive": True, "misc_aliases": sorted({*TYPE_ALIASES, *TYPE_ALIASES.values()})}

    def config(self) -> dict[str, Any]:
        return self.resolved_config({})

    def fit(self, sources: list[SourceTask]) -> None:
        for task in sources:
            for sentence in task.domain.sentences:
                for words, etype in entities(sentence):
                    self.counts[words][etype] += 1

    def dictionary(self, types: tuple[str, ...], support: tuple[Sentence, ...]) -> dict[tuple[str, ...], str]:
        names: dict[tuple[str, ...], str] = {}
        for words, counts in self.counts.items():
            mapped: Counter[str] = Counter()
            for etype, n in counts.items():
                if (t := map_type(etype, types)) is not None:
                    mapped[t] += n
            if mapped:
                names[words] = max(types, key=lambda t: (mapped[t], -types.index(t)))
        for sentence in support:
            for words, etype in entities(sentence):
                names[words] = etype
        return names

    def predict(self, episode: TestEpisode) -> list[list[str]]:
        names = self.dictionary(episode.types, episode.support)
        longest = max((len(w) for w in names), default=1)
        return [tag_by_lookup(s.tokens, names, longest) for s in episode.query]

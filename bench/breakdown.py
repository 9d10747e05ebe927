"""Scores recomputed from the predictions records keep: lenient F1, F1 on seen and unseen entities, F1 per type.

An entity of a query is *seen* when its exact words (case-sensitive) occur as an entity of the
same type somewhere in the source domains' data (Twitter-2015's OTHER and Twitter-2017's MISC
count as one type); a predicted entity is split by the same rule. Per cell, precision, recall
and F1 of each group are micro counts over all its test episodes (a group may be empty in one
episode); then mean ± std over seeds. Per entity type (OTHER counted as MISC, so the columns of
both targets line up): strict micro F1 over a cell's episodes. Records written before predictions
were kept are left out. A full-data record (one "episode": a target's whole test split, trained on
its train and valid splits) is rescored the same way, its seen names taken from its own train split.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np
import pandas as pd

from fewshot_ner.data import Sentence
from fewshot_ner.datasets import DATASETS, Domain, load_domain, split_part
from fewshot_ner.episodes import Episode, EpisodeSet, cached_episodes
from fewshot_ner.labels import canonical_type, spans
from fewshot_ner.metrics import cell_table, decode_tags, entity_counts, episode_f1, mean_std_text

SPLITS = ("train", "valid", "test")


@lru_cache(maxsize=16)
def domain_named(name: str) -> Domain | None:
    """A registered dataset, or one standard split of one as the full-data protocol names it
    (``twitter2017-test``); None for any other name (a probe's split, a user's domain)."""
    if name in DATASETS:
        return load_domain(name)
    base, _, split = name.rpartition("-")
    return split_part(load_domain(base), split, split) if base in DATASETS and split in SPLITS else None


@lru_cache(maxsize=8)
def seen_names(sources: tuple[str, ...]) -> frozenset[tuple[tuple[str, ...], str]]:
    """(words, type) of every entity of the source domains."""
    out = set()
    for name in sources:
        domain = domain_named(name)
        if domain is None:
            raise ValueError(f"{name}: not a registered dataset or a split of one")
        for s in domain.sentences:
            out |= {(s.tokens[a:b], canonical_type(t)) for a, b, t in spans(s.tags)}
    return frozenset(out)


def split_counts(query: Iterable[Sentence], predicted: Iterable[list[str]], seen: frozenset) -> dict[str, np.ndarray]:
    """Per group ("seen", "unseen"): [true positives, predicted, gold] over one episode's query."""
    query = list(query)

    def group(i: int, span: tuple[int, int, str]) -> str:
        a, b, t = span
        return "seen" if (query[i].tokens[a:b], canonical_type(t)) in seen else "unseen"

    found = entity_counts([s.tags for s in query], list(predicted), group)
    return {g: np.array(found.get(g, [0, 0, 0])) for g in ("seen", "unseen")}


def micro_f1(counts: np.ndarray) -> np.ndarray:
    """F1 (0-100) of (..., 3) [true positives, predicted, gold] counts; 0 where nothing was predicted or gold."""
    tp, found = counts[..., 0], counts[..., 1] + counts[..., 2]
    return np.where(found > 0, 200.0 * tp / np.maximum(found, 1), 0.0)


@lru_cache(maxsize=64)
def _episodes(target: str, k: int, seed: int, cap: int, n: int, sha256: str) -> tuple[Episode, ...] | None:
    """The record's test episodes, or None when they can't be had again (another episode file).
    K = 0: the full-data protocol's one episode, the target's whole split."""
    domain = domain_named(target)
    if domain is None:
        return None
    test = EpisodeSet.whole(domain) if k == 0 else cached_episodes(domain, k, seed, cap, "test")
    return tuple(test.materialize(domain, n)) if test.sha256 == sha256 else None


def predicted_episodes(record: pd.Series) -> list[tuple[Episode, list[list[str]]]] | None:
    """Each test episode of a record with the tags it predicted for the episode's query sentences.

    None for a record without predictions, or whose domains are neither registered datasets nor
    standard splits of one (a probe's split), or whose episodes can't be had again."""
    preds = record.get("predictions")
    if not isinstance(preds, list):
        return None
    if any(domain_named(name) is None for name in (record.target, *record.sources)):
        return None
    cap = record.get("max_episodes")
    cap = 200 if cap is None or (isinstance(cap, float) and np.isnan(cap)) else int(cap)
    episodes = _episodes(record.target, int(record.k), int(record.seed), cap, len(preds), record.episodes_sha256)
    if episodes is None:
        return None
    return [(ep, [decode_tags(c, ep.labels) for c in codes]) for ep, codes in zip(episodes, preds, strict=True)]


def sentence_counts(record: pd.Series) -> np.ndarray | None:
    """(N, 3): strict [true positives, predicted, gold] entities of every query sentence of a record's
    test episodes, in order; their column sums give the micro F1 of the whole set (for a full-data
    record, its F1). None where :func:`predicted_episodes` gives none."""
    scored = predicted_episodes(record)
    if scored is None:
        return None
    rows = [
        entity_counts([s.tags], [tags], lambda _i, _span: "all").get("all", [0, 0, 0])
        for ep, predicted in scored
        for s, tags in zip(ep.query, predicted, strict=True)
    ]
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def cell_scores(record: pd.Series) -> dict[str, float] | None:
    """Lenient F1 (mean over episodes), seen/unseen F1 and counts, and predicted entities over gold ones (a row
    that tags nearly everything O shows as near 0) of one record with predictions; None where
    :func:`predicted_episodes` gives none."""
    scored = predicted_episodes(record)
    if scored is None:
        return None
    seen = seen_names(tuple(sorted(record.sources)))
    totals = {"seen": np.zeros(3, dtype=int), "unseen": np.zeros(3, dtype=int)}
    by_type: dict[str, np.ndarray] = {}
    lenient = []
    for ep, tags in scored:
        gold = [s.tags for s in ep.query]
        lenient.append(episode_f1(gold, tags, lenient=True))
        for group, c in split_counts(ep.query, tags, seen).items():
            totals[group] += c
        for etype, c in entity_counts(gold, tags, lambda _i, span: canonical_type(span[2])).items():
            by_type[etype] = by_type.get(etype, np.zeros(3, dtype=int)) + c
    _, predicted_all, gold_all = totals["seen"] + totals["unseen"]  # (a prediction is seen or unseen, as gold)
    return {
        "lenient": float(np.mean(lenient)),
        "seen": float(micro_f1(totals["seen"])),
        "unseen": float(micro_f1(totals["unseen"])),
        "seen_share": 100.0 * totals["seen"][2] / gold_all if gold_all else float("nan"),
        "predicted_ratio": predicted_all / gold_all if gold_all else float("nan"),
    } | {f"type:{t}": float(micro_f1(c)) for t, c in by_type.items() if c[2]}  # a type with gold entities in the cell


def scored_cells(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per record with predictions: k, label, target, strict F1 and what ``cell_scores`` gives."""
    if rows.empty or "predictions" not in rows:
        return pd.DataFrame()
    scored = []
    for _, r in rows.iterrows():
        cell = cell_scores(r)
        if cell is not None:
            scored.append({"k": r.k, "label": r.label, "target": r.target, "strict": r.f1} | cell)
    return pd.DataFrame(scored)


def breakdown_table(scored: pd.DataFrame) -> pd.DataFrame:
    """Per (K, row, target) of ``scored_cells``: strict F1, lenient F1, seen F1, unseen F1, seen share of gold,
    and predicted entities over gold (mean over seeds)."""
    if scored.empty:
        return pd.DataFrame()
    return cell_table(
        scored,
        lambda grp: {
            "strict F1": mean_std_text(grp.strict),
            "lenient F1": mean_std_text(grp.lenient),
            "lenient − strict": f"{(grp.lenient - grp.strict).mean():+.2f}",
            "F1 seen": mean_std_text(grp.seen),
            "F1 unseen": mean_std_text(grp.unseen),
            "% gold seen": f"{grp.seen_share.mean():.1f}",
            "predicted / gold": f"{grp.predicted_ratio.mean():.2f}",
        },
    )


def type_table(scored: pd.DataFrame) -> pd.DataFrame:
    """Per (K, row, target) of ``scored_cells``: strict F1 of each entity type, mean ± std over seeds."""
    columns = sorted(c for c in scored.columns if c.startswith("type:"))
    if scored.empty or not columns:
        return pd.DataFrame()
    order = [c for c in ("type:PER", "type:LOC", "type:ORG", "type:MISC") if c in columns]
    order += [c for c in columns if c not in order]
    return cell_table(scored, lambda grp: {c.removeprefix("type:"): mean_std_text(grp[c]) for c in order})

"""Entity F1 (seqeval, strict IOB2) per episode, then means over episodes and seeds."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from seqeval.metrics import f1_score
from seqeval.scheme import IOB2

from fewshot_ner.datasets import short_name
from fewshot_ner.labels import Span, spans


def episode_f1(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], lenient: bool = False) -> float:
    """Entity-level F1 in percent over one episode's query set.

    Strict IOB2 spans (what every table uses); ``lenient``: seqeval's conlleval mode, where an
    orphan ``I-X`` opens an entity (what a token-wise decoder means by it).
    """
    if len(gold) != len(pred):
        raise ValueError(f"expected {len(gold)} predicted sentences, got {len(pred)}")
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: expected {len(g)} tags, got {len(p)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no predicted or no gold entity: F1 is 0, as defined
        g, p = [list(x) for x in gold], [list(x) for x in pred]
        if lenient:
            return 100.0 * float(f1_score(g, p, zero_division=0))
        return 100.0 * float(f1_score(g, p, mode="strict", scheme=IOB2, zero_division=0))


def entity_counts(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    group: Callable[[int, Span], str] = lambda _i, span: span[2],
) -> dict[str, list[int]]:
    """Per group: [true positives, predicted, gold] strict IOB2 entities over one episode's query;
    ``group(sentence index, (start, end, type))`` names an entity's group (default: its type)."""
    out: dict[str, list[int]] = {}
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        gs, ps = set(spans(g)), set(spans(p))
        for s in gs | ps:
            counts = out.setdefault(group(i, s), [0, 0, 0])
            counts[0] += s in gs and s in ps
            counts[1] += s in ps
            counts[2] += s in gs
    return out


def type_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, list[int]]:
    """Per entity type: [true positives, predicted, gold] strict IOB2 entities over one episode's query."""
    return entity_counts(gold, pred)


def mean_over_episodes(f1s: Sequence[float]) -> float:
    if not f1s:
        raise ValueError("no episodes to average")
    return float(np.mean(f1s))


def summarize(rows: pd.DataFrame, by: Sequence[str] = ("label", "k", "target")) -> pd.DataFrame:
    """Mean and sample std (ddof=1) of the episode-averaged F1 over seeds, with the seed count."""
    grouped = rows.groupby(list(by), sort=False)["f1"]
    out = grouped.agg(mean="mean", std=lambda s: float(s.std(ddof=1)) if len(s) > 1 else float("nan"), seeds="count")
    return out.reset_index()


_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def encode_tags(tags: Sequence[str], labels: Sequence[str]) -> str:
    """One sentence's tags as one character per word: the tag's index in ``labels`` in base 36.

    Records keep every prediction this way (a 200-episode cell stays small), so that a report can
    score them again later with another scorer or split (seen/unseen entities, lenient IOB2).
    """
    if len(labels) > len(_DIGITS):
        raise ValueError(f"at most {len(_DIGITS)} labels can be encoded, got {len(labels)}")
    index = {lab: i for i, lab in enumerate(labels)}
    return "".join(_DIGITS[index[t]] for t in tags)


def decode_tags(code: str, labels: Sequence[str]) -> list[str]:
    """The inverse of ``encode_tags``."""
    return [labels[_DIGITS.index(c)] for c in code]


def cell_table(
    frame: pd.DataFrame, columns: Callable[[pd.DataFrame], dict[str, Any]], count: str = "seeds"
) -> pd.DataFrame:
    """One row per (K, row label, target) of ``frame`` (columns ``k``, ``label``, ``target``): K, the
    method, the target's short name, the group's size under ``count``, then ``columns(group)``; the
    shape of every per-row table of the reports."""
    return pd.DataFrame(
        [
            {"K": int(k), "method": label, "target": short_name(target), count: len(grp)} | columns(grp)
            for (k, label, target), grp in frame.groupby(["k", "label", "target"], sort=True)
        ]
    )


def mean_std_text(values: pd.Series) -> str:
    """ "mean ± std" (sample std) of the non-missing values, "mean" for one, "-" for none."""
    values = values.dropna()
    if values.empty:
        return "-"
    return f"{values.mean():.2f}" if len(values) < 2 else f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"

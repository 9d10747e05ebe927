"""Paired comparison of a variant against a reference row on the same test episodes.

Ablation gaps in this task (about 1-2 F1 in the paper) are the size of the spread over seeds, so
a table of means alone can't say whether a part helps. Every variant of a suite is scored on the
very same episodes per seed (same episode file, same hash), which allows a paired comparison:
per seed, delta = F1(reference) - F1(variant); over episodes, a paired bootstrap. A suite whose
cells are one "episode" each (the full-data protocol: a whole test split scored at once) has nothing
to resample over episodes: there the bootstrap resamples the split's sentences, recomputing each
row's F1 from its kept predictions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from bench import paper
from bench.breakdown import micro_f1, sentence_counts
from fewshot_ner.datasets import DEFAULT_IMAGE_TEXT, image_text_name, short_name
from fewshot_ner.encoder import DEFAULT_ENCODER, DEFAULT_PRECISION

N_BOOT = 4000
BOOT_SEED = 0
MIN_SEEDS = 3  # fewer seeds give no interval over seeds ("too few seeds")


def seed_interval(per_seed: np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    """A t-interval for the mean of per-seed paired differences ``(S,)``; None under ``MIN_SEEDS`` seeds.

    Each seed trains anew and draws its own test episodes, so the spread of the per-seed means holds
    both sources of variance, training seeds and test episodes. A percentile bootstrap over 5 seeds is
    itself too narrow (it undercovers at small S); the t-interval keeps its coverage there when the
    per-seed means are near normal (tests/test_paired.py simulates 3, 5 and 10 seeds). The one interval
    over seeds every paired section and the claims report use.
    """
    n = len(per_seed)
    if n < MIN_SEEDS:
        return None
    half = stats.t.ppf(0.5 + level / 2, n - 1) * per_seed.std(ddof=1) / np.sqrt(n)
    return float(per_seed.mean() - half), float(per_seed.mean() + half)


def bootstrap_ci(
    deltas: list[np.ndarray], n_boot: int = N_BOOT, seed: int = BOOT_SEED, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of the mean over seeds of per-seed mean deltas, episodes resampled within each seed.

    ``deltas``: one (E_s,) array per seed of per-episode F1 differences on shared episodes.
    """
    rng = np.random.default_rng(seed)
    means = np.zeros(n_boot)  # (n_boot,)
    for d in deltas:
        idx = rng.integers(0, len(d), size=(n_boot, len(d)))  # (n_boot, E_s)
        means += d[idx].mean(axis=1)
    means /= len(deltas)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def sentence_bootstrap_ci(
    pairs: list[tuple[np.ndarray, np.ndarray]],
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
    level: float = 0.95,
    chunk: int = 500,
) -> tuple[float, float]:
    """Percentile interval of the mean over seeds of F1(a) - F1(b), sentences resampled within each seed.

    ``pairs``: per seed, the (N, 3) [true positives, predicted, gold] counts of every test sentence for
    row a and row b (same sentences, same order). A replicate draws N sentences with replacement (the
    same draw for both rows) and recomputes each row's micro F1 from the summed counts of the draw.
    """
    rng = np.random.default_rng(seed)
    means = np.zeros(n_boot)  # (n_boot,)
    for a, b in pairs:
        n = len(a)
        if len(b) != n:
            raise ValueError(f"paired rows scored {n} and {len(b)} sentences")
        for start in range(0, n_boot, chunk):
            size = min(chunk, n_boot - start)
            draws = rng.multinomial(n, np.full(n, 1.0 / n), size=size)  # (size, N): times each sentence is drawn
            means[start : start + size] += micro_f1(draws @ a) - micro_f1(draws @ b)
    means /= len(pairs)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _one_episode_each(pairs: pd.DataFrame) -> bool:
    """Whether every merged record is one episode (a whole test split: nothing to resample but sentences)."""
    return "n_episodes" in pairs and bool((pairs.n_episodes == 1).all() and (pairs.n_episodes_2 == 1).all())


def _interval(
    pairs: pd.DataFrame, first: pd.DataFrame, second: pd.DataFrame, by_sentence: bool, n_boot: int
) -> tuple[float, float] | None:
    """The paired bootstrap interval of records merged by seed (``at`` and ``at_2``: their index in
    ``first`` and ``second``): over episodes, or over sentences (None when the records' sentences
    can't be rescored from their predictions)."""
    if not by_sentence:
        deltas = [
            np.asarray(a, dtype=float) - np.asarray(b, dtype=float)  # (E_s,)
            for a, b in zip(pairs.f1_per_episode, pairs.f1_per_episode_2, strict=True)
        ]
        return bootstrap_ci(deltas, n_boot=n_boot)
    counts = [
        (sentence_counts(first.loc[a]), sentence_counts(second.loc[b]))
        for a, b in zip(pairs["at"], pairs["at_2"], strict=True)
    ]
    if any(a is None or b is None for a, b in counts):
        return None
    return sentence_bootstrap_ci(counts, n_boot=n_boot)


def signed(x: float) -> str:
    """``x`` to two decimals with its sign; a value that rounds to zero is "0.00" (never "-0.00")."""
    text = f"{x:+.2f}"
    return "0.00" if text[1:] == "0.00" else text


def _compare(first: pd.DataFrame, second: pd.DataFrame, n_boot: int) -> tuple[dict | None, list[str]]:
    """First's lead over second, paired by seed: ``first`` and ``second`` are one (row, K, target) each.

    Returns the summary over the seeds both ran on the same episode file (seed count, per-seed mean
    and std, seeds where first is ahead, bootstrap interval and what it resampled), or None when no seed
    pairs, and notes naming the seeds left out because their episode files differ.
    """
    pairs = first.assign(at=first.index).merge(second.assign(at=second.index), on="seed", suffixes=("", "_2"))
    same = pairs.episodes_sha256 == pairs.episodes_sha256_2
    notes = [
        f"{p.label} and {p.label_2}, {short_name(p.target)} K={p.k} seed {p.seed}: different episodes, not paired"
        for p in pairs[~same].itertuples()
    ]
    pairs = pairs[same].sort_values("seed")
    if pairs.empty:
        return None, notes
    per_seed = (pairs.f1 - pairs.f1_2).to_numpy()  # (S,)
    by_sentence = _one_episode_each(pairs)
    interval = _interval(pairs, first, second, by_sentence, n_boot)
    std = f" ± {per_seed.std(ddof=1):.2f}" if len(per_seed) > 1 else ""
    over = seed_interval(per_seed)
    summary = {
        "seeds": len(per_seed),
        "mean": f"{signed(per_seed.mean())}{std}",
        "ahead": f"{int((per_seed > 0).sum())}/{len(per_seed)}",
        "ci": "-" if interval is None else f"[{signed(interval[0])}, {signed(interval[1])}]",
        "ci_seeds": "too few seeds" if over is None else f"[{signed(over[0])}, {signed(over[1])}]",
        "unit": "sentences" if by_sentence else "episodes",
    }
    return summary, notes


#: The run axes a record carries besides its suite row, each with its default value, and its name in tables.
AXES = {"encoder": DEFAULT_ENCODER, "image_text": DEFAULT_IMAGE_TEXT, "precision": DEFAULT_PRECISION}
AXIS_COLUMN = {"encoder": "encoder", "image_text": "source", "precision": "precision"}


def _axes(rows: pd.DataFrame) -> dict[str, pd.Series]:
    """Each record's suite row and run axes (encoder, image-text source, precision), from its own fields.

    Records written before ``row`` was a field give it by their label, which the runner wrote as
    ``<row>@<encoder folder>`` for a non-default encoder; records before ``image_text`` or
    ``precision`` were fields read the defaults (BLIP-2 captions, fp32).
    """
    empty = pd.Series([None] * len(rows), index=rows.index)

    def column(name: str) -> pd.Series:
        return rows[name] if name in rows else empty

    row = column("row")
    encoder = column("encoder")
    from_label = rows.label.str.partition("@")[2].replace("", DEFAULT_ENCODER)
    return {
        "row": row.where(row.notna(), rows.label.str.partition("@")[0]),
        "encoder": encoder.where(encoder.notna(), from_label),
        "image_text": column("image_text").where(column("image_text").notna(), DEFAULT_IMAGE_TEXT),
        "precision": column("precision").where(column("precision").notna(), DEFAULT_PRECISION),
    }


def paired_table(rows: pd.DataFrame, reference: str, n_boot: int = N_BOOT) -> tuple[pd.DataFrame, list[str]]:
    """One row per (K, variant, target): the reference's lead over the variant, paired by seed.

    ``rows`` are records as :func:`bench.records.load_records` gives them (with ``f1_per_episode``
    and ``episodes_sha256``). A variant is compared with the reference run on its encoder and
    image-text source, at its precision where the reference ran at it, else at fp32 (a note says so).
    Seeds whose two records were scored on different episode files are left out and named in the notes.
    """
    notes: list[str] = []
    out = []
    if rows.empty:
        return pd.DataFrame(), notes
    axes = _axes(rows)
    row, encoder, image_text, precision = axes["row"], axes["encoder"], axes["image_text"], axes["precision"]
    is_ref = row == reference
    methods = set(rows.method[is_ref])
    variants = rows[~is_ref & rows.method.isin(methods) & encoder.isin(set(encoder[is_ref]))]
    for (label, k, target), grp in variants.groupby(["label", "k", "target"], sort=True):
        first = grp.index[0]
        same_run = (encoder == encoder[first]) & (image_text == image_text[first]) & (rows.k == k)
        ref = rows[is_ref & same_run & (rows.target == target) & (precision == precision[first])]
        if ref.empty and precision[first] != DEFAULT_PRECISION:
            ref = rows[is_ref & same_run & (rows.target == target) & (precision == DEFAULT_PRECISION)]
            notes.append(
                f"{label}, {short_name(target)} K={k}: compared with {reference} at {DEFAULT_PRECISION} "
                f"({reference} has no {precision[first]} records there)"
            )
        summary, seen = _compare(ref, grp, n_boot)
        notes += seen
        if summary is None:
            continue
        ours = paper.REPORTED.get((reference, k), {}).get(target)
        theirs = paper.REPORTED.get((label, k), {}).get(target)
        out.append(
            {
                "K": k,
                "variant": label,
                "target": short_name(target),
                "seeds": summary["seeds"],
                f"{reference} − variant": summary["mean"],
                f"{reference} ahead": summary["ahead"],
                "95% CI (seeds)": summary["ci_seeds"],
                f"95% CI ({summary['unit']} only)": summary["ci"],
                "paper": signed(ours[0] - theirs[0]) if ours and theirs else "-",
            }
        )
    table = pd.DataFrame(out)
    return (table.sort_values(["K", "variant", "target"], kind="stable") if out else table), notes


def axis_table(rows: pd.DataFrame, axis: str, n_boot: int = N_BOOT) -> tuple[pd.DataFrame, list[str]]:
    """One row per (K, row, target) run with another value of a run axis (``encoder``, ``image_text`` or
    ``precision``): its lead over the same row at the axis's default, every other axis equal.

    A row "MFNER@mpnet-base" is paired with "MFNER", "MFNER [owl]" with "MFNER", "MFNER fast (bf16)"
    with "MFNER fast", by seed on the same episodes, as in :func:`paired_table`; a row whose default
    twin has no records is left out.
    """
    notes: list[str] = []
    out = []
    if rows.empty:
        return pd.DataFrame(), notes
    axes = _axes(rows)
    this = axes[axis]
    others = [a for a in AXES if a != axis]
    for (_label, k, target), grp in rows[this != AXES[axis]].groupby(["label", "k", "target"], sort=True):
        first = grp.index[0]
        twin = (axes["row"] == axes["row"][first]) & (this == AXES[axis]) & (rows.k == k) & (rows.target == target)
        for other in others:
            twin &= axes[other] == axes[other][first]
        summary, seen = _compare(grp, rows[twin], n_boot)
        notes += seen
        if summary is None:
            continue
        value = {"encoder": lambda v: Path(v).name, "image_text": image_text_name}.get(axis, str)(this[first])
        name = AXIS_COLUMN[axis]
        out.append(
            {
                "K": k,
                "row": axes["row"][first],
                name: value,
                "target": short_name(target),
                "seeds": summary["seeds"],
                f"{name} − default": summary["mean"],
                f"{name} ahead": summary["ahead"],
                "95% CI (seeds)": summary["ci_seeds"],
                f"95% CI ({summary['unit']} only)": summary["ci"],
            }
        )
    table = pd.DataFrame(out)
    sort = ["K", "row", AXIS_COLUMN[axis], "target"]
    return (table.sort_values(sort, kind="stable") if out else table), notes


def declared_table(
    rows: pd.DataFrame, pairs: tuple[tuple[str, str], ...], n_boot: int = N_BOOT
) -> tuple[pd.DataFrame, list[str]]:
    """One row per declared pair (A, B) of suite rows and (K, target) both ran: A's lead over B, paired by seed.

    A and B are matched by their suite rows within one run: the same encoder and image-text source (so
    ``MFNER − ProtoNet`` is computed at MiniLM and again at mpnet-base), and the same precision where B
    ran at A's, else B at fp32 (a note says so).
    """
    notes: list[str] = []
    out = []
    if rows.empty:
        return pd.DataFrame(), notes
    axes = _axes(rows)
    row, encoder, image_text, precision = axes["row"], axes["encoder"], axes["image_text"], axes["precision"]
    for a, b in pairs:
        for (label, k, target), grp in rows[row == a].groupby(["label", "k", "target"], sort=True):
            first = grp.index[0]
            run = (row == b) & (encoder == encoder[first]) & (image_text == image_text[first])
            other = rows[run & (rows.k == k) & (rows.target == target)]
            same = other[precision[other.index] == precision[first]]
            if same.empty and precision[first] != DEFAULT_PRECISION and not other.empty:
                same = other[precision[other.index] == DEFAULT_PRECISION]
                if not same.empty:
                    notes.append(f"{label} − {same.label.iloc[0]}, {short_name(target)} K={k}: {b} ran at fp32 only")
            if same.empty:
                continue
            summary, seen = _compare(grp, same, n_boot)
            notes += seen
            if summary is None:
                continue
            same_paper_row = paper.PAPER_ROW.get(a, a) == paper.PAPER_ROW.get(b, b)  # MFNER fast - MFNER: none
            pa = None if same_paper_row else paper.reported(a, k).get(target)
            pb = paper.reported(b, k).get(target)
            out.append(
                {
                    "K": k,
                    "A": label,
                    "B": same.label.iloc[0],
                    "target": short_name(target),
                    "seeds": summary["seeds"],
                    "A − B": summary["mean"],
                    "A ahead": summary["ahead"],
                    "95% CI (seeds)": summary["ci_seeds"],
                    f"95% CI ({summary['unit']} only)": summary["ci"],
                    "paper": signed(pa[0] - pb[0]) if pa and pb else "-",
                }
            )
    return pd.DataFrame(out), notes

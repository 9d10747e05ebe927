"""Paired comparison of a variant against a reference row on the same test episodes.

Ablation gaps in this task (about 1-2 F1 in the paper) are the size of the spread over seeds, so
a table of means alone can't say whether a part helps. Every variant of a suite is scored on the
very same episodes per seed (same episode file, same hash), which allows a paired comparison:
per seed, delta = F1(reference) - F1(variant); over episodes, a paired bootstrap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench import paper
from mfner.datasets import short_name

N_BOOT = 4000
BOOT_SEED = 0


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


def paired_table(rows: pd.DataFrame, reference: str, n_boot: int = N_BOOT) -> tuple[pd.DataFrame, list[str]]:
    """One row per (K, variant, target): the reference's lead over the variant, paired by seed.

    ``rows`` are records as :func:`bench.records.load_records` gives them (with ``f1_per_episode``
    and ``episodes_sha256``). Seeds whose two records were scored on different episode files are
    left out and named in the returned notes.
    """
    notes: list[str] = []
    out = []
    if rows.empty:
        return pd.DataFrame(), notes
    # Rows of another encoder carry "@<encoder>" and are compared with the reference of that encoder.
    suffix = rows.label.str.partition("@")[2].map(lambda e: f"@{e}" if e else "")
    ref_label = reference + suffix
    is_ref = rows.label == ref_label
    methods = set(rows.method[is_ref])
    variants = rows[~is_ref & rows.method.isin(methods) & ref_label.isin(set(rows.label[is_ref]))]
    for (label, k, target), grp in variants.groupby(["label", "k", "target"], sort=True):
        mine = ref_label[grp.index[0]]
        ref = rows[(rows.label == mine) & (rows.k == k) & (rows.target == target)]
        pairs = grp.merge(ref, on="seed", suffixes=("", "_ref"))
        same = pairs.episodes_sha256 == pairs.episodes_sha256_ref
        for seed in pairs.seed[~same]:
            notes.append(f"{label} vs {mine}, {target} K={k} seed {seed}: different episodes, not paired")
        pairs = pairs[same].sort_values("seed")
        if pairs.empty:
            continue
        per_seed = (pairs.f1_ref - pairs.f1).to_numpy()  # (S,)
        deltas = [
            np.asarray(r, dtype=float) - np.asarray(v, dtype=float)
            for r, v in zip(pairs.f1_per_episode_ref, pairs.f1_per_episode, strict=True)
        ]
        lo, hi = bootstrap_ci(deltas, n_boot=n_boot)
        ours = paper.REPORTED.get((reference, k), {}).get(target)
        theirs = paper.REPORTED.get((label, k), {}).get(target)
        std = f" ± {per_seed.std(ddof=1):.2f}" if len(per_seed) > 1 else ""
        out.append(
            {
                "K": k,
                "variant": label,
                "target": short_name(target),
                "seeds": len(per_seed),
                f"{reference} − variant": f"{per_seed.mean():+.2f}{std}",
                f"{reference} ahead": f"{int((per_seed > 0).sum())}/{len(per_seed)}",
                "95% CI (episodes)": f"[{lo:+.2f}, {hi:+.2f}]",
                "paper": f"{ours[0] - theirs[0]:+.2f}" if ours and theirs else "-",
            }
        )
    table = pd.DataFrame(out)
    return (table.sort_values(["K", "variant", "target"], kind="stable") if out else table), notes

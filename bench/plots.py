"""A figure per result table: each row's mean F1 with its std over seeds, the paper's value beside it."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench import paper  # noqa: E402
from fewshot_ner.datasets import short_name  # noqa: E402
from fewshot_ner.metrics import summarize  # noqa: E402
from fewshot_ner.paths import atomic_path  # noqa: E402


def table_figure(rows: pd.DataFrame, title: str, path: Path) -> Path | None:
    """One panel per (K, target): a bar per row (mean, std error bar), a hollow bar for the paper's value."""
    if rows.empty:
        return None
    stats = summarize(rows)
    panels = sorted(stats[["k", "target"]].drop_duplicates().itertuples(index=False))
    labels = sorted(stats.label.unique())
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 + 2.2 * len(labels) * len(panels) / 4, 3.6), squeeze=False)
    for ax, (k, target) in zip(axes[0], panels, strict=True):
        here = stats[(stats.k == k) & (stats.target == target)].set_index("label")
        x = np.arange(len(labels))
        ours = [here["mean"].get(lab, np.nan) for lab in labels]
        err = [here["std"].get(lab, np.nan) for lab in labels]
        theirs = [paper.REPORTED.get((lab, k), {}).get(target, (np.nan, np.nan))[0] for lab in labels]
        ax.bar(x - 0.2, ours, 0.4, yerr=np.nan_to_num(err), capsize=3, color="#4c72b0", label="ours (mean ± std)")
        ax.bar(x + 0.2, theirs, 0.4, fill=False, edgecolor="#c44e52", hatch="//", label="paper")
        ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
        ax.set_title(f"{short_name(target)}, {k}-shot", fontsize=9)
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("entity F1 (strict IOB2)")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path

"""A figure per result table (each row's mean F1 with its std over seeds, the paper's beside it) and forest
plots of its paired differences (each mean with its interval over seeds, the paper's difference beside it)."""

from __future__ import annotations

import re
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

WIDTH_IN = 14.5  # at DPI, about 1,600 pixels: readable at page width
DPI = 110


def table_figure(rows: pd.DataFrame, title: str, path: Path, order: list[str] | None = None) -> Path | None:
    """A grid of panels, one per (K, target) (K down, targets across): a horizontal bar per row (mean, its std
    over seeds as an error bar) in the table's ``order``, and a hollow bar for the paper's value."""
    if rows.empty:
        return None
    stats = summarize(rows)
    shots = sorted(stats.k.unique())
    targets = sorted(stats.target.unique(), key=lambda t: short_name(t))
    labels = [lab for lab in dict.fromkeys(order or sorted(stats.label.unique())) if lab in set(stats.label)]
    height = 0.9 + 0.28 * len(labels) * len(shots)
    fig, axes = plt.subplots(len(shots), len(targets), figsize=(WIDTH_IN, height), squeeze=False, sharey=True)
    y = np.arange(len(labels))[::-1]  # the first row on top
    for r, k in enumerate(shots):
        for c, target in enumerate(targets):
            ax = axes[r][c]
            here = stats[(stats.k == k) & (stats.target == target)].set_index("label")
            ours = [here["mean"].get(lab, np.nan) for lab in labels]
            err = [here["std"].get(lab, np.nan) for lab in labels]
            theirs = [paper.REPORTED.get((lab, k), {}).get(target, (np.nan, np.nan))[0] for lab in labels]
            ax.barh(y + 0.2, ours, 0.4, xerr=np.nan_to_num(err), capsize=2, color="#4c72b0", label="ours (± std)")
            ax.barh(y - 0.2, theirs, 0.4, fill=False, edgecolor="#c44e52", hatch="//", label="paper")
            ax.set_yticks(y, labels, fontsize=8)
            ax.set_xlim(0, 100)
            ax.grid(axis="x", alpha=0.3)
            ax.set_title(f"{short_name(target)}, {k}-shot", fontsize=10)
            if r == len(shots) - 1:
                ax.set_xlabel("entity F1 (strict IOB2)")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    """Lay out, write atomically as PNG at ``DPI``, close; the figure's path."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    plt.close(fig)
    return path


def numbers_in(text: str) -> list[float]:
    """The signed numbers in a table cell ("+1.23 ± 0.45", "[-0.10, +2.00]"); none in "-" or "too few seeds"."""
    return [float(x) for x in re.findall(r"[-+]?\d+\.\d+", str(text))]


def forest_figure(lines: pd.DataFrame, title: str, path: Path) -> Path | None:
    """One line per comparison: its mean over seeds (dot), its 95% interval over seeds (bar; none under 3
    seeds), the paper's difference (red cross) and the zero line. ``lines`` has columns ``name``, ``mean``
    (text starting with the mean), ``interval`` ("[lo, hi]" or text without numbers) and ``paper``."""
    if lines.empty:
        return None
    means = [(numbers_in(m) or [np.nan])[0] for m in lines["mean"]]
    intervals = [numbers_in(i)[:2] if len(numbers_in(i)) >= 2 else [np.nan, np.nan] for i in lines["interval"]]
    papers = [(numbers_in(p) or [np.nan])[0] for p in lines["paper"]]
    y = np.arange(len(lines))[::-1]
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 0.8 + 0.26 * len(lines)))
    lo = np.array([i[0] for i in intervals])
    hi = np.array([i[1] for i in intervals])
    mean = np.array(means)
    ax.errorbar(mean, y, xerr=[mean - lo, hi - mean], fmt="o", color="#4c72b0", ecolor="#4c72b0", capsize=3,
                label="ours: mean over seeds, 95% interval over seeds")  # fmt: skip
    ax.scatter(papers, y, marker="x", color="#c44e52", zorder=3, label="paper's difference")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y, list(lines["name"]), fontsize=8)
    ax.set_xlabel("difference in entity F1 (A − B)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title, fontsize=11)
    return _save(fig, path)

"""Case-study figures (paper Fig. 7 and 8) from the per-token traces MFNER writes beside its records."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import font_manager  # noqa: E402

ROWS = (
    ("gold", "gold"),
    ("pred", "MFNER"),
    ("pred_no_image", "no image text"),
    ("pred_fixed_denoiser", "fixed denoiser"),
)


MISSING_GLYPH = "\N{REPLACEMENT CHARACTER}"


@lru_cache(maxsize=1)
def _figure_font() -> Any:
    return font_manager.get_font(font_manager.findfont(font_manager.FontProperties()))


def drawable(text: str) -> str:
    """``text`` with each character the figure font cannot draw (emoji, mostly) as U+FFFD."""
    font = _figure_font()
    return "".join(c if c.isspace() or font.get_char_index(ord(c)) else MISSING_GLYPH for c in text)


def pick_sentence(frame: pd.DataFrame) -> pd.DataFrame:
    """The query sentence where the variants disagree most (then the one with most entities)."""

    def score(group: pd.DataFrame) -> tuple[int, int]:
        disagree = int(((group.pred != group.pred_no_image) | (group.pred != group.pred_fixed_denoiser)).sum())
        return disagree, int((group.gold != "O").sum())

    groups = list(frame.groupby(["episode", "sentence"], sort=True))
    best = max(groups, key=lambda item: score(item[1]))
    return best[1]


def draw_case(sentence: pd.DataFrame, title: str, path: Path) -> Path:
    """Tokens across; a row of tags per variant (green: matches gold); beta per token below."""
    n = len(sentence)
    fig, (ax_tags, ax_beta) = plt.subplots(
        2, 1, figsize=(max(6.0, 0.9 * n), 4.2), gridspec_kw={"height_ratios": [3, 1.4]}, sharex=True
    )
    gold = sentence.gold.tolist()
    for r, (col, name) in enumerate(ROWS):
        for i, tag in enumerate(sentence[col].tolist()):
            ok = col == "gold" or tag == gold[i]
            color = "#f2f2f2" if col == "gold" else ("#d9f2d9" if ok else "#f8d0d0")
            ax_tags.add_patch(plt.Rectangle((i - 0.48, -r - 0.45), 0.96, 0.9, color=color))
            ax_tags.text(i, -r, tag, ha="center", va="center", fontsize=7)
        ax_tags.text(-0.6, -r, name, ha="right", va="center", fontsize=8)
    ax_tags.set_ylim(-len(ROWS) + 0.4, 0.6)
    ax_tags.set_xlim(-0.6, n - 0.4)
    ax_tags.axis("off")
    ax_tags.set_title(title, fontsize=9)
    ax_beta.bar(range(n), sentence.beta.tolist(), color="#4c72b0", label="beta (image view)")
    ax_beta.set_ylim(0, 1)
    ax_beta.axhline(0.5, color="grey", lw=0.6, ls="--")
    ax_beta.set_ylabel("beta", fontsize=8)
    ax_beta.set_xticks(range(n))
    ax_beta.set_xticklabels([drawable(t) for t in sentence.token], rotation=45, ha="right", fontsize=7)
    caption = sentence.image_text.iloc[0]
    fig.text(0.01, 0.01, f"image text: {drawable(caption[:140])}", fontsize=7, style="italic")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fig.savefig(tmp, dpi=130, format="png")
    plt.close(fig)
    tmp.replace(path)  # workers drawing the same figure never leave a torn file
    return path


def write_case_figures(
    traces: list[tuple[Path, pd.DataFrame]], suite: str, figures_dir: Path, other_suites: tuple[str, ...] = ()
) -> list[Path]:
    """One figure per traced cell of seed 0 of ``suite`` (the others hold the same kind of picture); this suite's
    figures whose trace is gone are removed, never those of ``other_suites`` that share the folder, not even where
    a name extends this one (``probes-mfner-base`` of ``probes-mfner``)."""
    out = []
    for path, frame in traces:
        if path.parent.parent.name != suite:  # an included row's traces: drawn by its own suite's report
            continue
        if frame.empty or not path.name.endswith("-s0.trace.json"):
            continue
        cell = path.name.removesuffix(".trace.json")
        title = f"{path.parent.name} {cell}: per-token tags and the denoiser's beta"
        out.append(draw_case(pick_sentence(frame), title, figures_dir / f"case-{suite}-{path.parent.name}-{cell}.png"))
    theirs = {p for other in other_suites if other != suite for p in figures_dir.glob(f"case-{other}-*.png")}
    for stale in set(figures_dir.glob(f"case-{suite}-*.png")) - set(out) - theirs:
        stale.unlink()  # its trace is gone (a cell redone under a new config): the picture would mislead
    return out

"""What MFNER adds to a suite's report from its traces: the Denoiser section and the case-study figures.

A trace row is one query token of a traced test episode: gold tag, the prediction, the
predictions with the trained model's denoiser switched at inference (no image text; fixed
0.5/0.5) and the gate's (alpha, beta); beta weighs the text+image view.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from fewshot_ner.method import ReportContext
from fewshot_ner.metrics import cell_table, mean_std_text
from mfner.figures import write_case_figures

CELL = ("label", "target", "k", "seed")


def _per_seed(rows: pd.DataFrame) -> dict[str, object]:
    entity = rows.gold != "O"
    return {
        **{c: rows[c].iloc[0] for c in CELL},
        "tokens": len(rows),
        "beta_entity": float(rows.beta[entity].mean()) if entity.any() else np.nan,
        "beta_other": float(rows.beta[~entity].mean()) if (~entity).any() else np.nan,
        "changed_no_image": float((rows.pred != rows.pred_no_image).mean()),
        "changed_fixed": float((rows.pred != rows.pred_fixed_denoiser).mean()),
    }


def denoiser_table(found: list[tuple[Path, pd.DataFrame]]) -> pd.DataFrame:
    """Per (K, method, target), over the seeds traced: the gate's mean beta on entity and on other
    tokens, and the share of tokens whose tag changes when the image text is dropped or the gate
    is fixed at 0.5. Methods whose gate is not learned (beta constant over every traced token) are
    left out: their beta is a setting, not a measurement.
    """
    traces = [rows for _, rows in found if not rows.empty]
    if not traces:
        return pd.DataFrame()
    learned = {label for label, grp in pd.concat(traces).groupby("label") if grp.beta.nunique() > 1}
    frame = pd.DataFrame([_per_seed(rows) for rows in traces])
    return cell_table(
        frame[frame.label.isin(learned)],
        lambda grp: {
            "tokens": int(grp.tokens.sum()),
            "beta, entity tokens": mean_std_text(grp.beta_entity),
            "beta, other tokens": mean_std_text(grp.beta_other),
            "% changed, no image text": mean_std_text(100 * grp.changed_no_image),
            "% changed, fixed gate": mean_std_text(100 * grp.changed_fixed),
        },
    )


def report_sections(ctx: ReportContext) -> list[tuple[str, str]]:
    """The Denoiser section and the case-study figures, as (title, markdown) pairs."""
    sections = []
    table = denoiser_table(ctx.traces)
    if not table.empty:
        sections.append(
            (
                "Denoiser (traced episodes)",
                f"Over the query tokens of the first {ctx.trace_episodes} test episodes of each traced cell: the gate's "
                "mean beta (weight of the text+image view) on gold-entity tokens and on the others, and the share of "
                "tokens whose predicted tag changes when the trained model runs without image text (E_f = E_t) or with "
                "the gate fixed at 0.5; per seed, then mean ± std over seeds. Rows with a fixed gate are left out.\n\n"
                + tabulate(table, headers="keys", tablefmt="github", showindex=False)
                + "\n",
            )
        )
    figures = write_case_figures(ctx.traces, ctx.suite, ctx.figures_dir, ctx.other_suites)
    if figures:
        links = "".join(f"\n![{f.stem}]({ctx.figures_dir.name}/{f.name})\n" for f in figures)
        sections.append(
            (
                "Case studies (paper Fig. 7 and 8)",
                "From the traces beside the seed-0 records: the query sentence of the "
                "first traced episodes where the variants disagree most. 'no image text' and 'fixed denoiser' switch the trained "
                f"model's denoiser at inference (E_f = E_t; alpha = beta = 0.5).\n{links}",
            )
        )
    return sections

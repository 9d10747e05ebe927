"""Per-token traces that MFNER writes beside its records, and what they say of the denoiser.

A trace row is one query token of a traced test episode: gold tag, the prediction, the
predictions with the trained model's denoiser switched at inference (no image text; fixed
0.5/0.5) and the gate's (alpha, beta); beta weighs the text+image view.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bench.records import label_folder
from mfner.datasets import short_name

CELL = ("label", "target", "k", "seed")


def load_traces(results_dir: Path, suite: str, folder: str = "*") -> list[tuple[Path, pd.DataFrame]]:
    """Every ``*.trace.json`` of a suite (of one row's ``folder``), as (path, rows); each row also
    names its cell (``CELL``)."""
    out = []
    for path in sorted((results_dir / suite).glob(f"{folder}/*.trace.json")):
        data = json.loads(path.read_text())
        out.append((path, pd.DataFrame(data["rows"]).assign(**{c: data[c] for c in CELL})))
    return out


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


def _mean_std(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "-"
    return f"{values.mean():.2f}" if len(values) < 2 else f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def denoiser_table(results_dir: Path, suite: str, include: tuple[tuple[str, str], ...] = ()) -> pd.DataFrame:
    """Per (K, method, target), over the seeds traced: the gate's mean beta on entity and on other
    tokens, and the share of tokens whose tag changes when the image text is dropped or the gate
    is fixed at 0.5. Methods whose gate is not learned (beta constant over every traced token) are
    left out: their beta is a setting, not a measurement. ``include``: (suite, label) rows of other
    suites to show too, as a suite's report does.
    """
    found = load_traces(results_dir, suite)
    for other, label in include:
        found += load_traces(results_dir, other, label_folder(label))
    traces = [rows for _, rows in found if not rows.empty]
    if not traces:
        return pd.DataFrame()
    learned = {label for label, grp in pd.concat(traces).groupby("label") if grp.beta.nunique() > 1}
    frame = pd.DataFrame([_per_seed(rows) for rows in traces])
    frame = frame[frame.label.isin(learned)]
    out = []
    for (k, label, target), grp in frame.groupby(["k", "label", "target"], sort=True):
        out.append(
            {
                "K": int(k),
                "method": label,
                "target": short_name(target),
                "seeds": len(grp),
                "tokens": int(grp.tokens.sum()),
                "beta, entity tokens": _mean_std(grp.beta_entity),
                "beta, other tokens": _mean_std(grp.beta_other),
                "% changed, no image text": _mean_std(100 * grp.changed_no_image),
                "% changed, fixed gate": _mean_std(100 * grp.changed_fixed),
            }
        )
    return pd.DataFrame(out)

"""The harness from Python, as the CLI drives it: the results as a tidy DataFrame, and a run.

from bench import api
df = api.results("table3")                       # one row per record (cell)
df.groupby(["row", "k", "target"]).f1.agg(["mean", "std"])
api.run("ci", precision="bf16", results_dir="scratch")   # what `bench run --suite ci --set precision=bf16` does
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from bench.records import RESULTS_DIR, tidy
from bench.suites import SUITES


def results(suite: str, results_dir: str | Path = RESULTS_DIR) -> pd.DataFrame:
    """Every record a suite's report reads (its own and the rows it includes), one row per cell, in
    ``bench.records.TIDY_COLUMNS`` (what ``reports/<suite>.csv`` holds).

    Records older than a field read its default: ``precision`` fp32.
    """
    from bench.report import suite_records

    return tidy(suite_records(SUITES.get(suite), Path(results_dir)), suite)


def export(suite: str, fmt: str, results_dir: str | Path = RESULTS_DIR) -> str:
    """``results`` as CSV or JSON (records) text: what ``bench report --format csv|json`` prints."""
    table = results(suite, results_dir)
    if fmt == "csv":
        return table.to_csv(index=False, lineterminator="\n")
    if fmt == "json":
        return table.to_json(orient="records", indent=1)
    raise ValueError(f"format must be csv or json, got {fmt!r}")


def run(suite: str, results_dir: str | Path | None = None, **overrides: Any) -> list[Path]:
    """Run a suite's missing cells (resumable, as ``bench run``) with method options replaced (``--set``); the
    selection options of ``RunOptions`` (``only_methods``, ``only_targets``, ``seeds``, ``shots``, ``encoder``,
    ``eval_episodes``, ...) pass through by name. Returns the record paths written or found."""
    from bench.runner import RunOptions, run_suite

    fields = set(RunOptions.__dataclass_fields__)
    chosen = SUITES.get(suite)
    opts = RunOptions(
        encoder=overrides.pop("encoder", chosen.encoder),
        **{k: overrides.pop(k) for k in list(overrides) if k in fields},
    )
    opts.overrides = overrides
    if results_dir is not None:
        opts.results_dir = Path(results_dir)
    return run_suite(chosen, opts)

"""Per-token traces that tracing methods write beside their records (``FewShotMethod.trace``)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.records import label_folder

CELL = ("label", "target", "k", "seed")


def load_traces(results_dir: Path, suite: str, folder: str = "*") -> list[tuple[Path, pd.DataFrame]]:
    """Every ``*.trace.json`` of a suite (of one row's ``folder``), as (path, rows); each row also
    names its cell (``CELL``)."""
    out = []
    for path in sorted((results_dir / suite).glob(f"{folder}/*.trace.json")):
        data = json.loads(path.read_text())
        out.append((path, pd.DataFrame(data["rows"]).assign(**{c: data[c] for c in CELL})))
    return out


def suite_traces(
    results_dir: Path, suite: str, include: tuple[tuple[str, str], ...] = ()
) -> list[tuple[Path, pd.DataFrame]]:
    """The traces of a suite and of the rows it includes from other suites."""
    found = load_traces(results_dir, suite)
    for other, label in include:
        found += load_traces(results_dir, other, label_folder(label))
    return found

"""Every committed report is what its committed records rebuild to: a table can't drift from its data."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.kernels import write_kernel_report
from bench.report import write_report
from bench.suites import SUITES

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = sorted(p.stem for p in (ROOT / "reports").glob("*.md") if p.stem in SUITES)


def test_every_suite_with_records_has_a_committed_report():
    with_records = {p.name for p in (ROOT / "results").iterdir() if p.is_dir()}
    assert with_records <= set(COMMITTED), "run `bench report --suite NAME` and commit reports/NAME.md"


@pytest.mark.parametrize("name", COMMITTED)
def test_committed_report_rebuilds_unchanged(name, tmp_path):
    suite = SUITES.get(name)
    if suite.kind == "kernels":
        path = write_kernel_report(ROOT / "results", tmp_path)
    else:
        path = write_report(suite, ROOT / "results", tmp_path)
    assert path.read_text() == (ROOT / "reports" / f"{name}.md").read_text(), (
        f"reports/{name}.md is stale: rebuild it with `bench report --suite {name}`"
    )

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
    if suite.kind != "kernels":
        assert path.with_suffix(".csv").read_text() == (ROOT / "reports" / f"{name}.csv").read_text()


def test_a_suites_report_brings_the_reports_that_include_its_rows():
    """table6 and ablations show table3 rows: rebuilding table3's report rebuilds theirs (a new table3 record
    once left table6's committed report stale)."""
    from bench.report import including_suites
    from bench.suites import SUITES

    assert {s.name for s in including_suites(SUITES.get("table3"))} == {"table6", "ablations", "base"}
    assert including_suites(SUITES.get("smoke")) == []


def test_committed_claims_rebuild_unchanged(tmp_path):
    from bench.claims import write_claims

    path = write_claims(ROOT / "results", tmp_path)
    assert path.read_text() == (ROOT / "reports" / "claims.md").read_text(), (
        "reports/claims.md is stale: rebuild it with `bench report --suite claims`"
    )

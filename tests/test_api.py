"""The results as data: bench.api.results, bench report --format csv|json, and the committed CSVs agree."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pandas as pd

from bench import api
from bench.cli import main
from bench.records import TIDY_COLUMNS

ROOT = Path(__file__).resolve().parent.parent


def test_results_are_one_row_per_record_with_every_column():
    table = api.results("table6")
    records = [p for p in (ROOT / "results" / "table6").rglob("*.json") if not p.name.endswith(".trace.json")]
    included = [
        p
        for label in ("ProtoNet", "WPZ", "SpanNER")
        for p in (ROOT / "results" / "table3" / label).glob("*-k1-*.json")  # table6 shows 1 shot only
        if not p.name.endswith(".trace.json")
    ]
    assert list(table.columns) == list(TIDY_COLUMNS)
    assert len(table) == len(records) + len(included)
    first = json.loads(sorted(records)[0].read_text())
    hit = table[(table.label == first["label"]) & (table.target == first["target"]) & (table.seed == first["seed"])]
    assert hit.f1.iloc[0] == round(first["f1"], 4) and set(table.precision) == {"fp32"}


def test_csv_and_json_exports_match_the_committed_csv(capsys):
    assert main(["report", "--suite", "table6", "--format", "csv"]) == 0
    printed = capsys.readouterr().out
    committed = (ROOT / "reports" / "table6.csv").read_text()
    assert printed == committed
    assert main(["report", "--suite", "table6", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    frame = pd.read_csv(io.StringIO(committed))
    assert len(rows) == len(frame) and rows[0]["label"] == frame.label.iloc[0]


def test_the_front_page_rebuilds_unchanged(tmp_path):
    from bench.report import write_index

    copy = tmp_path / "reports"
    shutil.copytree(ROOT / "reports", copy)
    (copy / "README.md").unlink()
    write_index(copy)
    assert (copy / "README.md").read_text() == (ROOT / "reports" / "README.md").read_text()


def test_run_does_what_the_runner_does(suite, tiny_model_dir, tmp_path):
    from dataclasses import replace

    from bench.runner import RunOptions, run_suite
    from bench.suites import SUITES

    one = replace(suite, seeds=(0,))
    SUITES.add("mini-api", replace(one, name="mini-api"))
    try:
        paths = api.run(
            "mini-api",
            results_dir=tmp_path / "api",
            encoder=str(tiny_model_dir),
            progress=False,
            similarity="euclidean",
        )
    finally:
        del SUITES._items["mini-api"]
    peer = replace(one, name="mini-api", methods=(replace(one.methods[0], options={"similarity": "euclidean"}),))
    direct = run_suite(peer, RunOptions(results_dir=tmp_path / "direct", encoder=str(tiny_model_dir), progress=False))
    assert len(paths) == len(direct) == 2
    f1 = sorted(json.loads(p.read_text())["f1_per_episode"] for p in paths)
    assert f1 == sorted(json.loads(p.read_text())["f1_per_episode"] for p in direct)
    assert all("[similarity=euclidean]" in p.parent.name for p in paths)  # an override is a row of its own

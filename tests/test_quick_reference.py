"""The quick run's reproduction line: its cells against the committed reference cells, episode by episode."""

from __future__ import annotations

import json
from pathlib import Path

from bench.check import compare_with_reference
from bench.cli import main


def write(folder, rel, f1s, threads=2):
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"episodes_sha256": "e", "f1_per_episode": f1s, "env": {"torch_threads": threads}}))


def test_the_line_counts_exact_reproductions_and_names_the_largest_difference(tmp_path):
    fresh, ref = tmp_path / "fresh", tmp_path / "ref"
    write(ref, "table3/A/t-k1-s0.json", [10.0, 20.0])
    write(fresh, "table3/A/t-k1-s0.json", [10.0, 20.0])
    write(ref, "table3/B/t-k1-s0.json", [10.0, 20.0])
    write(fresh, "table3/B/t-k1-s0.json", [10.0, 20.5], threads=1)
    write(fresh, "table3/C/t-k1-s0.json", [1.0])  # a row the reference lacks: not counted
    rows, line = compare_with_reference(fresh, ref, "table3")
    assert line.startswith("1 of 2 cells reproduce the reference to the last digit")
    assert "0.5 F1 (table3/B/t-k1-s0.json, torch threads reference/here 2/1" in line
    assert [r["status"] for r in rows] == ["ok", "CHANGED", "no reference"]
    _, line = compare_with_reference(fresh, ref, "other")
    assert line.startswith("no reference cells")


def test_check_quick_reruns_the_committed_quick_cells_and_fails_on_a_moved_one(tmp_path, capsys):
    """`bench check --quick` plans a cell as `bench run --quick` does and compares it with reference/quick; the
    lookup floor's cell (no training, seconds) reproduces, and a reference whose episode was altered fails."""
    reference = Path(__file__).resolve().parent.parent / "reference" / "quick"
    selection = ["--suite", "table3", "--quick", "--method", "lookup", "--target", "twitter2015", "--k", "1"]
    assert main(["check", *selection, "--quiet"]) == 0
    assert "1 of 1 cell(s) reproduce" in capsys.readouterr().out
    moved = tmp_path / "table3" / "lookup" / "twitter2015-k1-s0.json"
    moved.parent.mkdir(parents=True)
    record = json.loads((reference / "table3" / "lookup" / "twitter2015-k1-s0.json").read_text())
    record["f1_per_episode"][3] += 1.0
    moved.write_text(json.dumps(record))
    assert main(["check", *selection, "--results-dir", str(tmp_path), "--quiet"]) == 1
    assert "CHANGED" in capsys.readouterr().out

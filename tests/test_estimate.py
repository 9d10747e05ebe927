"""A cell's expected seconds: its finished peers, else its row's other cells scaled by the same method's ratios."""

import json

import pytest

from bench.estimate import CellKey, CostIndex, cell_seconds


def _cells(folder, method, cells, options=None, **fields):
    folder.mkdir(parents=True, exist_ok=True)
    for (target, k, seed), wall in cells.items():
        record = {"wall_s": wall} | ({"method": method} if method else {}) | ({"options": options} if options else {})
        record |= fields  # row, encoder, precision
        (folder / f"{target}-k{k}-s{seed}.json").write_text(json.dumps(record))
        (folder / f"{target}-k{k}-s{seed}.trace.json").write_text(json.dumps({"rows": []}))  # never a cell


@pytest.fixture
def results(tmp_path):
    here, committed = tmp_path / "results", tmp_path / "committed"
    # two rows of method m that ran both K: 5 shots cost 3x (row x, median 110 -> 330) and 2x (row y)
    _cells(here / "a" / "x", "m", {("t15", 1, 0): 100.0, ("t15", 1, 1): 120.0, ("t15", 5, 0): 330.0})
    _cells(committed / "a" / "y", "m", {("t15", 1, 0): 200.0, ("t15", 5, 0): 400.0})
    _cells(here / "a" / "other", "n", {("t15", 1, 0): 10.0, ("t15", 5, 0): 1000.0})  # another method: not used
    _cells(here / "b" / "new", "m", {("t15", 1, 0): 50.0})  # the row to estimate: 1 shot only
    _cells(here / "b" / "anon", None, {("t15", 1, 0): 50.0})  # records without a method: nothing to scale by
    return here, committed


def test_a_cell_without_peers_is_its_rows_other_cells_times_the_methods_median_ratio(results):
    here, committed = results
    index = CostIndex(here, committed)
    seconds, basis = index.scaled(here / "b" / "new" / "t15-k5-s0.json")
    assert seconds == pytest.approx(50.0 * 2.5)  # the median of the ratios 3.0 and 2.0
    assert basis == "t15 K=1 x 2.50 (2 row(s) of m)"
    assert index.scaled(here / "b" / "anon" / "t15-k5-s0.json") is None
    assert index.scaled(here / "b" / "new" / "t17-k1-s0.json") is None  # no row of m ran t17


def test_cell_seconds_prefers_peers_then_scaling_then_the_others_median(results):
    here, committed = results
    todo = [here / "b" / "new" / "t15-k1-s1.json", here / "b" / "new" / "t15-k5-s0.json"]
    todo.append(here / "b" / "anon" / "t15-k5-s0.json")
    assert cell_seconds(todo, here, committed) == [50.0, 125.0, 87.5]


def test_a_row_committed_and_here_counts_each_cell_once(results):
    here, committed = results
    _cells(committed / "a" / "x", "m", {("t15", 1, 0): 100.0, ("t15", 1, 1): 120.0, ("t15", 5, 0): 330.0})
    _cells(committed / "a" / "x", "m", {("t15", 1, 2): 1000.0})  # a third, committed only: the median moves to 120
    row = CostIndex(here, committed).row(here / "a" / "x")
    assert row.method == "m" and row.medians == {("t15", 1): 120.0, ("t15", 5): 330.0}


def test_the_basis_that_ran_the_cells_options_is_preferred(results):
    """A row whose blocks ran different options (step_tokens at 5 shots) scales a new block from the one that ran its
    options, even where another block's ratio rests on more rows; the basis says when options differ."""
    here, committed = results
    _cells(here / "a" / "x", "m", {("t17", 1, 0): 300.0})  # x: t17 1-shot costs 3x t15 1-shot, 330/300 of t15 5-shot
    _cells(committed / "a" / "y", "m", {("t17", 1, 0): 400.0})  # y: 2x and 1x
    _cells(here / "a" / "z", "m", {("t15", 1, 0): 10.0, ("t17", 1, 0): 25.0})  # z: only 1 shot, 2.5x
    _cells(here / "b" / "new", "m", {("t15", 5, 0): 200.0}, options={"step_tokens": 1024})  # 5 shots shared
    want = here / "b" / "new" / "t17-k1-s0.json"
    index = CostIndex(here, committed)
    assert index.scaled(want) == (pytest.approx(50.0 * 2.5), "t15 K=1 x 2.50 (3 row(s) of m)")  # the most rows
    seconds, basis = index.scaled(want, CellKey("m", "new", ("minilm", "fp32"), {"step_tokens": 1024}))
    assert seconds == pytest.approx(200.0 * (300 / 330 + 1.0) / 2)  # the median of x's and y's t17 K=1 / t15 K=5
    assert basis == "t15 K=5 x 0.95 (2 row(s) of m)"
    seconds, basis = index.scaled(want, CellKey("m", "new", ("minilm", "fp32"), {"step_tokens": 512}))  # no such block
    assert basis == "t15 K=1 x 2.50 (3 row(s) of m; its cells ran other options than this one)"


def test_a_methods_protocols_scale_apart(tmp_path):
    """BERT+CRF's support cells cost their test episodes, its transfer cells a source training: a support row's
    T17 cell scales by the other support rows' T17/T15 ratio, not by the transfer rows' (twice the source)."""
    here, committed = tmp_path / "results", tmp_path / "committed"
    for name, protocol, t17 in (("sup", "support", 110.0), ("tr", "transfer", 400.0), ("tr2", "transfer", 420.0)):
        cells = {("t15", 1, 0): 100.0 if protocol == "support" else 200.0, ("t17", 1, 0): t17}
        _cells(here / "a" / name, "bert-crf", cells, config={"protocol": protocol})
    _cells(here / "b" / "new", "bert-crf", {("t15", 1, 0): 50.0}, config={"protocol": "support"})
    seconds, basis = CostIndex(here, committed).scaled(here / "b" / "new" / "t17-k1-s0.json")
    assert seconds == pytest.approx(50.0 * 1.1) and basis == "t15 K=1 x 1.10 (1 row(s) of bert-crf (support))"
    _cells(here / "b" / "plain", "m", {("t15", 1, 0): 50.0})  # a method without protocols: its name alone
    _cells(here / "a" / "m", "m", {("t15", 1, 0): 10.0, ("t17", 1, 0): 30.0})
    assert CostIndex(here, committed).scaled(here / "b" / "plain" / "t17-k1-s0.json")[1].endswith("(1 row(s) of m)")


def test_a_row_with_no_cell_is_its_twin_at_another_setting_times_the_methods_setting_ratio(tmp_path):
    """fulldata-base's first cell: fulldata's row of the same label at MiniLM, times what mpnet-base in bf16 cost the
    same method's other rows that ran both settings (median over their shared (target, K))."""
    here, committed = tmp_path / "results", tmp_path / "committed"
    small, base = {"encoder": "minilm", "precision": "fp32"}, {"encoder": "mpnet-base", "precision": "bf16"}
    _cells(committed / "fulldata" / "full", "b", {("t15", 0, 0): 1000.0}, row="full", **small)
    _cells(committed / "table3" / "tr", "b", {("t15", 1, 0): 100.0, ("t15", 5, 0): 50.0}, row="tr", **small)
    _cells(here / "base" / "tr@base", "b", {("t15", 1, 0): 300.0, ("t15", 5, 0): 200.0}, row="tr", **base)
    _cells(here / "base" / "other@base", "c", {("t15", 1, 0): 9.0}, row="tr", **base)  # another method: not used
    _cells(here / "old" / "x", "b", {("t15", 1, 0): 1.0}, **base)  # records without a row label pair with nothing
    _cells(committed / "old" / "y", "b", {("t15", 1, 0): 1000.0}, **small)
    index = CostIndex(here, committed)
    want = here / "fulldata-base" / "full@base" / "t15-k0-s0.json"
    assert index.scaled(want) is None  # no record and no key: nothing to go by
    seconds, basis = index.scaled(want, CellKey("b", "full", ("mpnet-base", "bf16")))
    assert seconds == pytest.approx(1000.0 * 3.5)  # the median of 300/100 and 200/50
    assert basis == "its minilm/fp32 twin at t15 K=0 x 3.50 (2 cell(s) of b at both settings)"
    assert index.scaled(want, CellKey("b", "full", ("minilm", "fp32"))) is None  # its own setting: no twin
    assert cell_seconds([want], here, committed, cells=[CellKey("b", "full", ("mpnet-base", "bf16"))]) == [3500.0]

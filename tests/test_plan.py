"""One plan per cell: everything about a cell is decided once (``plan_cell``), and what runs it (the serial loop,
Dask, ``bench check``, ``--dry-run``) reads the plan, so the record is filed and labelled as planned."""

from __future__ import annotations

import json

import pytest

from bench.cell import CellPlan, RunOptions
from bench.methods import METHODS
from bench.runner import plan_suite, run_suite, select


def opts_for(tmp_path, tiny_model_dir, **kw) -> RunOptions:
    return RunOptions(results_dir=tmp_path, encoder=str(tiny_model_dir), progress=False, **kw)


def test_a_plan_decides_label_path_options_and_limits_once(suite, tiny_model_dir, tmp_path):
    opts = opts_for(tmp_path, tiny_model_dir, overrides={"precision": "bf16"}, seeds=(0,), eval_episodes=3)
    _, todo, done = select(suite, opts)
    assert not done and {p.cell.target for p in todo} == {"mini17", "mini15"}  # snap can't load; 'nope' not run
    for plan in todo:
        assert isinstance(plan, CellPlan)
        assert plan.label == f"proto-dot@{tiny_model_dir.name} (bf16)" and plan.precision == "bf16"
        assert plan.method_options == {"similarity": "dot"}  # the harness option is not the method's
        assert plan.sources == tuple(n for n in ("mini17", "mini15") if n != plan.cell.target)
        assert plan.eval_limit == 3 and plan.path.parent.parent == tmp_path / "mini"
    written = run_suite(suite, opts)
    assert sorted(written) == sorted(p.path for p in todo)  # filed where planned
    for plan in todo:
        record = json.loads(plan.path.read_text())
        assert record["label"] == plan.label and record["options"] == plan.method_options
        assert record["precision"] == "bf16" and record["n_episodes"] == 3 and record["sources"] == list(plan.sources)
    rows = plan_suite(suite, opts)
    by_path = {p.path: p for p in todo}
    assert all(r["plan"] == by_path[r["plan"].path] and r["state"] == "done" for r in rows) and len(rows) == len(todo)


def test_a_quick_plan_carries_the_methods_quick_budget(suite, tiny_model_dir, tmp_path):
    from dataclasses import replace

    from bench.suites import MethodSpec

    transfer = replace(suite, methods=(MethodSpec("BERT+CRF transfer", "bert-crf", {"protocol": "transfer"}),))
    (plan, *_), _ = select(transfer, opts_for(tmp_path, tiny_model_dir, quick=True))[1:]
    assert plan.method_options == {"protocol": "transfer", **METHODS.get("bert-crf").quick_options()}


def test_a_bad_option_fails_when_the_cell_is_planned(suite, tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="no option"):
        select(suite, opts_for(tmp_path, tiny_model_dir, overrides={"no_such_option": 1}))

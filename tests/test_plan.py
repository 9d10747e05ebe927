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


def test_a_quick_plan_trains_on_half_as_many_five_shot_source_episodes(suite, tiny_model_dir, tmp_path):
    from dataclasses import replace

    from bench.suites import QUICK_TRAIN_EPISODES

    both = replace(suite, shots=(1, 5))
    _, todo, _ = select(both, opts_for(tmp_path, tiny_model_dir, quick=True, seeds=(0,)))
    assert {(p.cell.k, p.train_episodes) for p in todo} == {(1, QUICK_TRAIN_EPISODES[1]), (5, QUICK_TRAIN_EPISODES[5])}
    assert QUICK_TRAIN_EPISODES[5] * 2 == QUICK_TRAIN_EPISODES[1]
    _, full, _ = select(both, opts_for(tmp_path, tiny_model_dir, seeds=(0,)))
    assert {p.train_episodes for p in full} == {None}  # outside --quick: all the suite gives


@pytest.mark.parametrize("quick", [True, False])
def test_a_quick_cell_readies_only_the_sentences_it_scores(quick, suite, tiny_model_dir, tmp_path, monkeypatch):
    from baselines.nearest_proto import FrozenNearestPrototype
    from bench.cell import run_cell
    from fewshot_ner.datasets import available_domains
    from fewshot_ner.episodes import cached_episodes

    seen = []
    real = FrozenNearestPrototype.prepare
    monkeypatch.setattr(
        FrozenNearestPrototype, "prepare", lambda self, target: seen.append(target) or real(self, target)
    )
    opts = opts_for(tmp_path, tiny_model_dir, quick=quick, seeds=(0,), eval_episodes=2)
    _, todo, _ = select(suite, opts)
    plan = next(p for p in todo if p.cell.target == "mini15")
    by_name = {d.name: d for d in available_domains(list(suite.domains), None)[0]}
    record, _ = run_cell(plan, by_name, opts)
    target = by_name["mini15"]
    (prepared,) = seen
    assert prepared.name == target.name and record["data_sha256"]["mini15"] == target.data_hash
    if not quick:
        assert prepared is target
        return
    scored = cached_episodes(target, 1, 0, suite.max_episodes, "test").materialize(target, 2)
    keys = {s.key for ep in scored for s in (*ep.support, *ep.query)}
    assert {s.key for s in prepared.sentences} == keys and len(keys) < len(target.sentences)
    assert prepared.data_hash != target.data_hash  # a frozen-vector cache keyed by it never mixes part and whole


def test_dask_gets_the_longest_cells_first(suite, tiny_model_dir, tmp_path, monkeypatch):
    import bench.cluster

    opts = opts_for(tmp_path, tiny_model_dir, seeds=(1,), backend="dask")
    _, todo, _ = select(suite, opts)
    for plan, cpu in zip(todo, (10.0, 500.0), strict=True):  # a finished seed-0 peer of each cell
        peer = plan.path.with_name(plan.path.name.replace("-s1", "-s0"))
        peer.parent.mkdir(parents=True, exist_ok=True)
        # by CPU seconds: the short cell's wall time was long (it waited, or shared the machine)
        peer.write_text(json.dumps({"wall_s": 900.0 - cpu, "cpu_s": cpu}))
    order = []
    monkeypatch.setattr(bench.cluster, "run_on_dask", lambda plans, *a, **k: order.extend(plans) or [])
    run_suite(suite, opts)
    assert [p.path for p in order] == [todo[1].path, todo[0].path]


def test_a_quick_dry_run_estimates_from_the_quick_reference(suite, tiny_model_dir, tmp_path, monkeypatch):
    import bench.runner

    reference, scratch = tmp_path / "reference", tmp_path / "quick"
    monkeypatch.setattr(bench.runner, "QUICK_REFERENCE_DIR", reference)
    opts = opts_for(scratch, tiny_model_dir, quick=True, seeds=(0,))
    _, todo, _ = select(suite, opts)
    peer = reference / todo[0].path.relative_to(scratch)
    peer.parent.mkdir(parents=True)
    peer.write_text(json.dumps({"wall_s": 42.0, "cpu_s": 40.0}))
    rows = {r["record"]: r for r in plan_suite(suite, opts)}
    assert rows[str(todo[0].path)]["wall_s"] == 42.0  # the reference's cell, not the full grid's
    assert rows[str(todo[1].path)]["wall_s"] is None  # no peer anywhere


def test_cell_options_reach_their_blocks_only_under_the_rows_label(suite, tiny_model_dir, tmp_path):
    """A suite's ``cell_options`` add options to the cells of their (target, K) blocks and methods: those cells'
    plans carry them (and so their records and checkpoints), every other cell runs as declared, labels unchanged."""
    from dataclasses import replace

    from bench.suites import BASE_META, CellOptions, MethodSpec

    rows = (MethodSpec("ProtoNet", "protonet", dict(BASE_META)), MethodSpec("lookup", "lookup"))
    blocks = (CellOptions({"step_tokens": 512}, ("protonet",), ("mini15",), (1,)),)
    grid = replace(suite, methods=rows, cell_options=blocks, shots=(1, 5))
    opts = opts_for(tmp_path, tiny_model_dir, seeds=(0,))
    _, todo, _ = select(grid, opts)
    seen = {}
    for plan in todo:
        cell = plan.cell
        seen[(cell.spec.method, cell.target, cell.k)] = plan.method_options.get("step_tokens")
        assert plan.label.startswith(cell.spec.label) and cell.spec.label in ("ProtoNet", "lookup")
    assert seen[("protonet", "mini15", 1)] == 512
    assert {v for key, v in seen.items() if key != ("protonet", "mini15", 1)} == {None}
    assert len(seen) == 2 * 2 * 2
    plain = replace(grid, cell_options=())
    (a, b) = [
        next(
            p for p in select(g, opts)[1] if (p.cell.spec.method, p.cell.target, p.cell.k) == ("protonet", "mini15", 1)
        )
        for g in (grid, plain)
    ]
    assert a.path == b.path and a.checkpoint(opts) != b.checkpoint(opts)  # one record, not one training state

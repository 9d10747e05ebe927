"""A finished record whose configuration its row no longer declares is stale: it reruns, and is kept aside.

Resumable runs skip a cell whose record exists. Without this check, a row whose options changed (a probe chose
another value, a default moved) would keep its old records and mix two configurations in one table row.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from baselines.nearest_proto import FrozenNearestPrototype
from baselines.protonet import ProtoNet
from bench.check import check_suite
from bench.records import load_records
from bench.report import _stale_note
from bench.runner import RunOptions, plan_suite, run_suite, stale_options
from bench.suites import MethodSpec
from fewshot_ner.conformance import check_method


def opts_for(tmp_path: Path, model_dir: Path) -> RunOptions:
    return RunOptions(results_dir=tmp_path, encoder=str(model_dir), progress=False, only_targets=("mini17",))


def with_methods(suite, *specs: MethodSpec):
    return replace(suite, methods=specs, seeds=(0,))


def test_a_row_whose_options_changed_reruns_and_keeps_the_old_record(suite, tiny_model_dir, tmp_path):
    dot = with_methods(suite, MethodSpec("proto", "proto-frozen", {"similarity": "dot"}))
    (path,) = run_suite(dot, opts_for(tmp_path, tiny_model_dir))
    old = json.loads(path.read_text())
    assert old["config"]["similarity"] == "dot"

    euclid = with_methods(suite, MethodSpec("proto", "proto-frozen", {"similarity": "euclidean"}))
    opts = opts_for(tmp_path, tiny_model_dir)
    assert [r["state"] for r in plan_suite(euclid, opts)] == ["todo, stale (similarity)"]  # --dry-run's state
    assert any(str(path) in line and "similarity 'dot' where the row asks 'euclidean'" in line for line in opts.log)

    (again,) = run_suite(euclid, opts_for(tmp_path, tiny_model_dir))
    assert json.loads(again.read_text())["config"]["similarity"] == "euclidean"
    kept = path.with_name(path.name + ".stale")
    assert json.loads(kept.read_text()) == old  # nothing lost
    assert [r["state"] for r in plan_suite(euclid, opts_for(tmp_path, tiny_model_dir))] == ["done"]


def test_spelling_out_a_default_is_not_stale(suite, tiny_model_dir, tmp_path):
    implicit = with_methods(suite, MethodSpec("proto", "proto-frozen"))
    run_suite(implicit, opts_for(tmp_path, tiny_model_dir))
    explicit = with_methods(suite, MethodSpec("proto", "proto-frozen", {"similarity": "euclidean"}))
    assert [r["state"] for r in plan_suite(explicit, opts_for(tmp_path, tiny_model_dir))] == ["done"]


def test_check_fails_on_a_stale_record_without_rerunning_it(suite, tiny_model_dir, tmp_path):
    run_suite(
        with_methods(suite, MethodSpec("proto", "proto-frozen", {"similarity": "dot"})),
        opts_for(tmp_path, tiny_model_dir),
    )
    moved = with_methods(suite, MethodSpec("proto", "proto-frozen", {"similarity": "cosine"}))
    rows, ok = check_suite(moved, opts_for(tmp_path, tiny_model_dir))
    assert not ok
    assert [r["status"] for r in rows] == ["STALE (similarity 'dot' where the row asks 'cosine')"]


@pytest.fixture
def protonet_plan(suite, tiny_model_dir, tmp_path):
    """The plan of one ProtoNet cell (no record: planning builds no method)."""
    one = with_methods(suite, MethodSpec("ProtoNet", "protonet", {"train_layers": "all"}))
    (row,) = plan_suite(one, opts_for(tmp_path, tiny_model_dir))
    return row["plan"]


def record_of(plan, tiny_model_dir, **config) -> dict:
    resolved = json.loads(json.dumps(ProtoNet.resolved_config(plan.method_options)))
    return {"method": "protonet", "encoder": str(tiny_model_dir), "config": resolved | config}


def test_stale_options_against_the_resolved_configuration(protonet_plan, tiny_model_dir, monkeypatch):
    plan = protonet_plan
    assert stale_options(record_of(plan, tiny_model_dir), plan) == {}
    assert stale_options(record_of(plan, tiny_model_dir, head_lr=0.5), plan) == {"head_lr": (0.5, 0.01)}
    # the tiny encoder has 2 layers: "all" and 2 are one choice, 1 is another
    assert stale_options(record_of(plan, tiny_model_dir, train_layers=2), plan) == {}
    assert stale_options(record_of(plan, tiny_model_dir, train_layers=1), plan) == {"train_layers": (1, "all")}
    # a key the record lacks (an option added since) is not compared; an unknown key of the record neither
    older = record_of(plan, tiny_model_dir)
    del older["config"]["step_tokens"]
    assert stale_options(older | {"config": older["config"] | {"gone": 1}}, plan) == {}
    # another method under the row's label
    assert stale_options(record_of(plan, tiny_model_dir) | {"method": "wpz"}, plan) == {"method": ("wpz", "protonet")}
    # a default that moved since the record ran
    monkeypatch.setattr(ProtoNet, "extra_options", {"similarity": "euclidean"})
    assert stale_options(record_of(plan, tiny_model_dir, similarity="cosine"), plan) == {
        "similarity": ("cosine", "euclidean")
    }


def test_a_method_that_cannot_resolve_compares_its_options(protonet_plan, monkeypatch):
    monkeypatch.setattr(ProtoNet, "resolved_config", classmethod(lambda cls, options: None))
    plan = protonet_plan
    assert stale_options({"method": "protonet", "options": {"train_layers": "all"}}, plan) == {}
    assert stale_options({"method": "protonet", "options": {}}, plan) == {"train_layers": (None, "all")}


def test_conformance_catches_a_resolved_config_that_is_not_the_built_one(tiny_model_dir):
    class Misread(FrozenNearestPrototype):
        @classmethod
        def resolved_config(cls, options):
            return {"input": "text", "similarity": "dot"}  # the constructor's default is euclidean

    with pytest.raises(AssertionError, match="resolved_config differs"):
        check_method(Misread, {}, tiny_model_dir)


def smoke_record(folder: Path, row: str, options: dict, similarity: str) -> None:
    """A minimal record of suite smoke's proto-frozen row (or its ``--set`` variant) under ``folder``."""
    path = folder / "smoke" / row / "twitter2015-k1-s0.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {"input": "text", "similarity": similarity, "encoder": "minilm"}
    record = {"label": row, "row": row, "method": "proto-frozen", "target": "twitter2015", "k": 1, "seed": 0}
    path.write_text(json.dumps(record | {"f1": 1.0, "f1_per_episode": [1.0], "options": options, "config": config}))


def test_the_report_names_records_their_row_no_longer_declares(tmp_path):
    smoke_record(tmp_path, "proto-frozen", {}, "euclidean")  # current: the row declares no option
    smoke_record(tmp_path, "proto-frozen[similarity=dot]", {"similarity": "dot"}, "dot")  # a --set row, current
    assert _stale_note(load_records(tmp_path, "smoke")) == ""

    smoke_record(tmp_path, "proto-frozen", {"similarity": "cosine"}, "cosine")  # as if the row had declared cosine
    smoke_record(tmp_path, "proto-frozen[similarity=dot]", {"similarity": "dot"}, "cosine")  # ran other than its tag
    note = _stale_note(load_records(tmp_path, "smoke"))
    assert note.startswith("2 of 2 records ran another configuration")
    assert "proto-frozen: similarity 'cosine' where the row asks 'euclidean' (1 record)" in note
    assert "proto-frozen[similarity=dot]: similarity 'cosine' where the row asks 'dot' (1 record)" in note


def test_quick_records_ran_their_rows_with_the_quick_budget_not_stale():
    """The committed quick reference ran each row with its method's --quick options on top: current, not stale."""
    reference = Path(__file__).resolve().parent.parent / "reference" / "quick"
    rows = load_records(reference, "table3")
    assert len(rows) > 40 and rows["quick"].all()
    assert _stale_note(rows) == ""

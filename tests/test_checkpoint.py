"""A training loop cut short resumes from its checkpoint to the same weights, bit for bit, as one never stopped."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from fewshot_ner.episodes import sample_episodes
from fewshot_ner.method import RunContext, SourceTask
from fewshot_ner.trainer import TrainerConfig, train_episodic
from mfner.method import MFNER
from tests.test_mfner import registered, synthetic_domain  # noqa: F401 - the fixture is used by name


class Stop(Exception):
    """The process dies here (a session's end, a preemption)."""


def _toy() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.Linear(8, 1))


def _train(model: nn.Module, cfg: TrainerConfig, checkpoint=None, stop_after: int | None = None) -> dict:
    episodes = [torch.randn(5, 4, generator=torch.Generator().manual_seed(i)) for i in range(10)]
    calls = 0

    def loss(x: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        if stop_after is not None and calls == stop_after:
            raise Stop
        calls += 1
        return model(x).pow(2).mean()  # the dropout draws from the global generator

    groups = [{"params": list(model.parameters()), "lr": 1e-2}]
    return train_episodic(loss, episodes, groups, cfg, "toy", checkpoint=checkpoint, save_every_s=0.0)


@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_a_loop_cut_mid_pass_resumes_to_the_same_weights(tmp_path, schedule):
    cfg = TrainerConfig(passes=3, min_steps=0, episodes_per_step=3, schedule=schedule)  # 4 steps a pass of 10
    whole = _toy()
    report = _train(whole, cfg)
    path = tmp_path / "loop.pt"
    with pytest.raises(Stop):  # pass 1, then pass 2's first 6 episodes (2 steps), dies in its 7th
        _train(_toy(), cfg, path, stop_after=16)
    torch.manual_seed(123)  # a new process: another global generator state, which the checkpoint puts back
    resumed_model = _toy()
    resumed = _train(resumed_model, cfg, path)
    assert resumed["resumed_at_step"] == 6 and resumed["optimizer_steps"] == report["optimizer_steps"] == 12
    assert resumed["earlier_train_s"] >= 0 and resumed["earlier_train_cpu_s"] >= 0  # the cut process's training
    assert resumed["mean_query_nll_per_pass"] == report["mean_query_nll_per_pass"]
    assert all(torch.equal(a, b) for a, b in zip(whole.parameters(), resumed_model.parameters(), strict=True))
    finished = _toy()  # the last save holds the whole fit: a process that dies later trains nothing again
    again = _train(finished, cfg, path, stop_after=0)
    assert again["resumed_at_step"] == 12
    assert all(torch.equal(a, b) for a, b in zip(whole.parameters(), finished.parameters(), strict=True))


@pytest.mark.parametrize("damage", ["another loop", "truncated"])
def test_a_checkpoint_that_does_not_fit_is_set_aside_and_training_starts_afresh(tmp_path, damage):
    cfg = TrainerConfig(passes=2, min_steps=0, episodes_per_step=3)
    whole = _toy()
    _train(whole, cfg)
    path = tmp_path / "loop.pt"
    _train(_toy(), TrainerConfig(passes=1, min_steps=0, episodes_per_step=3), path)  # a loop of 1 pass saved it
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    fresh = _toy()
    with pytest.warns(UserWarning, match="ignored and removed, training starts afresh"):
        report = _train(fresh, cfg, path)
    assert "resumed_at_step" not in report
    assert all(torch.equal(a, b) for a, b in zip(whole.parameters(), fresh.parameters(), strict=True))


def test_mfner_cut_short_predicts_as_mfner_never_stopped(tiny_model_dir, registered, tmp_path, monkeypatch):  # noqa: F811
    source = synthetic_domain("syn-ck-src", 48, 5, text_tells=True, noisy_half=True)
    target = synthetic_domain("syn-ck-tgt", 24, 6, text_tells=True, noisy_half=True)
    train = sample_episodes(source, 1, 0, None, "train").materialize(source)
    tests = sample_episodes(target, 1, 0, None, "test").materialize(target)[:4]
    monkeypatch.setattr("fewshot_ner.trainer.CHECKPOINT_EVERY_S", 0.0)

    def fit(checkpoint=None, stop_after: int | None = None) -> MFNER:
        torch.manual_seed(0)
        ctx = RunContext(encoder=str(tiny_model_dir), progress=False, checkpoint=checkpoint)
        method = MFNER(ctx, passes=2, min_steps=0, encoder_dropout=True)
        if stop_after is not None:
            real, calls = method.model.loss, [0]

            def loss(episode):
                if calls[0] == stop_after:
                    raise Stop
                calls[0] += 1
                return real(episode)

            method.model.loss = loss
        method.fit([SourceTask(source, train)])
        method.prepare(target)
        return method

    whole = fit()
    path = tmp_path / "mfner.pt"
    with pytest.raises(Stop):
        fit(path, stop_after=len(train) + 5)  # inside the second pass
    resumed = fit(path)
    assert resumed.fit_report()["resumed_at_step"] > 0
    for ep in tests:
        assert resumed.predict(ep.for_prediction()) == whole.predict(ep.for_prediction())
    pairs = zip(whole.model.parameters(), resumed.model.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    pairs = zip(whole.encoder.parameters(), resumed.encoder.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def _protonet_suite(name: str, domains, passes: int, max_episodes: int, train_episodes: int):
    """A one-row suite (ProtoNet, 1 shot, seed 0) over the small domains, for a cell's checkpoint to act on."""
    from bench.suites import MethodSpec, Suite

    spec = MethodSpec("ProtoNet", "protonet", {"passes": passes, "min_steps": 0})
    return Suite(
        name=name,
        description="test suite",
        methods=(spec,),
        domains=tuple(domains),
        shots=(1,),
        seeds=(0,),
        max_episodes=max_episodes,
        train_episodes=train_episodes,
    )


def test_a_cell_cut_short_resumes_says_so_and_scores_as_one_never_stopped(
    small_domains, tiny_model_dir, tmp_path, monkeypatch
):
    from baselines.protonet import ProtoNet
    from bench.runner import RunOptions, plan_suite, run_suite

    monkeypatch.delenv("MFNER_SNAP_DIR", raising=False)
    monkeypatch.setattr("fewshot_ner.trainer.CHECKPOINT_EVERY_S", 0.0)
    mini = _protonet_suite("mini-ck", small_domains, passes=2, max_episodes=4, train_episodes=12)

    def run(folder, stop_after: int | None = None) -> dict:
        opts = RunOptions(
            results_dir=tmp_path / folder, encoder=str(tiny_model_dir), progress=False, only_targets=(small_domains[0],)
        )
        real, calls = ProtoNet.loss, [0]

        def loss(self, episode):
            if stop_after is not None and calls[0] == stop_after:
                raise Stop
            calls[0] += 1
            return real(self, episode)

        monkeypatch.setattr(ProtoNet, "loss", loss)
        try:
            (path, *_) = sorted(run_suite(mini, opts))
        finally:
            monkeypatch.setattr(ProtoNet, "loss", real)
            logs.append(opts.log)
        return json.loads(path.read_text())

    logs: list[list[str]] = []

    whole = run("whole")
    with pytest.raises(Stop):
        run("cut", stop_after=15)  # the first cell's second pass
    opts = RunOptions(
        results_dir=tmp_path / "cut", encoder=str(tiny_model_dir), progress=False, only_targets=(small_domains[0],)
    )
    (planned,) = plan_suite(mini, opts)
    assert planned["state"].startswith("todo, resumes from its checkpoint of ")
    resumed = run("cut")
    assert resumed["resumed"]["at_step"] > 0 and resumed["resumed"]["git"]["commit"]
    earlier = resumed["resumed"]["earlier_train_s"]
    assert (
        earlier > 0 and resumed["wall_s"] >= earlier and resumed["fit_s"] >= earlier
    )  # its seconds count the cut part
    assert "resumed" not in whole
    assert any(line.endswith("seed=0: resumes from its checkpoint") for line in logs[-1])
    assert not any("resumes" in line for line in logs[0])
    assert resumed["f1_per_episode"] == whole["f1_per_episode"] and resumed["predictions"] == whole["predictions"]
    assert not list((Path(os.environ["MFNER_CACHE"]) / "checkpoints").glob("*.pt"))  # removed once the record is out


def test_the_report_names_the_records_that_resumed(tmp_path):
    from bench.records import load_records
    from bench.report import _resumed_note

    folder = tmp_path / "s" / "A"
    folder.mkdir(parents=True)
    base = {"label": "A", "method": "m", "target": "twitter2017", "k": 1, "seed": 0, "f1": 1.0, "f1_per_episode": [1.0]}
    (folder / "twitter2017-k1-s0.json").write_text(json.dumps(base))
    resumed = base | {"seed": 1, "resumed": {"at_step": 40, "began": "2026-12-05T23:00:00+00:00", "git": {}}}
    (folder / "twitter2017-k1-s1.json").write_text(json.dumps(resumed))
    rows = load_records(tmp_path, "s")
    assert rows.resumed.tolist() == [False, True]
    note = _resumed_note(rows)
    assert note.startswith("1 of 2 records resumed") and "A (1)" in note
    assert _resumed_note(rows[~rows.resumed]) == ""


def test_a_checkpoint_without_its_training_seconds_resumes_and_its_record_gives_no_times(tmp_path):
    from bench.estimate import record_seconds as _record_seconds
    from bench.records import load_records

    cfg = TrainerConfig(passes=2, min_steps=0, episodes_per_step=3)
    path = tmp_path / "loop.pt"
    with pytest.raises(Stop):
        _train(_toy(), cfg, path, stop_after=12)
    saved = torch.load(path, weights_only=True)
    del saved["elapsed"]  # as the first checkpoints were written
    torch.save(saved, path)
    report = _train(_toy(), cfg, path)
    assert report["resumed_at_step"] == 4 and "earlier_train_s" not in report
    folder = tmp_path / "res" / "s" / "A"
    folder.mkdir(parents=True)
    base = {"label": "A", "method": "m", "target": "t", "k": 1, "seed": 0, "f1": 1.0, "f1_per_episode": [1.0]}
    base |= {"wall_s": 155.0, "fit_s": 92.0, "cpu_s": 150.0}
    partial = base | {"seed": 1, "resumed": {"at_step": 182, "earlier_train_s": None}}
    whole = base | {"seed": 2, "resumed": {"at_step": 182, "earlier_train_s": 900.0}}
    for record in (base, partial, whole):
        (folder / f"t-k1-s{record['seed']}.json").write_text(json.dumps(record))
    rows = load_records(tmp_path / "res", "s").sort_values("seed")
    assert rows.wall_s.isna().tolist() == [False, True, False]  # its seconds leave out the cut process's training
    assert _record_seconds(folder / "t-k1-s1.json") is None and _record_seconds(folder / "t-k1-s2.json") == 155.0


def test_the_cost_table_gives_no_seconds_for_a_row_whose_records_have_none():
    import pandas as pd

    from bench.report import cost_table

    rows = pd.DataFrame(
        {
            "label": ["A", "A", "B"],
            "k": [1, 1, 1],
            "target": ["twitter2015"] * 3,
            "wall_s": [100.0, 300.0, None],  # B resumed from a checkpoint that did not carry its training seconds
            "fit_s": [90.0, 280.0, None],
            "predict_s": [10.0, 20.0, None],
            "peak_rss_mb": [1024.0, 2048.0, 1024.0],
            "threads": [1, 1, 1],
        }
    )
    table = cost_table(rows).set_index("method")
    assert table.loc["A", "wall s (median)"] == 200 and table.loc["A", "wall s (max)"] == 300
    assert table.loc["B", "wall s (median)"] == "-" and table.loc["B", "cells"] == 1


def test_a_cell_whose_checkpoint_is_set_aside_is_not_called_resumed(
    small_domains, tiny_model_dir, tmp_path, monkeypatch
):
    from bench.runner import RunOptions, plan_suite, run_suite

    monkeypatch.delenv("MFNER_SNAP_DIR", raising=False)
    mini = _protonet_suite("mini-ck2", small_domains, passes=1, max_episodes=2, train_episodes=4)
    opts = RunOptions(
        results_dir=tmp_path, encoder=str(tiny_model_dir), progress=False, only_targets=(small_domains[0],)
    )
    (planned,) = plan_suite(mini, opts)
    checkpoint = planned["plan"].checkpoint(opts)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_bytes(b"not a checkpoint")  # and beside it the note of the process that began the cell
    checkpoint.with_suffix(".json").write_text(json.dumps({"began": "2026-12-05T00:00:00+00:00", "git": {}}))
    with pytest.warns(UserWarning, match="ignored and removed, training starts afresh"):
        (path,) = run_suite(mini, opts)
    record = json.loads(path.read_text())
    assert "resumed" not in record and "resumed_at_step" not in record["fit_report"]
    assert not checkpoint.exists() and not checkpoint.with_suffix(".json").exists()


@pytest.mark.parametrize("protocol", ["transfer", "fulldata"])
def test_bert_crf_source_training_cut_short_resumes_to_the_same_weights(
    tiny_model_dir, tmp_path, monkeypatch, protocol
):
    """BERT+CRF's supervised passes (source training, the full-data ceiling) resume as the episodic trainer does:
    the batch order still to come, both random streams and (full data) the best pass so far on valid come back."""
    from baselines.bert_crf import BertCRF
    from fewshot_ner.conformance import tiny_domain

    monkeypatch.setattr("fewshot_ner.trainer.CHECKPOINT_EVERY_S", 0.0)
    if protocol == "transfer":
        sources = [SourceTask(tiny_domain("ck-src", 40, 21), [])]
    else:
        sources = [SourceTask(tiny_domain("ck-train", 40, 22), []), SourceTask(tiny_domain("ck-valid", 12, 23), [])]
    steps_per_pass = 3  # 40 sentences, batches of 16

    def fit(cache: str, checkpoint=None, stop_after: int | None = None) -> BertCRF:
        monkeypatch.setenv("MFNER_CACHE", str(tmp_path / cache))  # each fit trains: no cached source weights
        torch.manual_seed(0)
        ctx = RunContext(seed=5, encoder=str(tiny_model_dir), progress=False, checkpoint=checkpoint)
        method = BertCRF(
            ctx,
            protocol=protocol,
            steps=0,
            transfer_epochs=3,
            fulldata_epochs=3,
            transfer_encoder_lr=1e-2,
            input="text",
        )
        real, calls = method.batch_loss, [0]

        def loss(*args):
            if stop_after is not None and calls[0] == stop_after:
                raise Stop
            calls[0] += 1
            return real(*args)

        method.batch_loss = loss  # type: ignore[method-assign]
        method.fit(sources)
        return method

    whole = fit("whole")
    path = tmp_path / "cell.pt"
    with pytest.raises(Stop):  # in the second pass: its first step done, the first pass scored on valid
        fit("cut", path, stop_after=steps_per_pass + 1)
    assert path.is_file()
    resumed = fit("resumed", path)
    report = resumed.fit_report()
    assert report["resumed_at_step"] == steps_per_pass + 1 and report["earlier_train_s"] >= 0
    assert "resumed_at_step" not in whole.fit_report()
    for a, b in ((whole.encoder, resumed.encoder), (whole.source_head, resumed.source_head)):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    if protocol == "fulldata":
        assert len(report["valid_f1_per_epoch"]) == 3
        assert report["valid_f1_per_epoch"] == whole.fit_report()["valid_f1_per_epoch"]
        assert report["epochs_kept"] == whole.fit_report()["epochs_kept"]
    else:  # the weights it leaves for the seed's other cells: a cell that loads them resumed nothing
        (cached,) = (tmp_path / "resumed" / "transfer").glob("*.pt")
        saved = json.loads(torch.load(cached, weights_only=True)["report"])
        assert "resumed_at_step" not in saved and saved["transfer_steps"] == 3 * steps_per_pass
        loaded = fit("resumed")
        assert "resumed_at_step" not in loaded.fit_report() and "loaded_from_cache" in loaded.fit_report()

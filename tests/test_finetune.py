"""BERT+CRF and ITA: restore, fitting a support, the alignment term, image-text words, determinism."""

from __future__ import annotations

import pytest
import torch

from baselines.bert_crf import BertCRF, TagHead
from baselines.ita import ITA, alignment_kl, soft_marginals
from fewshot_ner.episodes import TestEpisode, sample_episodes
from fewshot_ner.features import Padded
from fewshot_ner.labels import canonical_label
from fewshot_ner.method import RunContext, SourceTask
from fewshot_ner.metrics import episode_f1
from tests.test_conformance import tiny_domain


def test_restore_leaves_every_parameter_bit_identical(tiny_model_dir):
    method = BertCRF(
        RunContext(encoder=str(tiny_model_dir), progress=False), steps=3, encoder_lr=1e-2, train_layers=None
    )
    target = tiny_domain("ft-tgt", 20, 3)
    method.prepare(target)
    before = {k: v.clone() for k, v in method.encoder.state_dict().items()}
    ep = sample_episodes(target, 1, 0, 2).materialize(target)[0]
    method.predict(ep.for_prediction())
    after = method.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_bert_crf_fits_its_own_support(tiny_model_dir):
    target = tiny_domain("ft-fit", 20, 4)
    method = BertCRF(
        RunContext(encoder=str(tiny_model_dir), progress=False), steps=60, encoder_lr=1e-3, head_lr=5e-2, input="text"
    )
    method.prepare(target)
    ep = sample_episodes(target, 1, 0, 2).materialize(target)[0]
    as_query = TestEpisode(0, ep.support, tuple(s.untagged() for s in ep.support), ep.types)
    assert episode_f1([s.tags for s in ep.support], method.predict(as_query)) == pytest.approx(100.0)


def test_kl_is_zero_for_equal_views_and_reaches_only_the_student():
    torch.manual_seed(0)
    head = TagHead(4, 3)
    mask = torch.ones(2, 5, dtype=torch.bool)
    words = Padded(torch.randn(2, 5, 4), mask)
    same = soft_marginals(head, words, 2.0)
    assert alignment_kl(same, same, mask).abs().item() < 1e-6
    teacher_in = torch.randn(2, 5, 4, requires_grad=True)
    student_in = torch.randn(2, 5, 4, requires_grad=True)
    teacher = soft_marginals(head, Padded(teacher_in, mask), 2.0)
    student = soft_marginals(head, Padded(student_in, mask), 2.0)
    kl = alignment_kl(teacher, student, mask)
    assert kl.item() > 0
    kl.backward()
    assert teacher_in.grad is None and student_in.grad is not None and student_in.grad.abs().sum() > 0


def test_image_text_words_are_never_scored(tiny_model_dir):
    """The text+image view gives vectors, tags and CRF positions to the tweet's words only."""
    method = BertCRF(RunContext(encoder=str(tiny_model_dir), progress=False))
    target = tiny_domain("ft-img", 10, 5)
    sents = list(target.sentences[:3])
    words = method.features(sents, "text+image")
    assert words.mask.sum(1).tolist() == [len(s.tokens) for s in sents]


def test_one_seed_gives_the_same_tags_in_any_episode_order(tiny_model_dir):
    target = tiny_domain("ft-det", 30, 6)
    eps = [e.for_prediction() for e in sample_episodes(target, 1, 0, 3).materialize(target)]

    def tags(order):
        torch.manual_seed(123)  # the global stream must not matter
        method = ITA(RunContext(seed=7, encoder=str(tiny_model_dir), progress=False), steps=3)
        method.prepare(target)
        return {i: method.predict(eps[i]) for i in order}

    assert tags([0, 1, 2]) == tags([2, 0, 1])


def test_transfer_trains_one_head_for_both_catch_all_names(tiny_model_dir):
    assert (
        canonical_label("B-OTHER") == "B-MISC" and canonical_label("I-MISC") == "I-MISC" and canonical_label("O") == "O"
    )
    source, target = tiny_domain("ft-src", 20, 7), tiny_domain("ft-tgt2", 20, 8)
    method = BertCRF(
        RunContext(encoder=str(tiny_model_dir), progress=False), protocol="transfer", steps=0, transfer_epochs=1
    )
    method.fit([SourceTask(source, [])])
    assert method.fit_report()["transfer_steps"] == 2  # 20 sentences in batches of 16
    method.prepare(target)
    ep = sample_episodes(target, 1, 0, 2).materialize(target)[0]
    pred = method.predict(ep.for_prediction())
    assert [len(p) for p in pred] == [len(s.tokens) for s in ep.query]
    with pytest.raises(ValueError, match="protocol must be support, transfer or fulldata"):
        BertCRF.check_options({"protocol": "full"})


def test_fulldata_trains_on_train_picks_the_epoch_on_valid_and_scores_test(
    suite, tiny_model_dir, tmp_path, monkeypatch
):
    import json
    from dataclasses import replace

    from bench import paper
    from bench.report import published_table, suite_table
    from bench.report import suite_records as suite_records_of
    from bench.runner import RunOptions, run_suite
    from bench.suites import MethodSpec

    full = replace(
        suite,
        methods=(
            MethodSpec(
                "full",
                "bert-crf",
                {"protocol": "fulldata", "fulldata_epochs": 2, "input": "text", "transfer_max_sentences": 40},
            ),
        ),
        shots=(0,),
        seeds=(0,),
        protocol="fulldata",
    )
    opts = RunOptions(results_dir=tmp_path, encoder=str(tiny_model_dir), progress=False, only_targets=("mini17",))
    (path,) = run_suite(full, opts)
    record = json.loads(path.read_text())
    assert record["target"] == "mini17-test" and record["sources"] == ["mini17-train", "mini17-valid"]
    assert record["n_episodes"] == 1 and len(record["predictions"][0]) == 150  # the whole test split
    report = record["fit_report"]
    assert len(report["valid_f1_per_epoch"]) == 2 and report["epochs_kept"] in (1, 2)
    assert report["train_sentences"] == 40  # the first 40 of the train split (--quick caps it so)
    from bench.report import write_report

    text = write_report(full, tmp_path, tmp_path / "reports").read_text()
    assert "its whole test split at once" in text and "Test episodes per target" not in text
    table = suite_table(full, tmp_path)
    assert table["mini17-test"].iloc[0].endswith("(n=1)")
    monkeypatch.setattr(paper, "FULLDATA_PUBLISHED", {"Big": {"mini17": 90.0}})
    beside = published_table(full, suite_records_of(full, tmp_path))
    ours = record["f1"]
    assert beside["row"].tolist() == [f"{record['label']} (ours)", "Big (published)"]
    assert beside.iloc[0, 1] == f"{ours:.2f} (n=1)"
    assert beside.iloc[1, 1] == f"90.00 (ours best {ours - 90.0:+.2f})"


def test_transfer_weights_are_cached_and_reloaded_bit_for_bit(tiny_model_dir):
    """A second cell of the same seed (another K) loads the source training instead of repeating it."""
    source, target = tiny_domain("ft-cache-src", 20, 9), tiny_domain("ft-cache-tgt", 20, 10)
    ep = sample_episodes(target, 1, 0, 2).materialize(target)[0].for_prediction()

    def run(seed: int) -> tuple[BertCRF, list[list[str]]]:
        ctx = RunContext(seed=seed, encoder=str(tiny_model_dir), progress=False)
        method = BertCRF(ctx, protocol="transfer", steps=0, transfer_epochs=2, transfer_encoder_lr=1e-2)
        method.fit([SourceTask(source, [])])
        method.prepare(target)
        return method, method.predict(ep)

    first, tags = run(3)
    again, tags_again = run(3)
    other, _ = run(4)
    assert "loaded_from_cache" not in first.fit_report()
    assert again.fit_report()["loaded_from_cache"].endswith(".pt")
    assert again.fit_report()["transfer_steps"] == first.fit_report()["transfer_steps"] == 4
    assert "loaded_from_cache" not in other.fit_report()  # another seed trains anew
    for mine, theirs in ((first.encoder, again.encoder), (first.source_head, again.source_head)):
        a, b = mine.state_dict(), theirs.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    trained = first.encoder.state_dict()
    assert any(not torch.equal(trained[k], v) for k, v in other.encoder.state_dict().items())
    assert tags == tags_again


def test_ita_source_training_takes_the_source_domains_temperature(tiny_model_dir):
    source, target = tiny_domain("twitter2015", 20, 11), tiny_domain("twitter2017", 20, 12)
    method = ITA(RunContext(encoder=str(tiny_model_dir), progress=False), protocol="transfer", steps=0)
    method.fit([SourceTask(source, [])])
    assert method.fit_report()["fit_temperature"] == 4.0
    method.prepare(target)
    assert method.temperature == 2.0 and method.config()["temperature"] == 2.0  # per-episode steps: the target's
    method.prepare(tiny_domain("twitter2015-valid", 20, 14))
    assert method.temperature == 4.0  # a split of Twitter-2015 (the dev protocol's target) is Twitter-2015


def test_checks_between_passes_leave_training_as_one_uninterrupted_run(tiny_model_dir):
    """The full-data protocol checks valid F1 after every pass inside one run of steps (one optimizer throughout):
    the checks (eval mode, decoding) change no weight the run ends with."""
    sentences = list(tiny_domain("ft-passes", 12, 13).sentences)
    labels = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC")

    def train(every: int) -> tuple[dict[str, torch.Tensor], int]:
        method = BertCRF(RunContext(encoder=str(tiny_model_dir), progress=False), input="text")
        head = TagHead(method.encoder.hidden_size, len(labels), torch.Generator().manual_seed(0))
        checks = []
        method._steps(
            head,
            sentences,
            labels,
            6,
            4,
            (1e-2, 1e-2),
            torch.Generator().manual_seed(1),
            every=every,
            after=lambda: checks.append(method._decode(head, sentences[:3], labels)),
        )
        return method.encoder.state_dict() | {f"head.{k}": v for k, v in head.state_dict().items()}, len(checks)

    (plain, none), (checked, n_checks) = train(0), train(3)
    assert none == 0 and n_checks == 2
    assert all(torch.equal(plain[k], checked[k]) for k in plain)


def test_the_published_comparison_takes_the_best_row_among_those_with_the_most_seeds(monkeypatch):
    """A row run on one seed so far (85) does not stand for the ceiling beside rows of three (80, 78)."""
    import pandas as pd

    from bench import paper
    from bench.report import published_table
    from bench.suites import SUITES

    def rows_of(label: str, f1s: list[float]) -> list[dict]:
        return [dict(label=label, k=0, target="twitter2017-test", seed=s, f1=f) for s, f in enumerate(f1s)]

    rows = pd.DataFrame(rows_of("A", [80.0, 79.0, 81.0]) + rows_of("B", [78.0] * 3) + rows_of("C", [85.0]))
    monkeypatch.setattr(paper, "FULLDATA_PUBLISHED", {"Big": {"twitter2017": 90.0}})
    beside = published_table(SUITES.get("fulldata"), rows)
    assert beside.set_index("row").loc["Big (published)", "T17"] == "90.00 (ours best -10.00)"

"""CONTaiNER: the Gaussian distance against torch.distributions' closed form, the contrastive loss against
its definition word by word, the powered transitions by hand, the support steps' stopping rule, and the
source training cached and shared across its decoding options."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from baselines.container import Container, contrastive_loss, gaussian_distance, io_ids, label_types
from baselines.nnshot import abstract_counts, abstract_transitions
from fewshot_ner.episodes import sample_episodes
from fewshot_ner.method import RunContext, SourceTask
from tests.test_conformance import tiny_domain


def test_gaussian_distance_is_the_symmetric_kl_of_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    mu_a, mu_b = torch.randn(4, 6, generator=gen), torch.randn(3, 6, generator=gen)
    var_a, var_b = torch.rand(4, 6, generator=gen) + 0.2, torch.rand(3, 6, generator=gen) + 0.2
    got = gaussian_distance(mu_a, var_a, mu_b, var_b)
    for i in range(4):
        for j in range(3):
            a = Independent(Normal(mu_a[i], var_a[i].sqrt()), 1)
            b = Independent(Normal(mu_b[j], var_b[j].sqrt()), 1)
            want = 0.5 * (kl_divergence(a, b) + kl_divergence(b, a))
            assert got[i, j].item() == pytest.approx(want.item(), rel=1e-5, abs=1e-5)
    assert gaussian_distance(mu_a, var_a, mu_a, var_a).diagonal().abs().max().item() < 1e-5  # d(p, p) = 0


def test_contrastive_loss_equals_its_definition_anchor_by_anchor():
    gen = torch.Generator().manual_seed(1)
    dist = torch.rand(6, 6, generator=gen) * 3
    ids = torch.tensor([0, 1, 1, 2, 0, 0])  # class 2 has one word: never an anchor
    anchors = torch.tensor([False, True, True, True, True, True])
    terms = []
    for p in range(6):
        same = [q for q in range(6) if q != p and ids[q] == ids[p]]
        if not anchors[p] or not same:
            continue
        num = sum(math.exp(-dist[p, q]) for q in same) / len(same)
        den = sum(math.exp(-dist[p, q]) for q in range(6) if q != p)
        terms.append(-math.log(num / den))
    assert contrastive_loss(dist, ids, anchors).item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)
    none = contrastive_loss(dist.requires_grad_(), ids, torch.zeros(6, dtype=torch.bool))
    assert none.item() == 0.0 and none.requires_grad  # a batch without anchors still backpropagates


def test_io_classes_merge_begin_and_inside():
    labels = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
    assert label_types(labels) == ("PER", "LOC")
    assert io_ids(["B-LOC", "I-LOC", "O", "B-PER", "I-PER"], ("PER", "LOC")) == [2, 2, 0, 1, 1]


def test_powered_transitions_are_each_row_raised_and_normalised():
    counts = abstract_counts([["I-PER", "I-PER", "O", "O", "O", "I-LOC"], ["O", "I-LOC", "O"]])
    labels = ("O", "I-PER", "I-LOC")
    plain, plain_start = abstract_transitions(counts, labels)
    powered, start = abstract_transitions(counts, labels, power=0.5)
    for row, prow in ((plain[i], powered[i]) for i in range(3)):
        want = row.exp() ** 0.5
        assert prow.exp().tolist() == pytest.approx((want / want.sum()).tolist(), abs=1e-6)
    want = plain_start.exp() ** 0.5
    assert start.exp().tolist() == pytest.approx((want / want.sum()).tolist(), abs=1e-6)
    flat, _ = abstract_transitions(counts, labels, power=1e-6)  # towards uniform where the source has the kind
    assert flat[0].exp().tolist() == pytest.approx([1 / 3] * 3, abs=1e-4)


@pytest.fixture
def trained(tiny_model_dir):
    source, target = tiny_domain("ct-src", 24, 3), tiny_domain("ct-tgt", 24, 4)
    ctx = RunContext(progress=False, encoder=str(tiny_model_dir))
    torch.manual_seed(0)
    method = Container(ctx, transfer_max_sentences=16, support_steps=4)
    method.fit([SourceTask(source)])
    method.prepare(target)
    episode = sample_episodes(target, 1, 0, 1).materialize(target)[0]
    return ctx, source, method, episode


def test_support_steps_stop_at_the_first_rise(trained, monkeypatch):
    _, _, method, episode = trained
    scripted = iter([5.0, 4.0, 3.0, 3.5, 2.0, 1.0])

    def loss(head, words, batch, types, every_word):
        assert every_word  # every support word is an anchor
        return torch.tensor(next(scripted)) + 0.0 * next(head.parameters()).sum()

    monkeypatch.setattr(method, "_loss", loss)
    method.own["support_steps"] = 10
    assert method._support_steps(episode) == [5.0, 4.0, 3.0, 3.5]
    monkeypatch.setattr(method, "_loss", lambda *a, **k: torch.tensor(1.0) + 0.0 * next(a[0].parameters()).sum())
    method.own["support_steps"] = 3
    assert method._support_steps(episode) == [1.0, 1.0, 1.0]  # equal is no rise: the budget ends it


def test_predict_restores_the_source_weights_and_decodes_either_way(trained):
    ctx, source, method, episode = trained
    before = {k: v.clone() for k, v in method.encoder.state_dict().items()}
    head = {k: v.clone() for k, v in method.source_head.state_dict().items()}
    tags = method.predict(episode)
    assert all(
        len(t) == len(s.tokens) and set(t) <= set(episode.labels) for t, s in zip(tags, episode.query, strict=True)
    )
    assert all(torch.equal(before[k], v) for k, v in method.encoder.state_dict().items())
    assert all(torch.equal(head[k], v) for k, v in method.source_head.state_dict().items())
    assert 1 <= method.fit_report()["support_steps_max"] <= 4
    # the decoding options share the source training (one cache file), as the probes rely on
    other = Container(ctx, transfer_max_sentences=16, support_steps=0, decode="gaussian", transition_power=0)
    other.fit([SourceTask(source)])
    assert other.fit_report().get("loaded_from_cache")
    other.prepare(None)
    assert [len(t) for t in other.predict(episode)] == [len(s.tokens) for s in episode.query]


def test_options_out_of_range_fail_with_the_options_name():
    with pytest.raises(ValueError, match="decode must be one of"):
        Container.check_options({"decode": "cosine"})
    with pytest.raises(ValueError, match="support_steps"):
        Container.check_options({"support_steps": -1})
    with pytest.raises(ValueError, match="trains on the source only"):
        Container.check_options({"protocol": "support"})

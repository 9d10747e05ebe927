"""A step's sentences encoded once (``step_tokens``): the same features and the same training as one encoder
call per request, in fewer calls."""

from __future__ import annotations

import random

import pytest
import torch

from bench.methods import METHODS
from fewshot_ner.encoder import VIEWS, WordEncoder
from fewshot_ner.episodes import sample_episodes
from fewshot_ner.features import LiveFeatures, length_chunks
from fewshot_ner.method import RunContext, SourceTask
from fewshot_ner.trainer import TrainerConfig, train_episodic


def _count_calls(encoder: WordEncoder) -> list[int]:
    """A list that grows by one per call of the transformer."""
    calls: list[int] = []
    encoder.model.register_forward_pre_hook(lambda _m, _a, _k: calls.append(1), with_kwargs=True)
    return calls


def test_length_chunks_are_the_greedy_runs_within_the_budget():
    rng = random.Random(0)
    for _ in range(300):
        lengths = sorted(rng.randint(1, 40) for _ in range(rng.randint(0, 30)))
        cap = rng.randint(1, 120)
        runs = length_chunks(lengths, cap)
        starts = [a for a, _ in runs]
        assert starts == [0, *(b for _, b in runs[:-1])][: len(runs)]  # consecutive
        assert (runs[-1][1] if runs else 0) == len(lengths)  # and covering
        for a, b in runs:
            assert b > a and (b - a == 1 or (b - a) * lengths[b - 1] <= cap)  # padded size within the budget
            if b < len(lengths):
                assert (b - a + 1) * lengths[b] > cap  # greedy: the next sentence would overflow the run
    with pytest.raises(ValueError, match="ascending"):
        length_chunks([3, 2], 10)


def test_shared_features_equal_one_call_per_request(tiny_model_dir, t17):
    """Every request of a step's episodes is served from the shared encoding, in the shape one call on it has,
    with the values of that call (fp32: to rounding); the encoder runs only while the step is shared."""
    encoder = WordEncoder(str(tiny_model_dir))
    episodes = sample_episodes(t17, 1, 0, None, "train").materialize(t17, 4)
    sentences = [s for ep in episodes for s in (*ep.support, *ep.query)]
    budget = 3 * max(encoder.token_counts(sentences, "text+image"))  # a few sentences a call
    plain, shared = LiveFeatures(encoder), LiveFeatures(encoder, step_tokens=budget)
    calls = _count_calls(encoder)
    shared.share_step(dict.fromkeys(VIEWS, sentences))
    assert 2 < len(calls) < 2 * 2 * len(episodes)  # several length-sorted calls a view, fewer than one per request
    for ep in episodes:
        for part in (list(ep.support), list(ep.query)):
            for view in VIEWS:
                del calls[:]
                got = shared(part, view)
                assert not calls
                want = plain(part, view)
                assert got.vectors.shape == want.vectors.shape and torch.equal(got.mask, want.mask)
                torch.testing.assert_close(got.vectors, want.vectors, rtol=1e-5, atol=1e-6)
    other = [s for s in sample_episodes(t17, 1, 1, None, "train").materialize(t17, 1)[0].query]
    del calls[:]
    shared(other, "text")  # a sentence the step did not share: encoded where it is asked for
    assert len(calls) == 1
    assert shared.finish_step() == [] and not shared._shared  # no gradient was asked for, and the step is over
    with pytest.raises(ValueError, match="step_tokens"):
        LiveFeatures(encoder, -1)


CASES = [
    ("protonet", {"encoder_dropout": False}),
    ("spanner", {"encoder_dropout": False}),  # its type descriptions are shared in the text view too
    ("mfner", {"profile": "fast"}),  # two views, support and query joined, the label names once a step
]


def _method(name: str, options: dict, model_dir, step_tokens: int):
    torch.manual_seed(0)
    budget = {"passes": 1, "min_steps": 0, "episodes_per_step": 4}
    ctx = RunContext(encoder=str(model_dir), progress=False)
    return METHODS.get(name)(ctx, **options, **budget, step_tokens=step_tokens)


@pytest.mark.parametrize(("method", "options"), CASES)
def test_a_shared_step_gives_the_gradients_of_one_call_per_request(tiny_model_dir, t17, method, options):
    """One step of 4 episodes through the trainer's hooks: every encoder gradient equals the per-request one
    (fp32, no dropout: the same function, summed in another order), in fewer encoder calls."""
    episodes = sample_episodes(t17, 1, 0, None, "train").materialize(t17, 4)
    grads, n_calls = {}, {}
    for step_tokens in (0, 1024):
        model = _method(method, options, tiny_model_dir, step_tokens)
        trained = model._param_groups() if method == "mfner" else model.encoder.trainable(None)
        assert trained
        hooks = model.model if method == "mfner" else model
        if method == "mfner":
            model.model.features.add_domain(t17)
            model.model.train()
        calls = _count_calls(model.encoder)
        hooks.share_step(episodes)
        for ep in episodes:
            (model.loss(ep) if method != "mfner" else model.model.loss(ep)).div(4).backward()
        hooks.before_step()
        n_calls[step_tokens] = len(calls)
        grads[step_tokens] = {n: p.grad.clone() for n, p in model.encoder.named_parameters() if p.grad is not None}
    assert n_calls[1024] < n_calls[0] and grads[0].keys() == grads[1024].keys()
    for name, g in grads[0].items():
        if name.endswith("attention.self.key.bias"):
            continue  # softmax ignores a shift shared by a query's scores: 0 up to rounding, either way
        scale = float(g.abs().max())
        torch.testing.assert_close(grads[1024][name], g, rtol=1e-3, atol=1e-4 * scale, msg=name)


@pytest.mark.parametrize(("method", "options"), CASES)
def test_fit_shares_steps_and_records_it(tiny_model_dir, t17, method, options):
    """``fit`` wires the hooks: fewer encoder calls, the record's config says ``step_tokens``, and the trained
    weights move as the per-request ones (Adam's first steps scale a near-zero gradient's rounding up to the
    learning rate, so the updates are compared as wholes)."""
    episodes = sample_episodes(t17, 1, 0, None, "train").materialize(t17, 8)
    moves, n_calls = {}, {}
    for step_tokens in (0, 1024):
        model = _method(method, options, tiny_model_dir, step_tokens)
        before = torch.cat([p.detach().flatten().clone() for p in model.encoder.parameters()])
        calls = _count_calls(model.encoder)
        model.fit([SourceTask(t17, episodes)])
        n_calls[step_tokens] = len(calls)
        moves[step_tokens] = torch.cat([p.detach().flatten() for p in model.encoder.parameters()]) - before
        assert model.config()["step_tokens"] == step_tokens
    assert n_calls[1024] < n_calls[0] and moves[0].norm() > 0
    assert (moves[1024] - moves[0]).norm() < 0.02 * moves[0].norm()
    with pytest.raises(ValueError, match="step_tokens"):
        METHODS.get(method).check_options({**options, "step_tokens": -5})


def test_the_trainer_starts_each_step_with_its_episodes():
    weight = torch.nn.Parameter(torch.zeros(()))
    episodes = list(range(10))
    started: list[list[int]] = []
    ended: list[int] = []
    train_episodic(
        lambda ep: weight * ep,
        episodes,  # type: ignore[arg-type]
        [{"params": [weight], "lr": 0.1}],
        TrainerConfig(passes=1, min_steps=0, episodes_per_step=4),
        "t",
        before_step=lambda: ended.append(len(started)),
        start_step=lambda eps: started.append(list(eps)),
    )
    assert [len(s) for s in started] == [4, 4, 2] and sorted(sum(started, [])) == episodes
    assert ended == [1, 2, 3]  # each step ends before the next one starts

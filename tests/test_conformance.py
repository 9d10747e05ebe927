"""The method contract, checked on every registered method (the habit of sklearn's check_estimator).

Each method runs end to end on a tiny domain with a tiny encoder: it meta-trains on a source,
tags every query of a target's test episodes with valid IOB2 of the right lengths from the
episode's labels, never sees the query's gold tags, and gives the same tags twice for one seed.
A method registered without an entry in TINY_OPTIONS fails here: every method is checked.
"""

from __future__ import annotations

import random

import pytest
from seqeval.scheme import IOB2, Tokens

from bench.methods import METHODS
from fewshot_ner.data import LoadReport, QuerySentence, Sentence
from fewshot_ner.datasets import DatasetSpec, Domain
from fewshot_ner.episodes import TestEpisode, sample_episodes
from fewshot_ner.method import RunContext, SourceTask

# Options that keep each method's run to seconds on the tiny encoder.
TINY_OPTIONS: dict[str, dict] = {
    "mfner": {"profile": "frozen", "passes": 1, "min_steps": 0},
    "proto-frozen": {},
    "protonet": {"passes": 1, "min_steps": 0},
    "wpz": {"passes": 1, "min_steps": 0},
    "lookup": {},
    "spanner": {"passes": 1, "min_steps": 0},
    "bert-crf": {"steps": 2},
    "ita": {"steps": 2},
    "nnshot": {"transfer_max_sentences": 32},
    "structshot": {"transfer_max_sentences": 32},
    "container": {"transfer_max_sentences": 32, "support_steps": 3},
}

WORDS = ["new", "in", "the", "game", "today", "with", "at", "and"]
NAMES = {"PER": ["ann", "bob", "cid"], "LOC": ["rome", "oslo", "lima"]}


def tiny_domain(name: str, n: int = 30, seed: int = 0) -> Domain:
    """Tweets of 4-7 words with one or two entities (PER, LOC), some of two words."""
    rng = random.Random(seed)
    sents = []
    for i in range(n):
        tokens, tags = [], []
        for _ in range(rng.randint(1, 2)):
            tokens += rng.sample(WORDS, 2)
            tags += ["O", "O"]
            etype = rng.choice(["PER", "LOC"])
            words = rng.sample(NAMES[etype], rng.randint(1, 2))
            tokens += words
            tags += [f"B-{etype}"] + [f"I-{etype}"] * (len(words) - 1)
        sents.append(Sentence(f"{name}:train:{i}", tuple(tokens), tuple(tags), str(i), "a photo of people"))
    spec = DatasetSpec(name=name, short=name, types=("PER", "LOC"), caption_file=None)
    return Domain(spec, tuple(sents), {"train": LoadReport()}, f"tiny-{name}-{seed}")


def test_every_registered_method_is_checked():
    assert sorted(METHODS) == sorted(TINY_OPTIONS), "add the new method's tiny options to TINY_OPTIONS"


class NoTags(QuerySentence):
    """What a query sentence is: reading ``tags`` fails loudly (QuerySentence has no such field)."""

    def __getattr__(self, name: str):
        raise AssertionError(f"a method read {name!r} of a test query sentence")


def run_method(name: str, model_dir, source: Domain, target: Domain, seed: int = 0) -> list[list[list[str]]]:
    import torch

    torch.manual_seed(seed)
    random.seed(seed)
    method = METHODS.get(name)(RunContext(seed=seed, encoder=str(model_dir), progress=False), **TINY_OPTIONS[name])
    train = sample_episodes(source, 1, seed, None, "train").materialize(source)
    method.fit([SourceTask(source, train)])
    method.prepare(target)
    out = []
    for ep in sample_episodes(target, 1, seed, 4).materialize(target):
        seen = ep.for_prediction()
        query = tuple(NoTags(q.key, q.tokens, q.image_id, q.image_text) for q in seen.query)
        seen = TestEpisode(seen.index, seen.support, query, seen.types)
        pred = method.predict(seen)
        assert len(pred) == len(ep.query)
        for tags, sent in zip(pred, ep.query, strict=True):
            assert len(tags) == len(sent.tokens)
            assert set(tags) <= set(ep.labels), (set(tags), ep.labels)
            Tokens(list(tags), IOB2)  # seqeval accepts every tag as IOB2 (raises otherwise)
        out.append(pred)
    return out


@pytest.mark.parametrize("name", sorted(TINY_OPTIONS))
def test_method_conforms(name, tiny_model_dir):
    if name not in METHODS:
        pytest.fail(f"{name} is in TINY_OPTIONS but not registered")
    source, target = tiny_domain("tiny-src", seed=1), tiny_domain("tiny-tgt", seed=2)
    first = run_method(name, tiny_model_dir, source, target)
    second = run_method(name, tiny_model_dir, source, target)
    assert first == second  # one seed, one thread count: the same tags


def test_test_episode_hides_query_tags(t17):
    ep = sample_episodes(t17, 1, 0, 2).materialize(t17)[0]
    seen = ep.for_prediction()
    assert all(not hasattr(q, "tags") for q in seen.query)
    assert seen.support == ep.support and [q.tokens for q in seen.query] == [s.tokens for s in ep.query]

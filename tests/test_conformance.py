"""The method contract, checked on every registered method (the habit of sklearn's check_estimator).

Each method runs end to end on a tiny domain with a tiny encoder: it meta-trains on a source,
tags every query of a target's test episodes with valid IOB2 of the right lengths from the
episode's labels, never sees the query's gold tags, and gives the same tags twice for one seed.
A method registered without an entry in TINY_OPTIONS fails here: every method is checked.
"""

from __future__ import annotations

import random

import pytest

from bench.methods import METHODS
from fewshot_ner.conformance import check_method, tiny_domain  # noqa: F401 - tiny_domain: other tests import it here
from fewshot_ner.episodes import sample_episodes

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


def test_every_registered_method_is_checked():
    assert sorted(METHODS) == sorted(TINY_OPTIONS), "add the new method's tiny options to TINY_OPTIONS"


@pytest.mark.parametrize("name", sorted(TINY_OPTIONS))
def test_method_conforms(name, tiny_model_dir):
    if name not in METHODS:
        pytest.fail(f"{name} is in TINY_OPTIONS but not registered")
    check_method(METHODS.get(name), TINY_OPTIONS[name], tiny_model_dir)


def test_check_method_catches_a_method_that_breaks_the_contract(tiny_model_dir):
    from baselines.lookup import Lookup

    class ReadsGold(Lookup):
        def predict(self, episode):
            return [list(q.tags) for q in episode.query]  # a query has no tags: the check must fail

    class TooShort(Lookup):
        def predict(self, episode):
            return [tags[:-1] for tags in super().predict(episode)]

    class NotIOB2(Lookup):
        def predict(self, episode):
            return [["I-" + episode.types[0]] * len(q.tokens) for q in episode.query]

    class OtherLabels(Lookup):
        def predict(self, episode):
            return [["B-NOPE"] * len(q.tokens) for q in episode.query]

    class Random(Lookup):
        def predict(self, episode):
            draw = random.SystemRandom()  # not the seeded stream: another tag each run
            return [[draw.choice(("O", *(f"B-{t}" for t in episode.types))) for _ in q.tokens] for q in episode.query]

    for cls, says in ((ReadsGold, "read 'tags'"), (TooShort, "tags for a sentence"), (OtherLabels, "not in")):
        with pytest.raises(AssertionError, match=says):
            check_method(cls, {}, tiny_model_dir)
    check_method(NotIOB2, {}, tiny_model_dir)  # an orphan I-X is read as a new entity (seqeval's default mode)
    with pytest.raises(AssertionError, match="not IOB2"):
        check_method(NotIOB2, {}, tiny_model_dir, strict_iob2=True)
    with pytest.raises(AssertionError, match="different tags"):
        check_method(Random, {}, tiny_model_dir)


def test_test_episode_hides_query_tags(t17):
    ep = sample_episodes(t17, 1, 0, 2).materialize(t17)[0]
    seen = ep.for_prediction()
    assert all(not hasattr(q, "tags") for q in seen.query)
    assert seen.support == ep.support and [q.tokens for q in seen.query] == [s.tokens for s in ep.query]

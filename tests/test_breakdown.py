"""The rescoring of kept predictions: seen/unseen split, lenient F1 and F1 per type, against known answers."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest

from bench.breakdown import cell_scores, scored_cells, seen_names, sentence_counts, split_counts, type_table
from fewshot_ner.data import Sentence
from fewshot_ner.datasets import load_domain, split_part
from fewshot_ner.episodes import Episode, EpisodeSet, cached_episodes
from fewshot_ner.labels import canonical_type, spans
from fewshot_ner.metrics import encode_tags, episode_f1


def test_split_counts_by_hand():
    seen = frozenset({(("Obama",), "PER"), (("Paris",), "LOC")})
    query = [
        Sentence("t:test:0", ("Obama", "in", "Paris"), ("B-PER", "O", "B-ORG"), "0"),  # Paris as ORG: not seen as ORG
        Sentence("t:test:1", ("Ann", "Lee", "met", "Obama"), ("B-PER", "I-PER", "O", "B-PER"), "1"),
    ]
    predicted = [["B-PER", "O", "B-LOC"], ["B-PER", "O", "O", "B-PER"]]
    counts = split_counts(query, predicted, seen)
    # seen: gold Obama x2 (both found); predicted Obama x2 and Paris/LOC (seen as LOC, but wrong here)
    assert counts["seen"].tolist() == [2, 3, 2]
    # unseen: gold Paris/ORG and Ann Lee (neither found); predicted "Ann" alone
    assert counts["unseen"].tolist() == [0, 1, 2]


TARGET, SOURCES, CAP = "twitter2017", ("twitter2015",), 5


def record(predict: Callable[[tuple[str, ...]], list[str]]) -> tuple[pd.Series, list[Episode]]:
    """A 1-shot record of the first 5 test episodes of Twitter-2017 whose predictions ``predict(gold)`` gives."""
    domain = load_domain(TARGET)
    test = cached_episodes(domain, 1, 0, CAP, "test")
    episodes = test.materialize(domain, CAP)
    preds = [[encode_tags(predict(s.tags), ep.labels) for s in ep.query] for ep in episodes]
    fields = dict(target=TARGET, sources=list(SOURCES), k=1, seed=0, max_episodes=CAP, f1=0.0, label="x")
    return pd.Series(fields | {"predictions": preds, "episodes_sha256": test.sha256}), episodes


def test_perfect_predictions_score_100_everywhere_and_the_seen_share_matches_a_count():
    rec, episodes = record(lambda gold: list(gold))
    scores = cell_scores(rec)
    assert scores["lenient"] == scores["seen"] == scores["unseen"] == 100.0
    names = seen_names(SOURCES)
    gold = [(s.tokens[a:b], canonical_type(t)) for ep in episodes for s in ep.query for a, b, t in spans(s.tags)]
    assert scores["seen_share"] == pytest.approx(100.0 * sum(g in names for g in gold) / len(gold))
    assert scores["predicted_ratio"] == 1.0
    types = {canonical_type(t) for ep in episodes for s in ep.query for _, _, t in spans(s.tags)}
    assert {k.removeprefix("type:") for k in scores if k.startswith("type:")} == types
    assert all(scores[f"type:{t}"] == 100.0 for t in types)


def test_dropping_one_type_zeroes_its_column_only():
    def no_person(gold: tuple[str, ...]) -> list[str]:
        return ["O" if t.endswith("-PER") else t for t in gold]

    rec, _ = record(no_person)
    scores = cell_scores(rec)
    assert scores["type:PER"] == 0.0
    assert all(v == 100.0 for k, v in scores.items() if k.startswith("type:") and k != "type:PER")
    assert 0.0 < scores["seen"] < 100.0 or 0.0 < scores["unseen"] < 100.0
    table = type_table(scored_cells(pd.DataFrame([rec])))
    assert table.loc[0, "PER"] == "0.00" and table.loc[0, "LOC"] == "100.00" and table.loc[0, "target"] == "T17"


def test_predicted_over_gold_counts_every_entity_a_row_predicts():
    """All O: no entity predicted; every gold entity tagged and its first word again as an entity of its own: twice
    as many predicted as gold (a count by hand over the episodes' spans)."""
    assert cell_scores(record(lambda gold: ["O"] * len(gold))[0])["predicted_ratio"] == 0.0

    def twice(gold: tuple[str, ...]) -> list[str]:  # B-X I-X ... becomes B-X B-X ...: the first word, then the rest
        out = list(gold)
        for start, end, etype in spans(gold):
            if end - start > 1:
                out[start + 1] = f"B-{etype}"
        return out

    rec, episodes = record(twice)
    spans_all = [(a, b) for ep in episodes for s in ep.query for a, b, _ in spans(s.tags)]
    predicted = sum(1 if b - a == 1 else 2 for a, b in spans_all)
    assert cell_scores(rec)["predicted_ratio"] == pytest.approx(predicted / len(spans_all))
    table = scored_cells(pd.DataFrame([rec]))
    from bench.breakdown import breakdown_table

    assert breakdown_table(table).loc[0, "predicted / gold"] == f"{predicted / len(spans_all):.2f}"


def test_a_full_data_record_is_rescored_on_its_whole_test_split():
    """K = 0 (the full-data protocol): one episode, the target's test split; seen names come from
    the target's own train and valid splits; the sentence counts sum to the record's seqeval F1."""
    domain = split_part(load_domain(TARGET), "test", "test")
    test = EpisodeSet.whole(domain)
    (episode,) = test.materialize(domain)
    gold = [s.tags for s in episode.query]
    tags = [["O" if t.endswith("-ORG") else t for t in g] for g in gold]
    sources = [f"{TARGET}-train", f"{TARGET}-valid"]
    fields = dict(target=domain.name, sources=sources, k=0, seed=0, max_episodes=200, f1=0.0, label="x")
    rec = pd.Series(
        fields | {"predictions": [[encode_tags(t, episode.labels) for t in tags]], "episodes_sha256": test.sha256}
    )
    counts = sentence_counts(rec)  # (N, 3)
    assert counts.shape == (len(gold), 3)
    tp, pred, n_gold = counts.sum(axis=0)
    assert 200.0 * tp / (pred + n_gold) == pytest.approx(episode_f1(gold, tags))
    scores = cell_scores(rec)
    assert scores["type:ORG"] == 0.0 and scores["type:PER"] == 100.0
    names = seen_names(tuple(sorted(sources)))
    spans_gold = [(s.tokens[a:b], canonical_type(t)) for s in episode.query for a, b, t in spans(s.tags)]
    assert scores["seen_share"] == pytest.approx(100.0 * sum(g in names for g in spans_gold) / len(spans_gold))
    assert sentence_counts(pd.Series(fields | {"predictions": rec.predictions, "episodes_sha256": "another"})) is None

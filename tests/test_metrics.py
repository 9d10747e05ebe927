import math

import pandas as pd
import pytest

from fewshot_ner.metrics import episode_f1, summarize


def test_perfect_and_empty_predictions():
    gold = [["B-PER", "I-PER", "O"], ["B-LOC"]]
    assert episode_f1(gold, gold) == 100.0
    assert episode_f1(gold, [["O", "O", "O"], ["O"]]) == 0.0


def test_strict_spans_known_answer():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    # PER span cut short (wrong), LOC right, one spurious ORG: P = 1/3, R = 1/2, F1 = 0.4
    pred = [["B-PER", "O", "B-ORG", "B-LOC"]]
    assert episode_f1(gold, pred) == pytest.approx(40.0)


def test_orphan_i_in_prediction_is_no_entity_under_strict_iob2():
    assert episode_f1([["B-PER", "I-PER"]], [["I-PER", "I-PER"]]) == 0.0


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="sentence 0: expected 2 tags, got 1"):
        episode_f1([["O", "O"]], [["O"]])


def test_summarize_mean_and_sample_std():
    rows = pd.DataFrame(
        {"label": ["m"] * 3, "k": [1] * 3, "target": ["t"] * 3, "seed": [0, 1, 2], "f1": [1.0, 2.0, 3.0]}
    )
    out = summarize(rows).iloc[0]
    assert (out["mean"], out["std"], out["seeds"]) == (2.0, 1.0, 3)
    single = summarize(rows.iloc[:1]).iloc[0]
    assert math.isnan(single["std"])


def test_type_counts_and_lenient_f1_by_hand():
    from fewshot_ner.metrics import episode_f1, type_counts

    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["B-PER", "I-PER", "O", "I-LOC"]]  # the LOC is an orphan I-LOC: no entity when strict
    assert type_counts(gold, pred) == {"PER": [1, 1, 1], "LOC": [0, 0, 1]}
    assert episode_f1(gold, pred) == pytest.approx(100 * 2 * 1 / (1 + 2))
    assert episode_f1(gold, pred, lenient=True) == pytest.approx(100.0)

"""The claims report: t-intervals over seeds against a hand computation, verdict words, pairing by episodes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.claims import MINILM, claim_line, verdict
from bench.paired import seed_interval


def test_seed_interval_is_the_t_interval_by_hand():
    lo, hi = seed_interval(np.array([1.0, 2.0, 3.0]))
    half = 4.302652729911275 * 1.0 / np.sqrt(3)  # t(0.975, 2 df) x sd / sqrt(n)
    assert (lo, hi) == pytest.approx((2.0 - half, 2.0 + half))
    assert seed_interval(np.array([1.0, 2.0])) is None  # fewer than 3 seeds: no interval over seeds


def test_verdict_words():
    assert verdict((0.1, 2.0), 5) == "holds"
    assert verdict((-2.0, -0.1), 5) == "reversed"
    assert verdict((-1.0, 1.0), 5) == "not detectable"
    assert verdict(None, 2) == "too few seeds (2)"
    assert verdict(None, 0) == "not run"


def _records(label: str, suite: str, f1s: list[float], episodes: str = "e") -> list[dict]:
    return [
        {
            "suite": suite,
            "label": label,
            "target": "twitter2015",
            "k": 1,
            "seed": s,
            "f1": f,
            "episodes_sha256": episodes,
        }
        for s, f in enumerate(f1s)
    ]


def test_claim_line_pairs_seeds_on_the_same_episodes_only():
    rows = pd.DataFrame(
        _records("MFNER", "table3", [50.0, 52.0, 51.0, 49.0])
        + _records("ProtoNet", "table3", [45.0, 46.0, 47.0])
        + [{**_records("ProtoNet", "table3", [0.0])[0], "seed": 3, "episodes_sha256": "other"}]
    )
    text, word = claim_line(rows, MINILM, "MFNER", "ProtoNet", "twitter2015", 1)
    diffs = np.array([5.0, 6.0, 4.0])  # seed 3 scored other episodes: not paired
    lo, hi = seed_interval(diffs)
    assert text == f"+5.00, 3/3 ahead, [{lo:+.2f}, {hi:+.2f}]" and word == "holds"
    assert claim_line(rows, MINILM, "MFNER", "WPZ", "twitter2015", 1) == ("-", "not run")
    text, word = claim_line(rows, MINILM, "MFNER", None, "twitter2015", 1)  # against the paper's 66.79
    assert text.startswith("-16.29, 0/4 reach it") and word == "below the paper's"


def test_size_line_pairs_the_base_row_with_the_minilm_row_on_the_same_episodes():
    from bench.claims import BASE, size_line

    base_label = BASE.rows["ProtoNet"][1]
    rows = pd.DataFrame(
        _records("ProtoNet", "table3", [40.0, 41.0, 42.0, 43.0])
        + _records(base_label, "base", [47.0, 49.0, 48.0])
        + [{**_records(base_label, "base", [0.0])[0], "seed": 3, "episodes_sha256": "other"}]
    )
    text, word = size_line(rows, "ProtoNet", "twitter2015", 1)
    lo, hi = seed_interval(np.array([7.0, 8.0, 6.0]))  # seed 3 of the base row scored other episodes
    assert text == f"+7.00, 3/3 ahead, [{lo:+.2f}, {hi:+.2f}]" and word == "gains"
    assert size_line(rows, "WPZ", "twitter2015", 1) == ("-", "not run")


def test_the_rows_of_the_size_table_are_those_both_sizes_declare_at_their_claims_shots():
    from bench.claims import SHARED_ROWS

    assert SHARED_ROWS["MFNER"] == (1, 5) and SHARED_ROWS["BERT+CRF transfer"] == (1, 5)
    assert SHARED_ROWS["MFNER text only"] == (1,) and SHARED_ROWS["SpanNER text+image"] == (1,)
    assert "ITA" not in SHARED_ROWS  # not run at the base size


def test_changed_verdicts_lists_only_claims_decided_at_both_sizes():
    from bench.claims import BASE, changed_verdicts

    def line(claim: str, small: str, large: str) -> dict:
        return {
            "claim": claim,
            "K": 1,
            "target": "T15",
            MINILM.name: "+1.00",
            f"{MINILM.name}: verdict": small,
            BASE.name: "-1.00",
            f"{BASE.name}: verdict": large,
        }

    table = pd.DataFrame(
        [
            line("a", "not detectable", "reversed"),
            line("b", "holds", "holds"),
            line("c", "holds", "too few seeds (2)"),
            line("d", "holds", "not run"),
            line("e", "below the paper's", "above the paper's"),
        ]
    )
    changed = changed_verdicts(table)
    assert [c.split(",")[0] for c in changed] == ["a", "e"]
    assert changed[0].startswith("a, K=1 T15: not detectable at MiniLM-L6 (fp32) (+1.00), reversed at")

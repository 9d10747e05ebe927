"""Paired differences: known answers, episode-hash guard, and the bootstrap against a normal interval."""

import numpy as np
import pandas as pd

from bench.paired import axis_table, bootstrap_ci, paired_table, signed


def _rec(label: str, seed: int, per_episode: list[float], sha: str = "e", target: str = "twitter2017") -> dict:
    return {
        "label": label,
        "method": "mfner",
        "target": target,
        "k": 1,
        "seed": seed,
        "f1": float(np.mean(per_episode)),
        "f1_per_episode": per_episode,
        "episodes_sha256": f"{sha}{seed}",
    }


def test_constant_gap_is_found_exactly():
    rng = np.random.default_rng(1)
    rows = []
    for seed in range(3):
        ref = rng.uniform(30, 80, size=50)
        rows += [_rec("MFNER", seed, list(ref)), _rec("MFNER text only", seed, list(ref - 2.0))]
    table, notes = paired_table(pd.DataFrame(rows), "MFNER", n_boot=500)
    (row,) = table.to_dict("records")
    assert row["variant"] == "MFNER text only" and row["target"] == "T17" and row["seeds"] == 3
    assert row["MFNER − variant"] == "+2.00 ± 0.00" and row["MFNER ahead"] == "3/3"
    assert row["95% CI (episodes)"] == "[+2.00, +2.00]"  # every resample sees the same gap
    assert row["paper"] == "+1.80"  # 82.58 - 80.78, from the transcribed tables
    assert notes == []


def test_different_episode_files_are_not_paired():
    rows = [
        _rec("MFNER", 0, [50.0, 60.0]),
        _rec("MFNER fixed denoiser", 0, [40.0, 50.0], sha="other"),
        _rec("MFNER", 1, [50.0, 60.0]),
        _rec("MFNER fixed denoiser", 1, [55.0, 65.0]),
    ]
    table, notes = paired_table(pd.DataFrame(rows), "MFNER", n_boot=200)
    assert len(notes) == 1 and "seed 0" in notes[0]
    assert table["seeds"].tolist() == [1] and table["MFNER − variant"].tolist() == ["-5.00"]


def test_no_reference_rows_gives_an_empty_table():
    table, notes = paired_table(pd.DataFrame([_rec("MFNER text only", 0, [1.0])]), "MFNER")
    assert table.empty and notes == []


def test_bootstrap_matches_the_normal_interval_on_many_episodes():
    rng = np.random.default_rng(7)
    d = rng.normal(1.0, 10.0, size=400)
    lo, hi = bootstrap_ci([d], n_boot=4000, seed=3)
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    assert abs((hi - lo) / 2 - half) < 0.1 * half
    assert abs((lo + hi) / 2 - d.mean()) < 0.1 * half
    assert bootstrap_ci([d], n_boot=500, seed=3) == bootstrap_ci([d], n_boot=500, seed=3)  # deterministic


def test_rows_of_another_encoder_pair_with_that_encoders_reference():
    rows = [
        _rec("MFNER", 0, [50.0, 60.0]),
        _rec("MFNER text only", 0, [49.0, 59.0]),
        _rec("MFNER@mpnet-base", 0, [70.0, 70.0]),
        _rec("MFNER text only@mpnet-base", 0, [60.0, 60.0]),
    ]
    table, _ = paired_table(pd.DataFrame(rows), "MFNER", n_boot=100)
    got = dict(zip(table["variant"], table["MFNER − variant"], strict=True))
    assert got == {"MFNER text only": "+1.00", "MFNER text only@mpnet-base": "+10.00"}


def test_encoder_rows_are_paired_with_the_default_encoder_row():
    rng = np.random.default_rng(2)
    rows = []
    for seed in range(2):
        base = rng.uniform(30, 80, size=40)
        rows += [_rec("MFNER", seed, list(base)), _rec("MFNER@mpnet-base", seed, list(base + 3.0 + seed))]
    rows.append(_rec("MFNER@mpnet-base", 2, [70.0], sha="other"))  # no default-encoder twin: not paired
    rows.append(_rec("proto@mpnet-base", 0, [10.0]))  # no "proto" row at all: left out
    table, notes = axis_table(pd.DataFrame(rows), "encoder", n_boot=300)
    (row,) = table.to_dict("records")
    assert (row["row"], row["encoder"], row["target"], row["seeds"]) == ("MFNER", "mpnet-base", "T17", 2)
    assert row["encoder − default"] == "+3.50 ± 0.71" and row["encoder ahead"] == "2/2"
    assert row["95% CI (episodes)"] == "[+3.50, +3.50]"  # each seed's gap is constant over its episodes
    assert notes == []


def test_image_text_rows_pair_with_the_default_source_on_the_same_encoder():
    """A source row pairs with the BLIP-2 row of its own encoder, never with another encoder's."""

    def rec(label: str, row: str, encoder: str, source: str, per_episode: list[float]) -> dict:
        return _rec(label, 0, per_episode) | {"row": row, "encoder": encoder, "image_text": source}

    rows = [
        rec("MFNER", "MFNER", "minilm", "blip2", [50.0, 60.0]),
        rec("MFNER [owl]", "MFNER", "minilm", "owl", [52.0, 61.0]),
        rec("MFNER@mpnet-base", "MFNER", "mpnet-base", "blip2", [70.0, 70.0]),
        rec("MFNER@mpnet-base [none]", "MFNER", "mpnet-base", "none", [60.0, 64.0]),
        rec("MFNER [file:x.txt]", "MFNER", "minilm", "/data/x.txt", [40.0, 40.0]),
    ]
    table, notes = axis_table(pd.DataFrame(rows), "image_text", n_boot=50)
    got = {(r["source"], r["row"]): r["source − default"] for r in table.to_dict("records")}
    assert got == {("owl", "MFNER"): "+1.50", ("none", "MFNER"): "-8.00", ("file:x.txt", "MFNER"): "-15.00"}
    encoders, _ = axis_table(pd.DataFrame(rows), "encoder", n_boot=50)
    assert encoders["encoder − default"].tolist() == ["+15.00"]  # mpnet-base blip2 vs minilm blip2 only
    assert notes == []


def test_encoder_rows_on_other_episodes_are_named_not_paired():
    rows = [_rec("MFNER", 0, [50.0, 60.0]), _rec("MFNER@mpnet-base", 0, [60.0, 70.0], sha="other")]
    table, notes = axis_table(pd.DataFrame(rows), "encoder")
    assert table.empty
    assert notes == ["MFNER@mpnet-base and MFNER, T17 K=1 seed 0: different episodes, not paired"]


def test_signed_keeps_the_sign_and_never_writes_minus_zero():
    assert [signed(x) for x in (1.234, -0.5, -0.004, 0.004, 0.0, -0.005001)] == [
        "+1.23",
        "-0.50",
        "0.00",
        "0.00",
        "0.00",
        "-0.01",
    ]

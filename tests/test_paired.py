"""Paired differences: known answers, episode-hash guard, and the bootstrap against a normal interval."""

import numpy as np
import pandas as pd
import pytest

from bench.breakdown import micro_f1
from bench.paired import axis_table, bootstrap_ci, declared_table, paired_table, sentence_bootstrap_ci, signed
from fewshot_ner.datasets import load_domain, split_part
from fewshot_ner.episodes import EpisodeSet
from fewshot_ner.metrics import encode_tags, episode_f1


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
    assert row["95% CI (episodes only)"] == "[+2.00, +2.00]"  # every resample sees the same gap
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
    assert row["95% CI (episodes only)"] == "[+3.50, +3.50]"  # each seed's gap is constant over its episodes
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


def test_sentence_bootstrap_known_answers():
    right = np.tile([1, 1, 1], (30, 1))  # (N, 3): every sentence's one entity found
    wrong = np.tile([0, 1, 1], (30, 1))  # one predicted, one gold, no match
    assert sentence_bootstrap_ci([(right, wrong)], n_boot=200) == (100.0, 100.0)
    assert sentence_bootstrap_ci([(right, right), (wrong, wrong)], n_boot=200) == (0.0, 0.0)
    assert micro_f1(np.array([[2, 3, 5], [0, 0, 0]])).tolist() == [50.0, 0.0]


def test_sentence_bootstrap_matches_a_brute_force_resampling():
    """The multinomial-weights form against explicit index resampling with its own generator:
    two Monte-Carlo estimates of one interval, so they agree to within their noise."""
    rng = np.random.default_rng(5)
    gold = rng.integers(0, 3, size=300)  # (N,)
    a = np.stack([rng.binomial(gold, 0.8), gold + rng.integers(0, 2, size=300), gold], axis=1)  # (N, 3)
    b = np.stack([rng.binomial(gold, 0.6), gold, gold], axis=1)
    lo, hi = sentence_bootstrap_ci([(a, b)], n_boot=4000, seed=1)
    idx = np.random.default_rng(2).integers(0, 300, size=(4000, 300))  # (n_boot, N)
    brute = micro_f1(a[idx].sum(axis=1)) - micro_f1(b[idx].sum(axis=1))  # (n_boot,)
    blo, bhi = np.quantile(brute, [0.025, 0.975])
    assert abs(lo - blo) < 0.15 * (bhi - blo) and abs(hi - bhi) < 0.15 * (bhi - blo)
    assert lo < micro_f1(a.sum(0)) - micro_f1(b.sum(0)) < hi


def test_full_data_pairs_resample_the_test_sentences():
    """Full-data records are one episode each: the interval comes from their kept predictions,
    sentence by sentence, not from one episode (which would give a zero-width interval)."""
    domain = split_part(load_domain("twitter2017"), "test", "test")
    test = EpisodeSet.whole(domain)
    (episode,) = test.materialize(domain)
    gold = [s.tags for s in episode.query]

    def rec(label: str, seed: int, drop: str) -> dict:
        tags = [["O" if t.endswith(drop) else t for t in g] for g in gold]
        f1 = episode_f1(gold, tags)
        return {
            "label": label,
            "method": "bert-crf",
            "target": domain.name,
            "sources": ["twitter2017-train", "twitter2017-valid"],
            "k": 0,
            "seed": seed,
            "max_episodes": 200,
            "n_episodes": 1,
            "f1": f1,
            "f1_per_episode": [f1],
            "episodes_sha256": test.sha256,
            "predictions": [[encode_tags(t, episode.labels) for t in tags]],
        }

    rows = [rec("A", s, "-MISC") for s in (0, 1)] + [rec("B", s, "-LOC") for s in (0, 1)]
    table, notes = declared_table(pd.DataFrame(rows), (("A", "B"),), n_boot=300)
    (row,) = table.to_dict("records")
    gap = rows[0]["f1"] - rows[2]["f1"]
    assert row["A − B"] == f"{signed(gap)} ± 0.00" and notes == []
    lo, hi = (float(x) for x in row["95% CI (sentences only)"].strip("[]").split(", "))
    assert lo < gap < hi and hi - lo > 0.5


def _simulated_coverage(n_seeds: int, reps: int, seed_sd: float, episode_sd: float, n_boot: int) -> tuple[float, float]:
    """Coverage of the true difference by the interval over seeds and by the episode-only bootstrap."""
    from bench.paired import bootstrap_ci, seed_interval

    rng = np.random.default_rng(7)
    truth, episodes = 1.5, 60
    hit_seeds = hit_episodes = 0
    for _ in range(reps):
        # per seed: a training effect shared by its episodes, plus episode noise around it
        deltas = [truth + rng.normal(0, seed_sd) + rng.normal(0, episode_sd, episodes) for _ in range(n_seeds)]
        lo, hi = seed_interval(np.array([d.mean() for d in deltas]))
        hit_seeds += lo <= truth <= hi
        if n_boot:
            lo, hi = bootstrap_ci(deltas, n_boot=n_boot, seed=int(rng.integers(1 << 30)))
            hit_episodes += lo <= truth <= hi
    return hit_seeds / reps, hit_episodes / reps


@pytest.mark.parametrize("n_seeds", [3, 5, 10])
def test_interval_over_seeds_covers_the_truth_at_its_level(n_seeds):
    """2000 simulated grids (seed sd 2, episode sd 15 over 60 episodes): the t-interval over the per-seed
    paired means covers the true difference in 95% +- 1.5% of them, at 3, 5 and 10 seeds."""
    covered, _ = _simulated_coverage(n_seeds, 2000, seed_sd=2.0, episode_sd=15.0, n_boot=0)
    assert 0.935 <= covered <= 0.965, covered


def test_episode_only_bootstrap_undercovers_when_seeds_vary():
    """Where training seeds move F1 more than the episode draw does, an interval over episodes alone is too
    narrow: 300 simulated 5-seed grids, seed sd 3, episode sd 5: the seed interval ~95%, the episode one far less."""
    covered, episodes_only = _simulated_coverage(5, 300, seed_sd=3.0, episode_sd=5.0, n_boot=400)
    assert covered >= 0.9 and episodes_only <= 0.5, (covered, episodes_only)


def test_the_few_shot_peers_are_ordered_against_few_nerds_published_differences():
    from bench.report import fewnerd_table

    rng = np.random.default_rng(3)
    rows = []
    for k in (1, 5):
        for seed in range(3):
            proto = rng.uniform(30, 60, size=40)
            nn = proto + 3.0 + 0.5 * seed  # NNShot ahead of ProtoNet on every seed
            struct = nn - 2.0 - 0.5 * seed  # StructShot behind NNShot on every seed
            rows += [
                {**_rec(label, seed, list(f1s)), "k": k}
                for label, f1s in (("ProtoNet", proto), ("NNShot", nn), ("StructShot", struct))
            ]
    table, _ = fewnerd_table(pd.DataFrame(rows))
    got = {(r["K"], r["A"], r["B"]): (r["Few-NERD"], r["order"]) for r in table.to_dict("records")}
    assert got == {
        (1, "NNShot", "ProtoNet"): ("+8.41", "as Few-NERD"),  # 47.24 - 38.83
        (1, "StructShot", "NNShot"): ("+4.64", "against Few-NERD"),  # 51.88 - 47.24
        (5, "NNShot", "ProtoNet"): ("-3.15", "against Few-NERD"),  # 55.64 - 58.79: ProtoBERT ahead at 5~10 shot
        (5, "StructShot", "NNShot"): ("+1.68", "against Few-NERD"),
    }  # no CONTaiNER rows: no CONTaiNER line
    assert "paper" not in table.columns


def test_a_profile_row_takes_its_paper_rows_difference_but_not_against_that_row():
    from bench import paper

    assert paper.reported("MFNER fast", 1) == paper.REPORTED[("MFNER", 1)]
    assert paper.reported("MFNER fast text only", 1) == paper.REPORTED[("MFNER text only", 1)]
    assert paper.reported("NNShot", 1) == {}
    rows = []
    for seed in range(3):
        ref = list(np.linspace(40, 60, 20))
        for label, shift in (("MFNER fast", 0.0), ("ProtoNet", -5.0), ("MFNER", -1.0)):
            rows.append({**_rec(label, seed, [x + shift for x in ref]), "row": label})
    table, _ = declared_table(pd.DataFrame(rows), (("MFNER fast", "ProtoNet"), ("MFNER fast", "MFNER")), n_boot=200)
    got = {r["B"]: r["paper"] for r in table.to_dict("records")}
    assert got == {"ProtoNet": "+5.11", "MFNER": "-"}  # T17 1 shot: 82.58 - 77.47; the same paper row: none

import json
from dataclasses import replace

import pytest

from fewshot_ner.datasets import Domain
from fewshot_ner.episodes import EpisodeError, EpisodeSet, cached_episodes, sample_episodes
from fewshot_ner.labels import bio_labels


def type_counts(sentences, types):
    return {t: sum(t in s.types for s in sentences) for t in types}


def assert_k_rule_and_minimal(sentences, types, k):
    counts = type_counts(sentences, types)
    assert all(c >= k for c in counts.values()), counts
    for i in range(len(sentences)):
        rest = sentences[:i] + sentences[i + 1 :]
        assert any(c < k for c in type_counts(rest, types).values()), f"sentence {i} is redundant"


@pytest.mark.parametrize("k", [1, 5])
def test_every_set_meets_k_and_is_minimal(t17, k):
    episodes = sample_episodes(t17, k, seed=3, max_episodes=40).materialize(t17)
    assert len(episodes) == 40
    for ep in episodes:
        assert_k_rule_and_minimal(list(ep.support), t17.types, k)
        assert_k_rule_and_minimal(list(ep.query), t17.types, k)


def test_sets_are_disjoint_within_and_across_episodes(t17):
    eps = sample_episodes(t17, 1, seed=0, max_episodes=None)
    keys = [key for s, q in eps.episodes for key in (*s, *q)]
    assert len(keys) == len(set(keys))


def test_cut_until_the_pool_runs_dry(t17):
    """Uncapped, sampling stops because the rarest type is used up, not earlier."""
    eps = sample_episodes(t17, 5, seed=0, max_episodes=None)
    used = {key for s, q in eps.episodes for key in (*s, *q)}
    left = [s for s in t17.sentences if s.key not in used]
    counts = type_counts(left, t17.types)
    assert min(counts.values()) < 4 * 5, counts  # of 1082 LOC sentences, fewer than 20 are left
    assert 60 <= len(eps.episodes) <= 110  # the paper reports 80 for Twitter-17


def test_same_seed_same_episodes_other_seed_others(t17):
    a = sample_episodes(t17, 1, seed=7, max_episodes=20)
    b = sample_episodes(t17, 1, seed=7, max_episodes=20)
    c = sample_episodes(t17, 1, seed=8, max_episodes=20)
    train = sample_episodes(t17, 1, seed=7, max_episodes=20, purpose="train")
    assert a == b and a.sha256 == b.sha256
    assert a.episodes != c.episodes and a.episodes != train.episodes


def test_json_round_trip_and_cache(t17, tmp_path):
    eps = sample_episodes(t17, 1, seed=1, max_episodes=5)
    assert EpisodeSet.load(eps.save(tmp_path / "e.json")) == eps
    first = cached_episodes(t17, 1, seed=1, max_episodes=5)
    assert first == eps and cached_episodes(t17, 1, seed=1, max_episodes=5) == eps


def test_schema_version_is_checked(t17, tmp_path):
    path = sample_episodes(t17, 1, seed=1, max_episodes=2).save(tmp_path / "e.json")
    data = json.loads(path.read_text())
    data["schema_version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="schema_version 99"):
        EpisodeSet.load(path)


def test_materialize_refuses_other_data(t17):
    eps = sample_episodes(t17, 1, seed=1, max_episodes=2)
    with pytest.raises(ValueError, match="other data"):
        eps.materialize(replace(t17, data_hash="0" * 64, episode_hash="0" * 64))


def test_too_small_domain_is_a_clear_error(t17):
    tiny = Domain(t17.spec, t17.sentences[:3], t17.reports, "x")
    with pytest.raises(EpisodeError, match="too small for one 5-shot episode"):
        sample_episodes(tiny, 5, seed=0)


def test_labels_are_o_then_bio_per_type():
    assert bio_labels(("PER", "LOC")) == ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")


def test_a_cell_loads_each_episode_file_once(suite, tiny_model_dir, tmp_path, monkeypatch):
    """The runner's checks, the cell and the report's rescoring share one load per episode file."""
    from dataclasses import replace

    from bench.report import write_report
    from bench.runner import RunOptions, run_suite
    from fewshot_ner import episodes as module

    monkeypatch.setattr(module, "_LOADED", {})
    loads: list[str] = []
    real_load, real_sample = module.EpisodeSet.load, module.sample_episodes
    monkeypatch.setattr(module.EpisodeSet, "load", classmethod(lambda cls, p: loads.append(str(p)) or real_load(p)))
    monkeypatch.setattr(module, "sample_episodes", lambda *a, **k: loads.append("sampled") or real_sample(*a, **k))
    one = replace(suite, seeds=(0,))
    opts = RunOptions(results_dir=tmp_path, encoder=str(tiny_model_dir), progress=False, only_targets=("mini17",))
    run_suite(one, opts)
    write_report(one, tmp_path)
    assert len(loads) == 2  # the target's test episodes and the one source's training episodes, once each

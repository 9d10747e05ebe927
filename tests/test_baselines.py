"""ProtoNet, WPZ and lookup against hand computations and constructed cases."""

from __future__ import annotations

import math

import pytest
import torch

from baselines.lookup import Lookup, entities, tag_by_lookup
from baselines.protonet import ProtoNet
from baselines.wpz import matching_scores
from fewshot_ner.data import LoadReport, QuerySentence, Sentence
from fewshot_ner.datasets import DatasetSpec, Domain
from fewshot_ner.episodes import TestEpisode
from fewshot_ner.labels import io_classes, io_to_bio
from fewshot_ner.method import RunContext, SourceTask
from fewshot_ner.prototypes import prototypes, similarity


def test_protonet_scores_by_hand():
    # three support words: two O at (0, 0) and (2, 0), one B-PER at (0, 3); one query word at (1, 1)
    support = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    ids = torch.tensor([0, 0, 1])
    protos, present = prototypes(support, ids, 3)
    assert protos.tolist() == [[1.0, 0.0], [0.0, 3.0], [0.0, 0.0]] and present.tolist() == [True, True, False]
    q = torch.tensor([[1.0, 1.0]])
    # -||q - (1,0)||^2 = -1; -||q - (0,3)||^2 = -(1 + 4) = -5
    assert similarity(q, protos[:2], "euclidean").tolist() == [[-1.0, -5.0]]
    assert similarity(q, protos[:2], "dot").tolist() == [[1.0, 3.0]]  # dot prefers the far, long prototype


def test_wpz_disagrees_with_protonet_where_the_nearest_word_is_not_the_mean():
    # O's support words are spread out (one near the query, one far off); PER's two sit together a
    # bit further from the query than O's near word. The prototype of O is dragged away by the far
    # word, so ProtoNet says PER; attention finds O's near word, so WPZ says O.
    support = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.6, 0.8], [0.6, 0.8]])
    ids = torch.tensor([0, 0, 1, 1])
    query = torch.tensor([[0.95, 0.31]])
    protos, _ = prototypes(support, ids, 2)
    proto_choice = similarity(query, protos, "euclidean").argmax(-1).item()
    wpz = matching_scores(query, support, ids, 2, torch.tensor(0.05))
    assert proto_choice == 1 and wpz.argmax(-1).item() == 0
    # the scores are log attention masses: they sum (in probability) to 1 over the labels
    assert math.isclose(wpz.exp().sum().item(), 1.0, rel_tol=1e-5)


def sent(key: str, text: str, tags: str) -> Sentence:
    return Sentence(key, tuple(text.split()), tuple(tags.split()), key, "")


def test_lookup_longest_match_case_and_support_override():
    names = {("New", "York"): "LOC", ("New",): "ORG", ("york",): "PER"}
    assert tag_by_lookup(("in", "New", "York", "now"), names, 2) == ["O", "B-LOC", "I-LOC", "O"]
    assert tag_by_lookup(("New", "york"), names, 2) == ["B-ORG", "B-PER"]  # case-sensitive: no "New york"
    source_sents = [
        sent("s:0", "Paris is nice", "B-LOC O O"),
        sent("s:1", "Paris Hilton came", "B-PER I-PER O"),
        sent("s:2", "Paris again", "B-PER O"),
        sent("s:3", "Paris again", "B-PER O"),
        sent("s:4", "the Expo show", "O B-OTHER O"),
    ]
    spec = DatasetSpec(name="src", short="src", types=("PER", "LOC", "ORG", "OTHER"), caption_file=None)
    source = Domain(spec, tuple(source_sents), {"train": LoadReport()}, "h")
    method = Lookup(RunContext())
    method.fit([SourceTask(source, [])])
    support = (sent("t:0", "Paris rocks", "B-LOC O"),)  # the support says Paris is a place: it wins
    query = (QuerySentence("t:1", ("Paris", "Hilton", "and", "Paris", "at", "Expo"), "t:1", ""),)
    ep = TestEpisode(0, support, query, ("PER", "LOC", "MISC"))  # OTHER maps to the target's MISC
    assert method.predict(ep) == [["B-PER", "I-PER", "O", "B-LOC", "O", "B-MISC"]]
    ep_no_support = TestEpisode(0, (sent("t:2", "x", "O"),), query, ("PER", "LOC", "MISC"))
    assert method.predict(ep_no_support)[0][3] == "B-PER"  # most frequent source type: PER 2, LOC 1


def test_entities_are_strict_iob2_spans():
    s = sent("k", "a b c d", "B-PER I-PER I-LOC B-LOC")
    assert entities(s) == [(("a", "b"), "PER"), (("d",), "LOC")]


def _meta_trained(name: str, model_dir, source: Domain, steps: int, **options):
    """A baseline meta-trained on ``source``'s 1-shot training episodes (returned with it)."""
    from bench.methods import METHODS
    from fewshot_ner.episodes import sample_episodes

    torch.manual_seed(0)
    training = {} if name == "lookup" else {"passes": 3, "min_steps": steps, "encoder_lr": 1e-3}
    method = METHODS.get(name)(RunContext(encoder=str(model_dir), progress=False), **training, **options)
    episodes = sample_episodes(source, 1, 0, None, "train").materialize(source)
    method.fit([SourceTask(source, episodes)])
    return method, episodes


@pytest.mark.parametrize(
    ("name", "options"),
    [("protonet", {"tagging": "bio"}), ("protonet", {"tagging": "io"}), ("wpz", {}), ("lookup", {})],
)
def test_method_fits_its_own_support_after_meta_training(tiny_model_dir, name, options):
    """Meta-trained on a tiny source, a support-driven baseline tags the support it was given (a target
    episode's) with F1 1.0. Lookup learns nothing: the support's names have the dictionary's last word."""
    from fewshot_ner.episodes import sample_episodes
    from fewshot_ner.metrics import episode_f1
    from tests.test_conformance import tiny_domain

    source, target = tiny_domain("fit-src", 40, 1), tiny_domain("fit-tgt", 40, 2)
    method, _ = _meta_trained(name, tiny_model_dir, source, 60, **options)
    method.prepare(target)
    ep = sample_episodes(target, 1, 0, 3).materialize(target)[0]
    as_query = TestEpisode(0, ep.support, tuple(s.untagged() for s in ep.support), ep.types)
    assert episode_f1([s.tags for s in ep.support], method.predict(as_query)) == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("name", "steps"),
    [("protonet", 60), ("wpz", 60), ("spanner", 300)],
)
def test_meta_trained_baseline_fits_the_episodes_it_trained_on(tiny_model_dir, name, steps):
    """Every meta-trained baseline's losses can fit a tiny source: after meta-training it tags the queries of
    its first five training episodes (their supports given) with F1 1.0. SpanNER learns span boundaries from
    context, which the 2-layer random encoder gives slowly: 300 steps (at 60 its first episode scores 40).
    Default options (IO classes): with BIO, a query's I-x is unwritable when its support's entity of that type
    is one word (the limitation ``TokenClassifierConfig`` documents; episode 2 here scores 40)."""
    from fewshot_ner.metrics import episode_f1
    from tests.test_conformance import tiny_domain

    source = tiny_domain("fit-src", 40, 1)
    method, episodes = _meta_trained(name, tiny_model_dir, source, steps)
    method.prepare(source)
    for ep in episodes[:5]:
        seen = TestEpisode(ep.index, ep.support, tuple(s.untagged() for s in ep.query), ep.types)
        assert episode_f1([s.tags for s in ep.query], method.predict(seen)) == pytest.approx(100.0), ep.index


def test_protonet_refuses_an_unknown_similarity():
    with pytest.raises(ValueError, match="euclidean, dot or cosine"):
        ProtoNet.check_options({"similarity": "manhattan"})
    with pytest.raises(ValueError, match="has no option"):
        ProtoNet.check_options({"simlarity": "dot"})
    with pytest.raises(ValueError, match="tagging must be bio or io"):
        ProtoNet.check_options({"tagging": "bioes"})


def test_io_tagging_scores_a_type_whose_support_entity_is_one_word(tiny_model_dir):
    """In 1 shot the support's PER is one word: BIO has no I-PER vector and masks it; IO pools B and I into
    one PER class, present, so a two-word name can be written (as B-PER I-PER)."""
    support = (sent("s:0", "Ann is here", "B-PER O O"),)
    query = (QuerySentence("q:0", ("Ann", "Lee", "is", "here"), "q:0", ""),)
    episode = TestEpisode(0, support, query, ("PER",))
    present = {}
    for tagging in ("bio", "io"):
        method = ProtoNet(RunContext(encoder=str(tiny_model_dir), progress=False), tagging=tagging)
        classes, _ = method._classes(episode.labels)
        _, _, mask, _ = method._emissions(episode)
        present[tagging] = [c for c, m in zip(classes, mask.tolist(), strict=True) if m]
    assert present == {"bio": ["O", "B-PER"], "io": ["O", "PER"]}


# --- SpanNER: enumeration, scores, decoding ------------------------------------------------


def test_span_enumeration_by_hand():
    from baselines.spanner import enumerate_spans

    got = enumerate_spans([3, 1], max_span=2).tolist()
    assert got == [[0, 0, 1], [0, 0, 2], [0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 0, 1]]
    n = 25
    assert len(enumerate_spans([n], 10)) == sum(min(10, n - i) for i in range(n))


def test_span_scores_and_means_against_a_loop():
    from baselines.spanner import enumerate_spans, span_means, span_scores

    torch.manual_seed(0)
    boundary, vectors = torch.randn(2, 5, 3), torch.randn(2, 5, 4)
    cands = enumerate_spans([5, 3], 4)
    scores, means = span_scores(boundary, cands), span_means(vectors, cands)
    for s, (b, i, j) in enumerate(cands.tolist()):
        want = boundary[b, i, 0] + boundary[b, j - 1, 1] + boundary[b, i:j, 2].sum()
        assert torch.allclose(scores[s], want, atol=1e-5)
        assert torch.allclose(means[s], vectors[b, i:j].mean(0), atol=1e-5)


def test_span_decoding_keeps_the_best_of_overlapping_spans():
    from baselines.spanner import decode

    cands = torch.tensor([[0, 0, 2], [0, 1, 3], [0, 3, 4], [0, 4, 5], [1, 0, 1]])
    scores = torch.tensor([2.0, 3.0, 1.0, -1.0, 0.5])  # (0,1,3) beats (0,0,2); (0,4,5) is under the threshold
    types = ["PER", "LOC", "ORG", "PER", "MISC"]
    tags = decode(cands, scores, types, 0.0, [5, 2])
    assert tags == [["O", "B-LOC", "I-LOC", "B-ORG", "O"], ["B-MISC", "O"]]


def test_spans_lenient_and_back_to_tags():
    from fewshot_ner.labels import lenient_spans, spans, spans_to_tags

    tags = ["I-PER", "I-PER", "O", "B-LOC", "I-LOC", "I-ORG"]
    assert spans(tags) == [(3, 5, "LOC")]  # strict: the orphan I-PER run and I-ORG are no entities
    assert lenient_spans(tags) == [(0, 2, "PER"), (3, 5, "LOC"), (5, 6, "ORG")]
    assert spans_to_tags(6, [(3, 5, "LOC"), (0, 1, "PER")]) == ["B-PER", "O", "O", "B-LOC", "I-LOC", "O"]
    with pytest.raises(ValueError, match="overlaps"):
        spans_to_tags(4, [(0, 2, "PER"), (1, 3, "LOC")])


def test_a_query_label_the_support_lacks_costs_nothing(tiny_model_dir):
    """1-shot supports often lack I-X; a query word tagged I-X must not swamp the loss at the masked score."""
    from fewshot_ner.episodes import Episode

    method = ProtoNet(RunContext(encoder=str(tiny_model_dir), progress=False))
    support = (sent("s:0", "Ann is here", "B-PER O O"),)
    with_inner = (sent("q:0", "Ann Lee is here", "B-PER I-PER O O"),)
    without = (sent("q:1", "Ann is here", "B-PER O O"),)
    loss_inner = method.loss(Episode(0, support, with_inner, ("PER",)))
    loss_plain = method.loss(Episode(0, support, without, ("PER",)))
    assert loss_inner.item() < 100 and loss_plain.item() < 100  # the masked score is -1e4


def test_io_classes_and_back_to_iob2_by_hand():
    assert io_classes(("O", "B-PER", "I-PER", "B-LOC", "I-LOC")) == (("O", "PER", "LOC"), [0, 1, 1, 2, 2])
    assert io_to_bio(["PER", "PER", "O", "LOC", "PER", "O", "O", "LOC", "LOC"]) == [
        "B-PER", "I-PER", "O", "B-LOC", "B-PER", "O", "O", "B-LOC", "I-LOC",
    ]  # fmt: skip


def test_io_round_trip_keeps_every_entity_unless_two_of_a_type_touch():
    """Brute force over every BIO sequence of 5 words and 2 types: the IO view written back as IOB2
    gives the same entities exactly when no entity starts right after one of its own type."""
    import itertools

    from fewshot_ner.labels import spans

    labels = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
    classes, of_label = io_classes(labels)
    for tags in itertools.product(labels, repeat=5):
        gold = spans(tags)
        back = spans(io_to_bio([classes[of_label[labels.index(t)]] for t in tags]))
        touching = any(a[1] == b[0] and a[2] == b[2] for a in gold for b in gold)
        strict_ok = all(t == "O" or t.startswith("B-") or (i and tags[i - 1][2:] == t[2:]) for i, t in enumerate(tags))
        if strict_ok and not touching:
            assert back == gold, tags

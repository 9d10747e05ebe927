"""NNShot and StructShot: nearest neighbours against brute force, abstract transitions by hand, Viterbi
against every path, and the source training shared with BERT+CRF transfer."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import pytest
import torch

from baselines.nnshot import (
    IMPOSSIBLE,
    NNShot,
    abstract_counts,
    abstract_transitions,
    as_io,
    nearest_tag_scores,
    repair_iob2,
    tag_classes,
)
from fewshot_ner import crf
from fewshot_ner.method import RunContext, SourceTask
from tests.test_conformance import tiny_domain


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_nearest_tag_scores_equal_a_brute_force_search(distance):
    gen = torch.Generator().manual_seed(0)
    query, support = torch.randn(2, 3, 5, generator=gen), torch.randn(7, 5, generator=gen)
    ids = torch.tensor([0, 2, 2, 0, 3, 2, 0])  # tag 1 has no support word
    got = nearest_tag_scores(query, support, ids, 4, distance)
    for b, w, c in itertools.product(range(2), range(3), range(4)):
        dists = []
        for n in range(7):
            if ids[n] == c:
                q, s = query[b, w], support[n]
                d = float(((q - s) ** 2).sum()) if distance == "euclidean" else 1 - float(q @ s / (q.norm() * s.norm()))
                dists.append(d)
        want = -min(dists) if dists else -math.inf
        assert got[b, w, c].item() == pytest.approx(want, abs=1e-4)


def test_an_orphan_inside_tag_opens_an_entity():
    assert repair_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-PER"]) == [
        "B-PER",
        "I-PER",
        "O",
        "B-LOC",
        "B-LOC",
        "B-PER",
    ]


def test_abstract_transitions_counted_and_shared_by_hand():
    corpus = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "O", "B-PER", "B-LOC"], ["B-LOC", "O"]]
    counts = abstract_counts(corpus)
    # starts: B, O, B; O>O 1, O>B 2 (O->B-LOC, O->B-PER); B>I= 1; I>O 1; B>B! 1; B>O 1
    assert counts == {"S>B": 2, "S>O": 1, "B>I=": 1, "I>O": 1, "O>B": 2, "O>O": 1, "B>B!": 1, "B>O": 1}
    labels = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
    trans, start = abstract_transitions(counts, labels)
    # from O: O>O 1/3, O>B 2/3 shared by the two B tags, O>I never seen
    assert trans[0, 0].item() == pytest.approx(math.log(1 / 3))
    assert trans[0, 1].item() == pytest.approx(math.log(1 / 3)) and trans[0, 3].item() == pytest.approx(math.log(1 / 3))
    assert trans[0, 2].item() == IMPOSSIBLE and trans[0, 4].item() == IMPOSSIBLE
    # from B-PER: B>I= 1/3 (to I-PER only), B>B! 1/3 (to B-LOC only), B>O 1/3; B>B= and B>I! never seen
    assert trans[1, 2].item() == pytest.approx(math.log(1 / 3)) and trans[1, 3].item() == pytest.approx(math.log(1 / 3))
    assert trans[1, 1].item() == IMPOSSIBLE and trans[1, 4].item() == IMPOSSIBLE
    # starts: S>B 2/3 shared by the two B tags, S>O 1/3, S>I never
    assert start.tolist() == pytest.approx([math.log(1 / 3), math.log(1 / 3), IMPOSSIBLE, math.log(1 / 3), IMPOSSIBLE])


def test_structshot_decoding_is_the_best_of_every_path():
    gen = torch.Generator().manual_seed(1)
    labels = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
    counts = abstract_counts([["O", "B-PER", "I-PER", "O"], ["B-LOC", "I-LOC", "I-LOC", "O", "B-PER"]])
    trans, start = abstract_transitions(counts, labels)
    emissions = torch.log_softmax(torch.randn(1, 4, 5, generator=gen), -1)
    paths, _ = crf.viterbi(emissions, torch.ones(1, 4, dtype=torch.bool), trans, start, torch.zeros(5))

    def score(path: tuple[int, ...]) -> float:
        total = start[path[0]] + sum(emissions[0, i, t] for i, t in enumerate(path))
        return float(total + sum(trans[a, b] for a, b in zip(path, path[1:], strict=False)))

    best = max(itertools.product(range(5), repeat=4), key=score)
    assert tuple(paths[0].tolist()) == best


def test_nnshot_shares_bert_crf_transfers_source_training(tiny_model_dir):
    from baselines.bert_crf import BertCRF

    source = tiny_domain("nn-src", 24, 3)
    ctx = RunContext(progress=False, encoder=str(tiny_model_dir))
    options = {"transfer_max_sentences": 16}
    torch.manual_seed(0)
    BertCRF(ctx, protocol="transfer", steps=0, **options).fit([SourceTask(source)])
    nn = NNShot(ctx, **options)
    nn.fit([SourceTask(source)])
    assert nn.fit_report().get("loaded_from_cache")  # the same weights, from BERT+CRF transfer's cache file
    with pytest.raises(ValueError, match="distance must be one of"):
        NNShot.check_options({"distance": "manhattan"})
    with pytest.raises(ValueError, match="trains on the source only"):
        NNShot.check_options({"protocol": "support"})


@pytest.mark.parametrize("suite_name", ["table3", "base"])
def test_every_suites_peers_train_the_source_as_its_transfer_row(suite_name):
    """NNShot and StructShot load the transfer row's cached source tagger only if their tagger options equal its."""
    from baselines.bert_crf import BertCRF
    from bench.suites import HARNESS_OPTIONS, SUITES

    def tagger(options: dict) -> dict:
        return {k: v for k, v in options.items() if k not in HARNESS_OPTIONS}

    specs = {m.label: m for m in SUITES.get(suite_name).methods}
    transfer = specs["BERT+CRF transfer"]
    for label in ("NNShot", "StructShot"):
        peer = specs[label]
        assert peer.options.get("precision") == transfer.options.get("precision")
        assert NNShot.check_options(tagger(peer.options)) == BertCRF.check_options(tagger(transfer.options)), label


def test_io_tagging_takes_the_nearest_support_words_type_and_writes_runs_as_entities():
    """With ``tagging: io`` a query word takes the type (or ``O``) of its nearest support word, ``B-X`` and
    ``I-X`` support words alike, and each run of a type is written as one IOB2 entity: against a brute force."""
    labels = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
    classes, of_label = tag_classes(labels, "io")
    assert classes == ("O", "I-PER", "I-LOC") and of_label.tolist() == [0, 1, 1, 2, 2]
    assert tag_classes(labels, "bio")[0] == labels
    gen = torch.Generator().manual_seed(3)
    query, support = torch.randn(1, 6, 4, generator=gen), torch.randn(5, 4, generator=gen)
    support_labels = [0, 1, 2, 3, 0]  # O, B-PER, I-PER, B-LOC, O: no I-LOC word
    scores = nearest_tag_scores(query, support, of_label[torch.tensor(support_labels)], len(classes))
    got = NNShot.write_tags(SimpleNamespace(tagging="io"), [classes[j] for j in scores.argmax(-1)[0].tolist()])
    nearest = [support_labels[int(((support - q) ** 2).sum(-1).argmin())] for q in query[0]]
    types = [labels[i].partition("-")[2] or "O" for i in nearest]
    want = [("O" if t == "O" else ("I-" if i and types[i - 1] == t else "B-") + t) for i, t in enumerate(types)]
    assert got == want
    assert as_io(["B-PER", "I-PER", "O", "B-LOC"]) == ("I-PER", "I-PER", "O", "I-LOC")
    with pytest.raises(ValueError, match="tagging must be one of"):
        NNShot.check_options({"tagging": "bioes"})


def test_io_transitions_counted_by_hand():
    """StructShot with ``io``: the source's sequences in IO, so a type's run continues by ``I>I=``."""
    counts = abstract_counts([as_io(["B-PER", "I-PER", "O", "B-LOC"]), as_io(["B-PER", "B-LOC"])])
    assert counts == {"S>I": 2, "I>I=": 1, "I>O": 1, "O>I": 1, "I>I!": 1}
    trans, start = abstract_transitions(counts, ("O", "I-PER", "I-LOC"))
    # from I-PER: I>I= 1/3 (itself), I>I! 1/3 (I-LOC), I>O 1/3; from O: O>I 1 shared by the two types, O>O never
    assert trans[1].tolist() == pytest.approx([math.log(1 / 3)] * 3)
    assert trans[0].tolist() == pytest.approx([IMPOSSIBLE, math.log(1 / 2), math.log(1 / 2)])
    assert start.tolist() == pytest.approx([IMPOSSIBLE, math.log(1 / 2), math.log(1 / 2)])

"""``check_method``: the method contract, checked on any method class (as scikit-learn's ``check_estimator``).

A method registered from outside the package (``bench --include my_method.py``, or the
``mfner_bench.plugins`` entry-point group) is held to what every built-in method is held to in the
project's own tests::

    from fewshot_ner.conformance import check_method
    check_method(MyMethod, {"steps": 2})      # a tiny BERT built from a config; seconds

It meta-trains on a tiny synthetic source domain, tags every query of a tiny target's test episodes and
asserts: one tag sequence per query sentence, as long as the sentence, tags from the episode's labels,
IOB2 tags (an ``I-X`` after ``O`` is allowed: the evaluator, seqeval's default mode, reads it as a new entity, as conlleval does; ``strict_iob2`` refuses it), no read of a query sentence's gold tags (there are none to read:
any attribute read beyond a query's words fails), the same tags from a second run with the same
seed, and a ``config()`` that holds what ``resolved_config`` says of the options. A violation is an ``AssertionError`` that says which.
"""

from __future__ import annotations

import random
import string
import tempfile
from pathlib import Path
from typing import Any

from fewshot_ner.data import LoadReport, QuerySentence, Sentence
from fewshot_ner.datasets import DatasetSpec, Domain
from fewshot_ner.episodes import TestEpisode, sample_episodes
from fewshot_ner.method import FewShotMethod, RunContext, SourceTask

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


def tiny_encoder(folder: Path, initializer_range: float = 0.02) -> Path:
    """A 2-layer, 32-wide BERT with a word-piece vocabulary of its own, written into ``folder`` (random weights)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    words = ["the", "a", "of", "in", "new", "post", "people", "festival", "voice", "stage", "large", "group"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = list(
        dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, *chars, *(f"##{c}" for c in chars)])
    )
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True).save_pretrained(folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        config = BertConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=512,
            initializer_range=initializer_range,
        )
        BertModel(config).save_pretrained(folder)
    return folder


class _NoTags(QuerySentence):
    """A query sentence whose every attribute beyond its words fails loudly: a method can't read gold tags."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the method read {name!r} of a test query sentence (a query has no tags)")


def _run(
    cls: type[FewShotMethod],
    options: dict[str, Any],
    encoder: str,
    source: Domain,
    target: Domain,
    seed: int,
    strict_iob2: bool,
):
    import torch

    torch.manual_seed(seed)
    random.seed(seed)
    name = cls.__name__
    method = cls(RunContext(seed=seed, encoder=encoder, progress=False), **options)
    _check_resolved(cls, options, method.config())
    method.fit([SourceTask(source, sample_episodes(source, 1, seed, None, "train").materialize(source))])
    method.prepare(target)
    out = []
    for ep in sample_episodes(target, 1, seed, 4).materialize(target):
        seen = ep.for_prediction()
        query = tuple(_NoTags(q.key, q.tokens, q.image_id, q.image_text) for q in seen.query)
        pred = method.predict(TestEpisode(seen.index, seen.support, query, seen.types))
        assert len(pred) == len(ep.query), f"{name}: {len(pred)} tag sequences for {len(ep.query)} query sentences"
        for tags, sent in zip(pred, ep.query, strict=True):
            assert len(tags) == len(sent.tokens), f"{name}: {len(tags)} tags for a sentence of {len(sent.tokens)} words"
            assert set(tags) <= set(ep.labels), f"{name}: tags {sorted(set(tags) - set(ep.labels))} not in {ep.labels}"
            if strict_iob2:
                _check_iob2(name, list(tags))
        out.append(pred)
    return out


def _check_resolved(cls: type[FewShotMethod], options: dict[str, Any], config: dict[str, Any]) -> None:
    """What ``resolved_config`` says of ``options`` is what the built method's ``config()`` holds."""
    resolved = cls.resolved_config(options)
    if resolved is None:
        return
    wrong = {k: (v, config.get(k, "(missing)")) for k, v in resolved.items() if config.get(k, "(missing)") != v}
    assert not wrong, f"{cls.__name__}: resolved_config differs from config() at {wrong} (resolved, built)"


def _check_iob2(name: str, tags: list[str]) -> None:
    """Every tag ``O``, ``B-X`` or ``I-X``, and every ``I-X`` after a ``B-X`` or ``I-X`` of the same type."""
    prev = "O"
    for i, tag in enumerate(tags):
        ok = tag == "O" or tag[:2] == "B-" or (tag[:2] == "I-" and prev[:2] in ("B-", "I-") and prev[2:] == tag[2:])
        assert ok, f"{name}: {tags} is not IOB2 (tag {i}, {tag!r} after {prev!r})"
        prev = tag


def check_method(
    cls: type[FewShotMethod],
    options: dict[str, Any] | None = None,
    encoder: str | Path | None = None,
    seed: int = 0,
    strict_iob2: bool = False,
) -> None:
    """Run ``cls`` (with ``options``) end to end twice on tiny domains; an ``AssertionError`` names what broke.

    ``encoder``: a model folder (default: a tiny BERT written to a temporary folder from a config).
    Keep ``options`` small (one pass, a few steps): the check takes seconds with the tiny encoder.
    """
    options = dict(options or {})
    source, target = tiny_domain("check-src", seed=1), tiny_domain("check-tgt", seed=2)
    with tempfile.TemporaryDirectory(prefix="check-method-") as tmp:
        model = str(encoder) if encoder is not None else str(tiny_encoder(Path(tmp)))
        first = _run(cls, options, model, source, target, seed, strict_iob2)
        second = _run(cls, options, model, source, target, seed, strict_iob2)
    assert first == second, f"{cls.__name__}: two runs with seed {seed} gave different tags"


__all__ = ["check_method", "tiny_domain", "tiny_encoder"]

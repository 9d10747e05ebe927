"""Reading CoNLL-style tweet files and their image text into sentences.

Format: an ``IMGID:<id>`` line, then ``token<TAB>BIO-tag`` lines, a blank line between tweets.
Image text: ``<imgid>.jpg :<caption>`` lines, split on the first ``" :"``.

Bad input raises :class:`DataFormatError` naming the file and line. Repairs are counted in a
:class:`LoadReport`, never silent: an orphan ``I-X`` (not after ``B-X``/``I-X``) becomes ``B-X``;
a missing or empty image text becomes ``""``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_TAG = re.compile(r"^(O|[BI]-[^\s-][^\s]*)$")


class DataFormatError(ValueError):
    """Malformed input; the message starts with ``file:line:``."""

    def __init__(self, path: Path | str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = str(path)
        self.line = line


@dataclass(frozen=True)
class Sentence:
    """One tweet: words, IOB2 tags, its image id and the image turned into text."""

    key: str  # unique across domains: "<domain>:<split>:<index>"
    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    image_id: str
    image_text: str = ""

    @property
    def types(self) -> frozenset[str]:
        """Entity types present (from the ``B-`` tags)."""
        return frozenset(t[2:] for t in self.tags if t.startswith("B-"))

    def untagged(self) -> QuerySentence:
        """This sentence as a method sees a test query: words and image text, no gold tags."""
        return QuerySentence(self.key, self.tokens, self.image_id, self.image_text)


@dataclass(frozen=True)
class QuerySentence:
    """A test query sentence as a method receives it: no ``tags`` attribute to read by mistake."""

    key: str
    tokens: tuple[str, ...]
    image_id: str
    image_text: str = ""


@dataclass
class LoadReport:
    """What loading a file found and repaired."""

    sentences: int = 0
    tokens: int = 0
    orphan_i_repaired: int = 0
    entities: Counter[str] = field(default_factory=Counter)
    image_text_missing: int = 0
    image_text_empty: int = 0
    image_text_unmatched: int = 0  # caption lines whose image id matches no tweet of the dataset

    def merge(self, other: LoadReport) -> None:
        self.sentences += other.sentences
        self.tokens += other.tokens
        self.orphan_i_repaired += other.orphan_i_repaired
        self.entities.update(other.entities)
        self.image_text_missing += other.image_text_missing
        self.image_text_empty += other.image_text_empty
        self.image_text_unmatched += other.image_text_unmatched


def _read_lines(path: Path) -> list[str]:
    raw = path.read_bytes()
    if not raw.strip():
        raise DataFormatError(path, 1, "file is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataFormatError(path, line, f"bytes are not UTF-8 ({err.reason} at byte {err.start})") from None
    return text.split("\n")


def repair_tags(tags: list[str]) -> tuple[list[str], int]:
    """Turn every orphan ``I-X`` into ``B-X``; return the tags and the number of repairs."""
    out: list[str] = []
    repaired = 0
    prev = "O"
    for tag in tags:
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            tag = "B-" + tag[2:]
            repaired += 1
        out.append(tag)
        prev = tag
    return out, repaired


def read_conll(
    path: Path | str, split: str, report: LoadReport | None = None, types: tuple[str, ...] | None = None
) -> list[tuple[str, list[str], list[str]]]:
    """Parse one split file into ``(image_id, tokens, tags)`` triples, repairing orphan ``I-``.

    ``types``: the entity types the dataset declares; a tag of any other type is an error naming
    the file and line.
    """
    path = Path(path)
    report = report if report is not None else LoadReport()
    lines = _read_lines(path)
    out: list[tuple[str, list[str], list[str]]] = []
    image_id: str | None = None
    tokens: list[str] = []
    tags: list[str] = []
    start = 0

    def flush() -> None:
        nonlocal image_id, tokens, tags
        if image_id is None:
            return
        if not tokens:
            raise DataFormatError(path, start, f"tweet IMGID:{image_id} has no tokens")
        fixed, n = repair_tags(tags)
        report.orphan_i_repaired += n
        report.sentences += 1
        report.tokens += len(tokens)
        report.entities.update(t[2:] for t in fixed if t.startswith("B-"))
        out.append((image_id, tokens, fixed))
        image_id, tokens, tags = None, [], []

    for lineno, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if line == "":
            flush()
            continue
        if line.startswith("IMGID:"):
            flush()
            image_id = line[len("IMGID:") :].strip()
            if not image_id:
                raise DataFormatError(path, lineno, "empty IMGID")
            start = lineno
            continue
        if image_id is None:
            raise DataFormatError(path, lineno, f"token line before any IMGID: line: {line[:40]!r}")
        if "\t" not in line:
            raise DataFormatError(path, lineno, f"expected 'token<TAB>tag', found no tab in {line[:40]!r}")
        token, tag = line.rsplit("\t", 1)
        tag = tag.strip()
        if not _TAG.match(tag):
            raise DataFormatError(path, lineno, f"tag {tag!r} is not in BIO form (O, B-X, I-X)")
        if "\t" in token:
            raise DataFormatError(path, lineno, f"token {token!r} holds a tab (expected one 'token<TAB>tag' per line)")
        if types is not None and tag != "O" and tag[2:] not in types:
            raise DataFormatError(path, lineno, f"entity type {tag[2:]!r} is not one of the declared {list(types)}")
        if token == "":
            raise DataFormatError(path, lineno, "empty token")
        tokens.append(token)
        tags.append(tag)
    flush()
    if not out:
        raise DataFormatError(path, 1, "no tweets found")
    return out


def read_image_text(path: Path | str) -> dict[str, str]:
    """Parse ``<imgid>.jpg :<caption>`` lines into ``{image_id: caption}``."""
    path = Path(path)
    captions: dict[str, str] = {}
    for lineno, line in enumerate(_read_lines(path), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        if " :" not in line:
            raise DataFormatError(path, lineno, f"expected '<imgid>.jpg :<caption>', got {line[:40]!r}")
        name, caption = line.split(" :", 1)
        image_id = name.strip()
        for ext in (".jpg", ".jpeg", ".png"):
            if image_id.lower().endswith(ext):
                image_id = image_id[: -len(ext)]
        captions[image_id] = caption.strip()
    return captions


def attach_image_text(
    rows: list[tuple[str, list[str], list[str]]],
    split: str,
    captions: dict[str, str] | None,
    report: LoadReport,
    domain: str = "",
) -> list[Sentence]:
    """Build sentences keyed ``<domain>:<split>:<index>``, counting missing and empty image texts."""
    out = []
    prefix = f"{domain}:{split}" if domain else split
    for i, (image_id, tokens, tags) in enumerate(rows):
        text = None if captions is None else captions.get(image_id)
        if text is None:
            report.image_text_missing += 1
            text = ""
        elif not text:
            report.image_text_empty += 1
        out.append(Sentence(f"{prefix}:{i}", tuple(tokens), tuple(tags), image_id, text))
    return out

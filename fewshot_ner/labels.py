"""Label utilities, in one place: an episode's label list, tag ids, tag tensors, label names."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

#: The words the encoder reads for each entity type (label-enhanced heads, span typing).
TYPE_NAMES = {"PER": "person", "LOC": "location", "ORG": "organization", "MISC": "miscellaneous", "OTHER": "other"}


#: Twitter-2015's OTHER and Twitter-2017's MISC are one catch-all type under two names.
TYPE_ALIASES = {"OTHER": "MISC"}


def canonical_type(etype: str) -> str:
    """An entity type under its one name across datasets: ``OTHER`` -> ``MISC``; others unchanged."""
    return TYPE_ALIASES.get(etype, etype)


def canonical_label(label: str) -> str:
    """A label under its one name across datasets: ``B-OTHER`` -> ``B-MISC``; others unchanged."""
    prefix, _, etype = label.partition("-")
    return f"{prefix}-{canonical_type(etype)}" if etype else label


def bio_labels(types: tuple[str, ...]) -> tuple[str, ...]:
    """The label list of an episode: ``O`` then ``B-x, I-x`` per type, in type order."""
    return ("O",) + tuple(f"{p}-{t}" for t in types for p in ("B", "I"))


def io_classes(labels: tuple[str, ...]) -> tuple[tuple[str, ...], list[int]]:
    """IO view of a BIO label list: the classes (``O`` then each type once) and each label's class.

    ``("O", "B-PER", "I-PER")`` -> ``(("O", "PER"), [0, 1, 1])``: ``B-x`` and ``I-x`` are one class.
    """
    classes = ["O"]
    of_label = []
    for label in labels:
        etype = label.partition("-")[2] or "O"
        if etype not in classes:
            classes.append(etype)
        of_label.append(classes.index(etype))
    return tuple(classes), of_label


def io_to_bio(classes: Sequence[str]) -> list[str]:
    """IO tags of a sentence's words (``O`` or a type) as IOB2: a run of one type is one entity.

    Two entities of one type side by side can't be told apart in IO (they come out as one): the
    price of the scheme, and why it is an option, not the default, of the token-wise methods.
    """
    out, prev = [], "O"
    for c in classes:
        out.append("O" if c == "O" else f"{'I' if c == prev else 'B'}-{c}")
        prev = c
    return out


def label_ids(tags: Sequence[str], labels: tuple[str, ...]) -> list[int]:
    """Each tag's index in ``labels``; a tag outside them is an error that names it."""
    index = {label: i for i, label in enumerate(labels)}
    try:
        return [index[t] for t in tags]
    except KeyError as err:
        raise ValueError(f"tag {err.args[0]!r} is not in the episode's labels {list(labels)}") from None


def tag_tensor(tag_seqs: Sequence[Sequence[str]], labels: tuple[str, ...], width: int | None = None) -> Tensor:
    """Padded tag ids ``(B, W)`` (padding 0, i.e. ``O``; the mask says which positions count)."""
    width = width if width is not None else max((len(t) for t in tag_seqs), default=0)
    out = torch.zeros(len(tag_seqs), width, dtype=torch.long)  # (B, W)
    for b, tags in enumerate(tag_seqs):
        out[b, : len(tags)] = torch.tensor(label_ids(tags, labels), dtype=torch.long)
    return out


def label_name(label: str) -> str:
    """The words the encoder reads for a label: "ordinary", "begin person", "inner location"."""
    if label == "O":
        return "ordinary"
    prefix, _, etype = label.partition("-")
    return f"{'begin' if prefix == 'B' else 'inner'} {TYPE_NAMES.get(etype, etype.lower())}"


Span = tuple[int, int, str]  # (start, end exclusive, type)


def spans(tags: Sequence[str]) -> list[Span]:
    """The strict IOB2 entities of a tag sequence: a ``B-X`` then its ``I-X``; an orphan ``I-X`` is no entity."""
    out: list[Span] = []
    start, etype = None, None
    for i, tag in enumerate([*tags, "O"]):
        if start is not None and not (tag.startswith("I-") and tag[2:] == etype):
            out.append((start, i, etype))  # type: ignore[arg-type]
            start, etype = None, None
        if tag.startswith("B-"):
            start, etype = i, tag[2:]
    return out


def lenient_spans(tags: Sequence[str]) -> list[Span]:
    """Entities as a token-wise decoder means them: an orphan ``I-X`` opens an entity of type X."""
    out: list[Span] = []
    start, etype = None, None
    for i, tag in enumerate([*tags, "O"]):
        continues = tag.startswith("I-") and tag[2:] == etype
        if start is not None and not continues:
            out.append((start, i, etype))  # type: ignore[arg-type]
            start, etype = None, None
        if tag.startswith("B-") or (tag.startswith("I-") and not continues):
            start, etype = i, tag[2:]
    return out


def spans_to_tags(n_words: int, entities: Sequence[Span]) -> list[str]:
    """IOB2 tags of ``n_words`` words holding non-overlapping ``entities``."""
    tags = ["O"] * n_words
    for start, end, etype in entities:
        if any(t != "O" for t in tags[start:end]):
            raise ValueError(f"span ({start}, {end}) overlaps another")
        tags[start:end] = [f"B-{etype}"] + [f"I-{etype}"] * (end - start - 1)
    return tags

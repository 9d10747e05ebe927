"""Turn a folder of tweet images into image text: MFNER's first module (SPEC section 4.1) as a pipeline.

Each image gets a global caption of the whole image, then local parts from an object detector:
for every region kept (score at least ``score_threshold``, best first, at most ``max_objects``)
its label and a caption of its crop. The text is written in the captions format the loader
reads, one line an image: ``<imgid>.jpg :<caption>. <label>: <crop caption>. ...``.

Models run through transformers pipelines (``image-text-to-text`` for captions: transformers 5
folded the old ``image-to-text`` task into it; ``object-detection`` for regions) from a local
folder or a name the user's cache holds; nothing is downloaded here and no vision model ships
with the project. Resumable: ids already in the output are skipped, each batch is appended in one
write and synced, and a line cut by a kill is dropped on the next start, so a kill loses at most
one batch. An unreadable image is logged with its path and gets an empty text.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fewshot_ner.data import read_image_text

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp")


@dataclass
class Summary:
    """What a run did, counted."""

    images: int = 0
    already_done: int = 0
    described: int = 0
    unreadable: list[str] = field(default_factory=list)
    regions: int = 0  # local parts written

    def line(self) -> str:
        return (
            f"{self.images} image(s): {self.already_done} already in the output, {self.described} described "
            f"({self.regions} region caption(s)), {len(self.unreadable)} unreadable (empty text)"
        )


def image_files(folder: Path) -> list[Path]:
    """The images of a folder, by name (the image id is the name without its suffix)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"--images {folder}: not a folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _repair_tail(out: Path) -> None:
    """Drop a last line a kill cut short (no newline), so the rerun redoes that image."""
    if not out.is_file():
        return
    raw = out.read_bytes()
    if raw and not raw.endswith(b"\n"):
        out.write_bytes(raw[: raw.rfind(b"\n") + 1])


def _append(out: Path, lines: list[str]) -> None:
    """One write per batch, then fsync: what is in the file is whole lines."""
    with out.open("a", encoding="utf-8") as fh:
        fh.write("".join(lines))
        fh.flush()
        os.fsync(fh.fileno())


def _batches(items: list[Path], size: int) -> Iterator[list[Path]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _open(path: Path) -> Any:
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB")  # loads the pixels: a truncated or corrupt file fails here


def _clean(text: str) -> str:
    """One line of single-spaced words."""
    return " ".join(text.split())


@dataclass
class ImageDescriber:
    """A captioner and an optional detector; ``describe`` gives each image's text."""

    caption: Callable[[list[Any]], list[str]]
    detect: Callable[[list[Any]], list[list[dict[str, Any]]]] | None = None
    score_threshold: float = 0.5
    max_objects: int = 5

    def describe(self, images: list[Any]) -> tuple[list[str], int]:
        """Texts of ``images`` (PIL, RGB) and the number of region captions in them."""
        captions = self.caption(images)
        if self.detect is None or self.max_objects == 0:
            return [_clean(c) for c in captions], 0
        crops: list[Any] = []
        owners: list[tuple[int, str]] = []  # (image index, region label) of each crop
        for i, (image, found) in enumerate(zip(images, self.detect(images), strict=True)):
            kept = sorted((d for d in found if d["score"] >= self.score_threshold), key=lambda d: -d["score"])
            for d in kept[: self.max_objects]:
                box = d["box"]
                left, top = box["xmin"], box["ymin"]
                crop = image.crop((left, top, max(box["xmax"], left + 1), max(box["ymax"], top + 1)))
                crops.append(crop)
                owners.append((i, d["label"]))
        local: list[list[str]] = [[] for _ in images]
        for (i, label), text in zip(owners, self.caption(crops) if crops else [], strict=True):
            local[i].append(f"{_clean(label)}: {_clean(text)}".strip())  # "dog:" where the crop's caption is empty
        texts = [". ".join(p for p in [_clean(c), *parts] if p) for c, parts in zip(captions, local, strict=True)]
        return texts, len(crops)


def pipeline_describer(
    captioner: str,
    detector: str | None = None,
    score_threshold: float = 0.5,
    max_objects: int = 5,
    device: str = "cpu",
    max_new_tokens: int = 30,
) -> ImageDescriber:
    """An ``ImageDescriber`` over transformers pipelines of local (or cached) models (``bench image-text``
    sets ``HF_HUB_OFFLINE=1`` first, so a name the cache lacks fails at once instead of downloading)."""
    from transformers import pipeline

    cap = pipeline("image-text-to-text", model=captioner, device=device)
    det = pipeline("object-detection", model=detector, device=device) if detector else None

    def caption(images: list[Any]) -> list[str]:
        out = cap(images=images, text=[""] * len(images), generate_kwargs={"max_new_tokens": max_new_tokens})
        return [o[0]["generated_text"] if isinstance(o, list) else o["generated_text"] for o in out]

    def detect(images: list[Any]) -> list[list[dict[str, Any]]]:
        assert det is not None
        found = det(images, threshold=0.0)  # the threshold is ours, applied in describe()
        return [found] if images and isinstance(found[0], dict) else found

    return ImageDescriber(caption, detect if det else None, score_threshold, max_objects)


def describe_folder(
    images: Path,
    out: Path,
    describer: ImageDescriber,
    batch_size: int = 8,
    progress: bool = True,
) -> Summary:
    """Describe every image of ``images`` not yet in ``out``, appending a batch at a time."""
    from tqdm.auto import tqdm

    files = image_files(images)
    _repair_tail(out)
    done = set(read_image_text(out)) if out.is_file() and out.stat().st_size else set()
    summary = Summary(images=len(files))
    todo = [p for p in files if p.stem not in done]
    summary.already_done = len(files) - len(todo)
    out.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(todo), desc="image text", unit="img", disable=not progress)
    for batch in _batches(todo, batch_size):
        opened: list[Any] = []
        readable: list[Path] = []
        texts: dict[Path, str] = {}
        for path in batch:
            try:
                opened.append(_open(path))
                readable.append(path)
            except Exception as err:  # noqa: BLE001 - any decoder error: the image is unreadable
                log.warning("unreadable image %s: %s", path, err)
                summary.unreadable.append(str(path))
                texts[path] = ""
        if opened:
            described, regions = describer.describe(opened)
            texts.update(zip(readable, described, strict=True))
            summary.regions += regions
            summary.described += len(opened)
        _append(out, [f"{p.stem}.jpg :{texts[p]}\n" for p in batch])  # the loader's format: id.jpg :text
        bar.update(len(batch))
    bar.close()
    return summary

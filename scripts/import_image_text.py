"""Carry the OWL descriptions and the PGIM contexts into ``data/``, in the captions format the loader reads.

Run once from the repository root with the staged raw files beside it (``../shared/data/raw``);
the outputs are committed, so a clone needs none of this. What it writes, per dataset
(``twitter2015`` -> ``_15``, ``twitter2017`` -> ``_17``):

- ``OWL_1x.txt``: RiVEG's OWL image descriptions (records ``imgid:<id>###<text>`` that run over
  several lines until the next ``imgid:``), kept for the dataset's image ids, whitespace folded to
  single spaces. Ids the files lack get no line (the loader counts them as missing: empty text).
- ``PGIM_1x.txt``: PGIM's language-model-written contexts (not captions: ChatGPT text prompted with
  the tweet and its BLIP-2 caption). The PGIM files carry no image ids, so each split's rows are
  aligned to the UMT rows by order and verified by their tokens: a PGIM row is paired with the next
  UMT row whose tokens equal its own, skipping at most ``--max-skip`` UMT rows; every skipped UMT row
  and every PGIM row that finds no partner is reported, never shifted onto a neighbour.

Prints the coverage and alignment counts (the figures ``data/PROVENANCE.md`` gives) and each output's
SHA-256 (pinned in ``fewshot_ner/datasets.py``). Usage:
    python scripts/import_image_text.py [--raw ../shared/data/raw] [--out data]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import zipfile
from pathlib import Path

from fewshot_ner.data import read_conll

SPLITS = ("train", "valid", "test")
DATASETS = {"twitter2015": "15", "twitter2017": "17"}


def fold(text: str) -> str:
    """Whitespace (newlines included) folded to single spaces; the captions format is one line an image."""
    return " ".join(text.split())


def read_owl(paths: list[Path]) -> dict[str, str]:
    """``{image_id: description}`` from RiVEG's OWL files (a record runs until the next ``imgid:`` line)."""
    out: dict[str, str] = {}
    for path in paths:
        current: str | None = None
        parts: list[str] = []
        for line in path.read_text(encoding="utf-8").splitlines() + ["imgid:"]:
            if line.startswith("imgid:"):
                if current is not None:
                    out[current] = fold(" ".join(parts))
                head, _, rest = line[len("imgid:") :].partition("###")
                current, parts = (head.strip() or None), [rest]
            else:
                parts.append(line)
    return out


def read_pgim_split(text: str) -> list[tuple[list[str], str]]:
    """``(tokens, context)`` rows of one PGIM file: tokens up to ``<EOS>``, the context after it."""
    rows = []
    for block in re.split(r"\n\s*\n", text.strip()):
        tokens, context, after = [], [], False
        for line in block.splitlines():
            word = line.split("\t")[0]
            if word == "<EOS>":
                after = True
            elif after:
                context.append(word)
            else:
                tokens.append(word)
        rows.append((tokens, fold(" ".join(context))))
    return rows


def align(umt: list[tuple[str, list[str]]], pgim: list[tuple[list[str], str]], max_skip: int) -> dict:
    """Pair PGIM rows with UMT rows in order, by equal tokens; report what found no partner."""
    pairs: dict[str, str] = {}
    skipped_umt: list[int] = []
    unmatched_pgim: list[int] = []
    i = 0
    for j, (tokens, context) in enumerate(pgim):
        for k in range(i, min(i + max_skip + 1, len(umt))):
            if [fold(t) for t in umt[k][1]] == [fold(t) for t in tokens]:
                skipped_umt += range(i, k)
                pairs[umt[k][0]] = context
                i = k + 1
                break
        else:
            unmatched_pgim.append(j)
    skipped_umt += range(i, len(umt))
    return {"pairs": pairs, "skipped_umt": skipped_umt, "unmatched_pgim": unmatched_pgim}


def write_captions(path: Path, texts: dict[str, str], order: list[str]) -> str:
    lines = [f"{image_id}.jpg :{texts[image_id]}\n" for image_id in order if image_id in texts]
    path.write_text("".join(lines), encoding="utf-8")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=Path("../shared/data/raw"))
    parser.add_argument("--out", type=Path, default=Path("data"))
    parser.add_argument("--max-skip", type=int, default=3, help="UMT rows a PGIM row may skip to find its twin")
    args = parser.parse_args()
    owl = read_owl(sorted((args.raw / "twitter-gmner" / "owl_image_caption").glob("owl*caption_1.txt")))
    for name, suffix in DATASETS.items():
        umt = {s: [(i, t) for i, t, _ in read_conll(args.out / name / f"{s}.txt", s)] for s in SPLITS}
        order = [i for s in SPLITS for i, _ in umt[s]]
        found = {i: owl[i] for i in order if i in owl}
        digest = write_captions(args.out / name / f"OWL_{suffix}.txt", found, order)
        print(f"{name} OWL: {len(found)} of {len(order)} image ids described; sha256 {digest}")
        contexts: dict[str, str] = {}
        with zipfile.ZipFile(args.raw / name / "pgim" / f"20{suffix}.zip") as zf:
            members = {Path(m).name: m for m in zf.namelist()}
            for split in SPLITS:
                rows = read_pgim_split(io.TextIOWrapper(zf.open(members[f"{split}.txt"]), "utf-8").read())
                result = align(umt[split], rows, args.max_skip)
                contexts |= result["pairs"]
                print(
                    f"{name} PGIM {split}: {len(rows)} rows, {len(result['pairs'])} aligned by tokens; "
                    f"UMT rows without a PGIM twin: {result['skipped_umt']}; "
                    f"PGIM rows without a UMT twin: {result['unmatched_pgim']}"
                )
        digest = write_captions(args.out / name / f"PGIM_{suffix}.txt", contexts, order)
        print(f"{name} PGIM: {len(contexts)} of {len(order)} tweets have a context; sha256 {digest}")


if __name__ == "__main__":
    main()

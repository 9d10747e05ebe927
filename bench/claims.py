"""The paper's claims, each with its verdict at each encoder size: ``reports/claims.md``, built from the records.

A claim is a difference of two rows on the same test episodes (MFNER − ProtoNet, MFNER − MFNER text
only, ...), or MFNER's own figure against the paper's. Per seed, A's F1 minus B's (both over one
episode file); the interval is a t-interval over those per-seed differences (it counts the training
seeds' spread, which an interval over episodes alone leaves out); with fewer than 3 seeds there is no
verdict. Verdict words: holds (interval above 0), reversed (below 0), not detectable (holds 0),
not run (no paired seeds).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from bench import paper
from bench.paired import seed_interval
from bench.plots import forest_figure, numbers_in
from bench.records import RESULTS_DIR, load_records, reports_dir_for, write_text_atomic
from fewshot_ner.datasets import short_name

TARGETS = ("twitter2015", "twitter2017")  # the fairer yardstick first (T17's paper cells saw SNAP)


@dataclass(frozen=True)
class Size:
    """One encoder size: where each claim's row lives (suite, record label)."""

    name: str
    rows: dict[str, tuple[str, str]]


MINILM = Size(
    "MiniLM-L6 (fp32)",
    {
        **{r: ("table3", r) for r in ("MFNER", "ProtoNet", "WPZ", "SpanNER", "BERT+CRF", "ITA", "BERT+CRF transfer")},
        "MFNER text only": ("ablations", "MFNER text only"),
        "MFNER fixed denoiser": ("ablations", "MFNER fixed denoiser"),
        **{f"{r} text+image": ("table6", f"{r} text+image") for r in ("ProtoNet", "WPZ", "SpanNER")},
    },
)
TAG = "@mpnet-base (bf16)"
BASE = Size(
    "mpnet-base (bf16)",
    {
        "MFNER": ("base", f"MFNER fast{TAG}"),
        **{r: ("base", f"{r}{TAG}") for r in ("ProtoNet", "WPZ", "SpanNER", "BERT+CRF", "BERT+CRF transfer")},
        "MFNER text only": ("base", f"MFNER fast text only{TAG}"),
        "MFNER fixed denoiser": ("base", f"MFNER fast fixed denoiser{TAG}"),
        **{f"{r} text+image": ("base", f"{r} text+image{TAG}") for r in ("ProtoNet", "WPZ", "SpanNER")},
    },
)
SIZES = (MINILM, BASE)
CLAIM_SUITES = frozenset(suite for size in SIZES for suite, _ in size.rows.values())

#: (claim, row A, row B, shots): A − B > 0 is the paper's claim; B None: A's own F1 against the paper's.
CLAIMS: tuple[tuple[str, str, str | None, tuple[int, ...]], ...] = (
    *((f"MFNER ahead of {b}", "MFNER", b, (1, 5)) for b in ("ProtoNet", "WPZ", "SpanNER", "BERT+CRF", "ITA")),
    ("image text helps MFNER (Table 4)", "MFNER", "MFNER text only", (1,)),
    ("the learned denoiser helps (Table 5)", "MFNER", "MFNER fixed denoiser", (1,)),
    *((f"image text helps {b} (Table 6)", f"{b} text+image", b, (1,)) for b in ("ProtoNet", "WPZ", "SpanNER")),
    ("beyond the paper: MFNER ahead of BERT+CRF transfer", "MFNER", "BERT+CRF transfer", (1, 5)),
    ("MFNER's own F1 reaches the paper's", "MFNER", None, (1, 5)),
)


def verdict(interval: tuple[float, float] | None, n: int, words: tuple[str, str] = ("holds", "reversed")) -> str:
    """``words[0]`` when the interval lies above 0, ``words[1]`` below, else not detectable."""
    if n == 0:
        return "not run"
    if interval is None:
        return f"too few seeds ({n})"
    lo, hi = interval
    return words[0] if lo > 0 else words[1] if hi < 0 else "not detectable"


def _records(results_dir: Path) -> pd.DataFrame:
    frames = [load_records(results_dir, s).assign(suite=s) for s in sorted(CLAIM_SUITES)]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _per_seed(rows: pd.DataFrame, where: tuple[str, str], target: str, k: int) -> pd.DataFrame:
    suite, label = where
    if rows.empty:
        return pd.DataFrame(columns=["seed", "f1", "episodes_sha256"])
    hit = rows[(rows.suite == suite) & (rows.label == label) & (rows.target == target) & (rows.k == k)]
    return hit[["seed", "f1", "episodes_sha256"]]


def _paired_differences(first: pd.DataFrame, second: pd.DataFrame) -> np.ndarray:
    """Per seed, the first row's F1 minus the second's, over the seeds both ran on the same episode file."""
    pairs = first.merge(second, on="seed", suffixes=("", "_b"))
    pairs = pairs[pairs.episodes_sha256 == pairs.episodes_sha256_b].sort_values("seed")
    return (pairs.f1 - pairs.f1_b).to_numpy()


def _line(diffs: np.ndarray, ahead: str, words: tuple[str, str]) -> tuple[str, str]:
    """(mean, seeds ahead, interval; verdict) of per-seed differences."""
    if len(diffs) == 0:
        return "-", "not run"
    interval = seed_interval(diffs)
    text = f"{diffs.mean():+.2f}, {int((diffs > 0).sum())}/{len(diffs)} {ahead}"
    if interval is not None:
        text += f", [{interval[0]:+.2f}, {interval[1]:+.2f}]"
    return text, verdict(interval, len(diffs), words)


def claim_line(rows: pd.DataFrame, size: Size, a: str, b: str | None, target: str, k: int) -> tuple[str, str]:
    """(ours: mean, seeds ahead, interval; verdict) for one claim at one size, target and K."""
    if a not in size.rows or (b is not None and b not in size.rows):
        return "-", "not run"
    first = _per_seed(rows, size.rows[a], target, k)
    if b is None:
        ref = paper.REPORTED.get((a, k), {}).get(target)
        if ref is None or first.empty:
            return "-", "not run"
        return _line(
            first.sort_values("seed").f1.to_numpy() - ref[0], "reach it", ("above the paper's", "below the paper's")
        )
    return _line(_paired_differences(first, _per_seed(rows, size.rows[b], target, k)), "ahead", ("holds", "reversed"))


def size_line(
    rows: pd.DataFrame, row: str, target: str, k: int, small: Size = MINILM, large: Size = BASE
) -> tuple[str, str]:
    """(large minus small: mean, seeds ahead, interval; verdict) for one row both sizes declare, on the same episodes."""
    first = _per_seed(rows, large.rows[row], target, k)
    return _line(_paired_differences(first, _per_seed(rows, small.rows[row], target, k)), "ahead", ("gains", "loses"))


#: Every row both sizes declare, in the order of the claims, with the shots its claims are made at.
SHARED_ROWS: dict[str, tuple[int, ...]] = {
    r: tuple(sorted({k for _, a, b, shots in CLAIMS if r in (a, b) for k in shots}))
    for r in BASE.rows
    if r in MINILM.rows
}


def size_table(rows: pd.DataFrame) -> pd.DataFrame:
    """What the base configuration buys each row: one line per row, K and target with paired seeds."""
    out = []
    for row, shots in SHARED_ROWS.items():
        for k in shots:
            for target in TARGETS:
                text, word = size_line(rows, row, target, k)
                if word != "not run":
                    out.append(
                        {
                            "row": row,
                            "K": k,
                            "target": short_name(target),
                            f"{BASE.name} − {MINILM.name}": text,
                            "verdict": word,
                        }
                    )
    return pd.DataFrame(out)


#: Verdicts that say which way a difference goes (a changed one of these is news); the rest say no verdict yet.
DECIDED = ("holds", "reversed", "not detectable", "above the paper's", "below the paper's")


def changed_verdicts(table: pd.DataFrame) -> list[str]:
    """One line per claim whose verdict at the base size differs from MiniLM's, both sizes decided."""
    lines = []
    for row in table.to_dict("records"):
        small, large = row[f"{MINILM.name}: verdict"], row[f"{BASE.name}: verdict"]
        if small in DECIDED and large in DECIDED and small != large:
            lines.append(
                f"{row['claim']}, K={row['K']} {row['target']}: {small} at {MINILM.name} ({row[MINILM.name]}), "
                f"{large} at {BASE.name} ({row[BASE.name]})"
            )
    return lines


def _paper_difference(a: str, b: str | None, target: str, k: int) -> str:
    pa = paper.REPORTED.get((a, k), {}).get(target)
    if b is None:
        return f"{pa[0]:.2f}" if pa else "-"
    pb = paper.REPORTED.get((b, k), {}).get(target)
    return f"{pa[0] - pb[0]:+.2f}" if pa and pb else "-"


def claims_table(results_dir: Path = RESULTS_DIR, rows: pd.DataFrame | None = None) -> pd.DataFrame:
    rows = _records(results_dir) if rows is None else rows
    out = []
    for claim, a, b, shots in CLAIMS:
        for k in shots:
            for target in TARGETS:
                line = {
                    "claim": claim,
                    "K": k,
                    "target": short_name(target),
                    "paper": _paper_difference(a, b, target, k),
                }
                for size in SIZES:
                    line[size.name], line[f"{size.name}: verdict"] = claim_line(rows, size, a, b, target, k)
                out.append(line)
    return pd.DataFrame(out)


INTRO = """# The paper's claims and their verdicts

Each line is one claim of the MFNER paper (or, marked, beyond it) at one target and K, at each encoder
size this harness ran: MiniLM-L6 in float32 (suites table3, ablations, table6) and all-mpnet-base-v2,
the paper's encoder size, in the base configuration (suite base: bf16 encoder, word embeddings frozen,
MFNER's fast profile). 'paper': the paper's difference of means (for the last claim, its F1). Ours: per
seed, A's F1 minus B's on the same test episodes; the mean over seeds, the seeds where A is ahead (or,
for the last claim, where MFNER reaches the paper's F1), and a 95% t-interval over the seeds (it counts
the spread between training seeds; an interval over test episodes alone does not). Verdict: holds
(interval above 0), reversed (below 0), not detectable (holds 0); for MFNER's own F1, above or below the
paper's; fewer than 3 seeds give no verdict.

Comparing with the paper: Twitter-2017 is a filtered subset of SNAP, and the paper's T17 cells trained
with SNAP among the sources, so its T17 figures saw near-copies of the test tweets; its T15 figures are
the fairer yardstick. SNAP is not to be had here: our T17 cells train on T15 alone, our T15 cells on T17.
The paper's BERT+CRF and ITA rows fine-tune on each support alone and score about 1 F1, so 'MFNER ahead
of BERT+CRF' is about that protocol; 'BERT+CRF transfer' trains on the source first.

Built by `bench report --suite claims` (and by every report of the suites it reads) from `results/`.

"""


def write_claims(results_dir: Path = RESULTS_DIR, reports_dir: Path | None = None) -> Path:
    reports_dir = reports_dir or reports_dir_for(results_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    rows = _records(results_dir)
    table = claims_table(results_dir, rows)
    body = tabulate(table, headers="keys", tablefmt="github", showindex=False, disable_numparse=True)
    path = reports_dir / "claims.md"
    figure = claims_forest(table, reports_dir / "figures" / "forest-claims.png")
    picture = f"\n![forest-claims](figures/{figure.name})\n" if figure else ""
    write_text_atomic(path, INTRO + body + "\n" + picture + _changed_section(table) + _size_section(rows))
    return path


def _changed_section(table: pd.DataFrame) -> str:
    lines = changed_verdicts(table)
    listed = "".join(f"- {line}\n" for line in lines) if lines else "None so far.\n"
    return (
        "\n## Verdicts that differ between the two sizes\n\n"
        f"Each claim above whose verdict at {BASE.name} is not its verdict at {MINILM.name}, both decided "
        "(3 seeds or more at each).\n\n" + listed
    )


def _size_section(rows: pd.DataFrame) -> str:
    table = size_table(rows)
    body = (
        tabulate(table, headers="keys", tablefmt="github", showindex=False, disable_numparse=True) + "\n"
        if not table.empty
        else "No row has run at both sizes on the same episodes yet.\n"
    )
    waiting = sum(len(shots) for shots in SHARED_ROWS.values()) * len(TARGETS) - len(table)
    return (
        "\n## What the base size buys each row\n\n"
        f"Per seed, a row's F1 at {BASE.name} minus the same row's at {MINILM.name}, on the same test episodes "
        "(the claims' rows; MFNER is its fast profile at the base size): the mean over seeds, the seeds where the "
        "base size is ahead, the 95% t-interval over seeds; verdict: gains (interval above 0), loses (below), not "
        "detectable. What it measures is the base configuration as a whole (the larger encoder, bf16, the word "
        "embeddings frozen), not the encoder alone; neither bf16 nor MFNER's fast profile moved F1 detectably "
        f"at MiniLM (docs/cost.md). {waiting} row, K and target line(s) have not run at both "
        "sizes yet and are left out.\n\n" + body
    )


def claims_forest(table: pd.DataFrame, path: Path) -> Path | None:
    """The forest plot of every difference claim that has seeds at some size (MFNER's own F1 left out)."""
    lines = []
    for row in table.to_dict("records"):
        if row["claim"].startswith("MFNER's own F1"):
            continue
        for size in SIZES:
            numbers = numbers_in(row[size.name])  # mean, then the interval's ends if there is one
            if not numbers:
                continue
            interval = f"[{numbers[1]:+.2f}, {numbers[2]:+.2f}]" if len(numbers) >= 3 else "too few seeds"
            name = f"K={row['K']} {row['target']}: {row['claim']} [{size.name}]"
            lines.append({"name": name, "mean": f"{numbers[0]:+.2f}", "interval": interval, "paper": row["paper"]})
    return forest_figure(pd.DataFrame(lines), "The paper's claims: ours (seeds) beside the paper's difference", path)

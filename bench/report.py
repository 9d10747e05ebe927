"""Result tables from the records of a suite: ours (mean ± std over seeds) beside the paper's."""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from bench import paper
from bench.breakdown import breakdown_table, scored_cells, type_table
from bench.cell import config_drift, drift_phrase
from bench.estimate import CELL_FILE
from bench.methods import METHODS
from bench.paired import AXIS_COLUMN, axis_table, declared_table, paired_table
from bench.plots import forest_figure, numbers_in, table_figure
from bench.records import RESULTS_DIR, label_folder, load_records, reports_dir_for, tidy, write_text_atomic
from bench.suites import HARNESS_OPTIONS, Suite
from bench.traces import suite_traces
from fewshot_ner.datasets import short_name
from fewshot_ner.defaults import DEFAULT_ENCODER
from fewshot_ner.method import ReportContext
from fewshot_ner.metrics import cell_table, summarize

PAPER_AVG_TARGETS = ("twitter2017", "twitter2015", "snap")  # the paper's Avg is over these three


def _fmt(mean: float, std: float) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "not run"
    return f"{mean:.2f}" if std is None or math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def suite_records(suite: Suite, results_dir: Path = RESULTS_DIR) -> pd.DataFrame:
    """The suite's records and those of the rows it includes from other suites, at every encoder and
    precision they ran (``MFNER``, ``MFNER@mpnet-base``, ``MFNER (bf16)``, ``MFNER@mpnet-base (bf16)``)."""
    rows = load_records(results_dir, suite.name)
    for other, label in suite.include:
        for pattern in (label_folder(label), f"{label_folder(label)}@*", f"{label_folder(label)}_(*)"):
            rows = pd.concat([load_records(results_dir, other, pattern), rows], ignore_index=True)
    return rows[rows.k.isin(suite.shots)].reset_index(drop=True) if not rows.empty else rows


def suite_table(suite: Suite, results_dir: Path = RESULTS_DIR, rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (K, label); a column per target and Avg, each 'ours' and 'paper'."""
    rows = suite_records(suite, results_dir) if rows is None else rows
    part = {"dev": "-dev", "fulldata": "-test"}.get(suite.protocol, "")  # the split a protocol scores
    targets = [f"{d}{part}" for d in suite.domains]
    out = []
    if rows.empty:
        return pd.DataFrame()
    stats = summarize(rows)
    # Avg over targets: per seed, the mean over every target that ran in this table (a row that
    # lacks one of them has no Avg), then mean and std over seeds. It is the paper's Avg only when
    # the paper's three targets ran; otherwise it is named by the targets it averages.
    ran = [t for t in targets if t in set(rows.target)]
    n_targets = len(ran)
    same_as_paper = set(ran) == set(PAPER_AVG_TARGETS)
    avg_name = "Avg" if same_as_paper else f"Avg ({', '.join(short_name(t) for t in ran)})"
    per_seed = rows.groupby(["label", "k", "seed"])["f1"].agg(["mean", "count"]).reset_index()
    row_of = rows.drop_duplicates("label").set_index("label")["row"] if "row" in rows else pd.Series(dtype=object)
    for label, k in rows[["label", "k"]].drop_duplicates().itertuples(index=False):
        row: dict[str, object] = {"K": k, "method": label}
        # the paper's figures beside its rows at the default encoder and image text, and beside a suite whose
        # rows all run another encoder (base: the paper's rows at the paper's encoder size)
        suite_row = row_of.get(label)
        ref = paper.REPORTED.get((label, k), {})
        if not ref and suite.encoder != DEFAULT_ENCODER and isinstance(suite_row, str):
            ref = paper.reported(suite_row, k)
        for t in targets:
            hit = stats[(stats.label == label) & (stats.k == k) & (stats.target == t)]
            short = short_name(t)
            row[short] = (
                _fmt(float(hit["mean"].iloc[0]), float(hit["std"].iloc[0])) + f" (n={int(hit['seeds'].iloc[0])})"
                if len(hit)
                else "not run"
            )
            if t in ref:
                row[f"{short} paper"] = _fmt(*ref[t])
        full = per_seed[(per_seed.label == label) & (per_seed.k == k) & (per_seed["count"] == n_targets)]
        std = float(full["mean"].std(ddof=1)) if len(full) > 1 else float("nan")
        if n_targets > 1:  # an average over one target is that target again
            row[avg_name] = _fmt(float(full["mean"].mean()), std) if len(full) else "not run"
        if "avg" in ref and same_as_paper:
            row["Avg paper"] = _fmt(*ref["avg"])
        out.append(row)
    table = pd.DataFrame(out)
    order = ["K", "method"] + [c for t in targets for c in (short_name(t), f"{short_name(t)} paper")]
    order += [avg_name, "Avg paper"]  # columns in this order whichever row comes first
    table = table[[c for c in order if c in table.columns]]
    # Rows in the suite's declared order (the paper's, for its tables), the rows it includes first; a row's
    # variants (another encoder, image text, precision) right after it, by label.
    declared = [label for _, label in suite.include] + [m.label for m in suite.methods]
    rank = {}
    for label in table["method"]:
        row = row_of.get(label)
        row = row if isinstance(row, str) else label.partition("@")[0].partition(" [")[0]
        rank[label] = declared.index(row) if row in declared else len(declared)
    table = table.assign(_rank=table["method"].map(rank))
    table = table.sort_values(["K", "_rank", "method"], kind="stable").drop(columns="_rank")
    return table.fillna("-")  # "-": the paper has no such row


def _whole_s(seconds: float) -> int | str:
    """Seconds rounded to whole ones; "-" where no record of the group has them (``times_partial``)."""
    return "-" if pd.isna(seconds) else round(float(seconds))


def _median_s(values: pd.Series | None) -> str:
    """Median seconds of the records that hold the field (records before version 2 lack predict_s)."""
    values = values.dropna() if values is not None else None
    return "-" if values is None or values.empty else str(round(float(values.median())))


def _machine_names(platforms: pd.Series) -> str:
    """Short names of the machines cells ran on, from their platform strings: the kernel release
    (``6.18.44-fc-v595`` of ``Linux-6.18.44-fc-v595-x86_64-with-glibc2.36``), which differs between the hosts
    this project runs on; the whole string where it has no such part."""

    def name(platform: str) -> str:
        found = re.match(r"^[^-]+-(.+?)-(?:x86_64|aarch64|arm64|AMD64|i\d86)(?:-|$)", platform)
        return found.group(1) if found else platform

    return ",".join(sorted({name(str(p)) for p in platforms.dropna()})) or "-"


def cost_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (K, label, target): cells, median and max wall time, peak memory, torch threads used, the machines the
    cells ran on (distinct platform strings: wall times compare within one); where some cell loaded its source
    training from the transfer cache, how many did (their fit time leaves that training out)."""
    if rows.empty:
        return pd.DataFrame()
    cached = "fit_cached" in rows and bool(rows.fit_cached.fillna(False).any())
    shared = "options" in rows and any(_step_tokens(o) for o in rows.options)

    def columns(grp: pd.DataFrame) -> dict[str, object]:
        threads = sorted({int(t) for t in grp.threads.dropna()})
        out: dict[str, object] = {
            "wall s (median)": _whole_s(grp.wall_s.median()),
            "wall s (max)": _whole_s(grp.wall_s.max()),
            "fit s (median)": _median_s(grp.get("fit_s")),
            "predict s (median)": _median_s(grp.get("predict_s")),
            "peak RSS GB (max)": round(float(grp.peak_rss_mb.max()) / 1024, 2),
            "threads": ",".join(map(str, threads)) or "-",
        }
        if "platform" in grp:
            out["machines"] = _machine_names(grp.platform)
        if cached:
            out["fit loaded from cache"] = int(grp.fit_cached.fillna(False).sum())
        if shared:
            out["step tokens"] = ",".join(str(n) for n in sorted({_step_tokens(o) for o in grp.options}))
        return out

    return cell_table(rows, columns, count="cells")


def _step_tokens(options: object) -> int:
    """A record's ``step_tokens`` option (0 where it has none: one encoder call per request)."""
    return int(options.get("step_tokens") or 0) if isinstance(options, dict) else 0


def _cost_section(rows: pd.DataFrame) -> str:
    if rows.empty:
        return ""
    table = cost_table(rows)
    cached = (
        "; 'fit loaded from cache': cells whose source training was read from the transfer cache that the same "
        "seed's first cell wrote, so their fit time leaves that training out"
        if "fit loaded from cache" in table
        else ""
    )
    shared = (
        "; 'step tokens': the largest encoder call, in padded sub-tokens, when a meta-training step's sentences "
        "were encoded once (0: one call per request; docs/cost.md), so compare times within one value"
        if "step tokens" in table
        else ""
    )
    return (
        "\n## Cost\n\nWall time of a cell (fit on the sources and predict every test episode) and the process's "
        f"peak resident memory, as the records give them; 'threads': torch's thread counts; 'machines': the hosts "
        "the cells ran on (each record's platform string, its kernel build): compare wall times within one machine, "
        f"since hosts differ in speed and in the load beside a cell{cached}{shared}.\n\n"
        + tabulate(table, headers="keys", tablefmt="github", showindex=False)
        + "\n"
    )


RESAMPLED = {  # what a protocol's paired bootstrap resamples (a full-data cell is one episode)
    "leave-one-out": "episodes",
    "fulldata": "the test split's sentences (each row's F1 recomputed from its kept predictions)",
}
SEEN_IN = {  # where a protocol's "seen" entity names come from: what its rows trained on
    "leave-one-out": "the source domains' data",
    "fulldata": "the target's own train and valid splits (what a full-data row trained on)",
}


def _differences(table: pd.DataFrame, notes: list[str]) -> str:
    """A table of paired differences and its notes; the signed differences stay text (parsed as
    numbers they would lose their "+")."""
    body = tabulate(table, headers="keys", tablefmt="github", showindex=False, disable_numparse=True)
    return body + "".join(f"\n- {n}" for n in notes) + "\n"


def _paired_section(suite: Suite, rows: pd.DataFrame, figures: Path) -> str:
    if suite.reference is None:
        return ""
    table, notes = paired_table(rows, suite.reference)
    if table.empty:
        return ""
    ref = suite.reference
    return (
        f"\n## Paired differences against {ref}\n\n"
        f"Per seed, {ref}'s F1 minus the variant's on the same test episodes (same episode file); mean ± std over "
        f"the seeds both ran, the seeds where {ref} is ahead, and {TWO_INTERVALS}. 'paper': the same difference "
        f"of the paper's means. An interval over seeds that holds 0 means these runs can't tell the two apart.\n\n"
        + _differences(table, notes)
        + _forest(
            table,
            [f"K={r.K} {r.target}: {ref} − {r.variant}" for r in table.itertuples()],
            f"{ref} − variant",
            f"{suite.name}: {ref} − each variant, per target and K",
            figures / f"forest-{suite.name}-reference.png",
        )
    )


TWO_INTERVALS = (
    "two 95% intervals: over seeds (a t-interval of the per-seed differences; it counts the training seeds' "
    "spread and the episode draw, and is the one to read; 'too few seeds' under 3) and over episodes only (a "
    "paired bootstrap within each seed, narrower because it leaves the seeds' spread out)"
)

AXIS_SECTIONS = {
    "encoder": (
        "Encoders",
        "Per seed, the F1 of a row run with another encoder minus the same row's on the default encoder, on "
        "the same test episodes; mean ± std over the seeds both ran, the seeds where the other encoder is "
        f"ahead, and {TWO_INTERVALS}.",
    ),
    "image_text": (
        "Image-text sources",
        "Per seed, the F1 of a row run with another image-text source minus the same row's on the default "
        "BLIP-2 captions, on the same test episodes; mean ± std over the seeds both ran, the seeds where the "
        f"other source is ahead, and {TWO_INTERVALS}. `owl`: long image "
        "descriptions for a subset of the images (the rest empty); `pgim`: language-model-written contexts "
        "prompted with the tweet and its caption, not captions; `none`: no image text.",
    ),
    "precision": (
        "Precision",
        "Per seed, the F1 of a row whose encoder ran in bfloat16 (autocast around the transformer, forward and "
        "backward; the CRF, losses, prototypes and optimizer state in float32) minus the same row's in float32, "
        f"on the same test episodes; mean ± std over the seeds both ran, the seeds where bf16 is ahead, and "
        f"{TWO_INTERVALS}.",
    ),
}


def _forest(table: pd.DataFrame, names: list[str], mean: str, title: str, path: Path) -> str:
    """The forest plot of a paired table (its mean, its interval over seeds, the paper's difference), embedded."""
    lines = pd.DataFrame(
        {
            "name": names,
            "mean": list(table[mean]),
            "interval": list(table["95% CI (seeds)"]),
            "paper": list(table["paper"]) if "paper" in table else ["-"] * len(table),
        }
    )
    figure = forest_figure(lines, title, path)
    return f"\n![{path.stem}](figures/{path.name})\n" if figure else ""


def _axis_section(rows: pd.DataFrame, axis: str, figures: Path, suite: str) -> str:
    """Rows run on another encoder or image-text source, each against its default twin."""
    table, notes = axis_table(rows, axis)
    if table.empty:
        return ""
    title, intro = AXIS_SECTIONS[axis]
    column = AXIS_COLUMN[axis]
    names = [f"K={r['K']} {r['target']}: {r['row']} {r[column]}" for r in table.to_dict("records")]
    forest = _forest(
        table, names, f"{column} − default", f"{suite}: {title.lower()}", figures / f"forest-{suite}-{axis}.png"
    )
    return f"\n## {title}\n\n{intro}\n\n" + _differences(table, notes) + forest


def _declared_section(suite: Suite, rows: pd.DataFrame, figures: Path) -> str:
    if not suite.pairs:
        return ""
    table, notes = declared_table(rows, suite.pairs)
    if table.empty:
        return ""
    return (
        "\n## Declared pairs\n\n"
        "Per seed, row A's F1 minus row B's on the same test episodes (the suite declares each pair: one method "
        "differing in one axis, or two methods a reader compares); mean ± std over the seeds both ran, the seeds where A is ahead, a 95% t-interval "
        "over the per-seed differences ('too few seeds' under 3), a 95% paired bootstrap over "
        f"{RESAMPLED.get(suite.protocol, RESAMPLED['leave-one-out'])} only, and the paper's "
        "difference of means where it has both rows.\n\n"
        + _differences(table, notes)
        + _forest(
            table,
            [f"K={r['K']} {r['target']}: {r['A']} − {r['B']}" for r in table.to_dict("records")],
            "A − B",
            f"{suite.name}: declared pairs",
            figures / f"forest-{suite.name}-pairs.png",
        )
    )


#: Each few-shot peer against the one below it in Few-NERD's published 1~2-shot order (A, B: A's lead).
FEWNERD_PAIRS = (("NNShot", "ProtoNet"), ("StructShot", "NNShot"), ("CONTaiNER", "StructShot"))


def fewnerd_table(rows: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The declared-pair table of ``FEWNERD_PAIRS`` with Few-NERD's difference in place of the paper's, and
    whether our interval over seeds orders the two rows as Few-NERD does."""
    tables, notes = [], []
    for a, b in FEWNERD_PAIRS:  # one pair at a time: each line's published difference is its pair's
        table, seen = declared_table(rows, ((a, b),))
        notes += seen
        if table.empty:
            continue
        published = [paper.FEWNERD_INTER_5WAY[(a, k)] - paper.FEWNERD_INTER_5WAY[(b, k)] for k in table["K"]]
        order = [_order_word(numbers_in(ci), d) for ci, d in zip(table["95% CI (seeds)"], published, strict=True)]
        tables.append(table.drop(columns="paper").assign(**{"Few-NERD": [f"{d:+.2f}" for d in published]}, order=order))
    return (pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()), notes


def _order_word(interval: list[float], published: float) -> str:
    """Whether an interval over seeds ([lo, hi], or none) lies on the side of a published difference."""
    if not interval:
        return "too few seeds"
    if all(x * published > 0 for x in interval):
        return "as Few-NERD"
    if all(x * published < 0 for x in interval):
        return "against Few-NERD"
    return "not detectable"


def _fewnerd_section(suite: Suite, rows: pd.DataFrame, figures: Path) -> str:
    table, notes = fewnerd_table(rows)
    if table.empty:
        return ""
    published = ", ".join(
        f"{m} {paper.FEWNERD_INTER_5WAY[(m, 1)]:.2f} / {paper.FEWNERD_INTER_5WAY[(m, 5)]:.2f}"
        for m in ("ProtoNet", "NNShot", "StructShot", "CONTaiNER")
    )
    return (
        "\n## The few-shot peers beside Few-NERD's published order\n\n"
        "Few-NERD (inter, 5-way; 1~2 shot / 5~10 shot, F1 as published; ProtoNet is its ProtoBERT): "
        f"{published} (Ding et al. 2021; CONTaiNER: Das et al. 2022). Each peer against the one below it in the "
        "1~2-shot order, paired as the declared pairs are; 'Few-NERD': the same difference of the published "
        "figures (our K=1 beside 1~2 shot, K=5 beside 5~10 shot); order: as Few-NERD (our interval over seeds "
        "on the side of its difference), against Few-NERD (on the other side), not detectable (it holds 0). "
        "Wikipedia with 66 fine types is not tweets with 4 types: the order is what may carry over, not the "
        "figures.\n\n" + _differences(table, notes)
    )


def published_table(suite: Suite, rows: pd.DataFrame) -> pd.DataFrame:
    """The ``fulldata`` rows (mean ± std over seeds) and the published full-data figures, a column per target;
    each published row also gives our best row minus it, best among the rows with the most seeds on that
    target (a row run on one seed so far does not stand for the ceiling)."""
    if suite.protocol != "fulldata" or rows.empty:
        return pd.DataFrame()
    stats = summarize(rows)
    targets = [d for d in suite.domains if f"{d}-test" in set(rows.target)]
    out: list[dict[str, object]] = []
    ours: dict[str, list[tuple[int, float]]] = {}  # per target: (seeds, mean) of each of our rows
    for label in dict.fromkeys(rows.label):
        row: dict[str, object] = {"row": f"{label} (ours)"}
        for t in targets:
            hit = stats[(stats.label == label) & (stats.target == f"{t}-test")]
            if len(hit):
                mean, std, n = float(hit["mean"].iloc[0]), float(hit["std"].iloc[0]), int(hit["seeds"].iloc[0])
                row[short_name(t)] = _fmt(mean, std) + f" (n={n})"
                ours.setdefault(t, []).append((n, mean))
        out.append(row)
    best = {t: max(mean for n, mean in runs if n == max(runs)[0]) for t, runs in ours.items()}
    for name, figures in paper.FULLDATA_PUBLISHED.items():
        row = {"row": f"{name} (published)"}
        for t in targets:
            ref = figures.get(t)
            row[short_name(t)] = f"{ref:.2f} (ours best {best[t] - ref:+.2f})" if ref is not None and t in best else "-"
        out.append(row)
    return pd.DataFrame(out).fillna("not run")


def _published_section(suite: Suite, rows: pd.DataFrame) -> str:
    table = published_table(suite, rows)
    if table.empty:
        return ""
    return (
        "\n## Beside the published full-data figures\n\n"
        "Our rows (the whole test split scored at once, mean ± std over seeds) and the full-data F1 that "
        "multimodal NER papers report on the same splits with larger encoders (BERT-base or bigger, and "
        "images); 'ours best': our best row's mean (among the rows with the most seeds on that target) minus the published figure. These are other papers' "
        "numbers, not runs of this harness.\n\n"
        + tabulate(table, headers="keys", tablefmt="github", showindex=False, disable_numparse=True)
        + "\n"
    )


def _breakdown_section(suite: Suite, rows: pd.DataFrame) -> str:
    scored = scored_cells(rows)
    table = breakdown_table(scored)
    if table.empty:
        return ""
    types = type_table(scored)
    return (
        "\n## Strict and lenient; seen and unseen entities\n\n"
        "Rescored from the predictions the records keep (rows whose records predate that are left out). "
        "Strict: seqeval strict IOB2, what every table here uses; lenient: seqeval's conlleval mode, where an "
        "orphan I-X opens an entity (what a token-wise decoder means by it); the gap is what strictness costs "
        "a row. Seen: query entities (and predictions) whose exact words occur as an entity of the same type in "
        f"{SEEN_IN.get(suite.protocol, SEEN_IN['leave-one-out'])} (OTHER = MISC); micro F1 over a cell's episodes, "
        "mean ± std over seeds; "
        "'% gold seen': the share of gold query entities that are seen; 'predicted / gold': the entities a row "
        "predicted over the gold ones (mean over seeds; near 0, a row that tags nearly everything O; above 1, one "
        "that predicts more entities than there are).\n\n"
        + tabulate(table, headers="keys", tablefmt="github", showindex=False, disable_numparse=True)
        + "\n\n## Entity types\n\n"
        "Strict F1 of each entity type, from the same predictions: micro over a cell's episodes, mean ± std over "
        "seeds; Twitter-2015's OTHER is counted as MISC so the two targets share columns.\n\n"
        + tabulate(types, headers="keys", tablefmt="github", showindex=False, disable_numparse=True)
        + "\n"
    )


def _suite_names() -> tuple[str, ...]:
    from bench.suites import SUITES

    return tuple(name for name, _ in SUITES.items())


def _method_sections(suite: Suite, rows: pd.DataFrame, results_dir: Path, reports_dir: Path) -> str:
    """Sections that methods contribute through ``FewShotMethod.report_sections`` (MFNER: denoiser, cases)."""
    if rows.empty:
        return ""
    traces = suite_traces(results_dir, suite.name, suite.include)
    out = []
    for method in sorted(set(rows.method)):
        if method not in METHODS:
            continue
        labels = set(rows.label[rows.method == method])
        mine = [(p, f) for p, f in traces if not f.empty and f.label.iloc[0] in labels]
        context = ReportContext(suite.name, suite.trace_episodes, mine, reports_dir / "figures", _suite_names())
        out += [f"\n## {title}\n\n{body}" for title, body in METHODS.get(method).report_sections(context)]
    return "".join(out)


def including_suites(suite: Suite) -> list[Suite]:
    """The suites whose reports show rows of ``suite`` (their ``include``): rebuilt with it, so a new
    table3 record never leaves table6's or the ablations' report stale."""
    from bench.suites import SUITES

    return [other for _, other in SUITES.items() if any(name == suite.name for name, _ in other.include)]


def _flagged_note(rows: pd.DataFrame, column: str, what: str) -> str:
    """A line counting the records whose boolean ``column`` is set, by label: "2 of 9 records <what>: A (1), B (1)"."""
    if rows.empty or column not in rows or not rows[column].any():
        return ""
    flagged = rows[rows[column]]
    labels = ", ".join(f"{label} ({n})" for label, n in flagged.groupby("label").size().items())
    return f"{len(flagged)} of {len(rows)} records {what}: {labels}.\n\n"


def _dirty_note(rows: pd.DataFrame) -> str:
    """The records run from a tree whose code differed from its commit (their records list the changed paths and a
    hash of the difference), so a reader knows which cells no commit reproduces exactly."""
    what = "were run from a tree with uncommitted code changes (each record's `git.dirty_files` names them)"
    return _flagged_note(rows, "dirty", what)


SET_TAG = re.compile(r"(?:^|,)([A-Za-z_]\w*)=")  # the option names of a row label's --set tag, "MFNER[a=1,b=x]"


def declared_options(
    row: str, method: str, folder_suite: str, file_name: str, options: dict, quick: bool = False
) -> dict | None:
    """The method options a record's row asks now: its suite's declaration, the options its (target, K) block adds,
    the method's ``--quick`` budget for a quick record, and the values of the options its label's ``--set`` tag
    names; None where no suite declares the row."""
    from bench.suites import SUITES

    match = CELL_FILE.match(file_name)
    if folder_suite not in SUITES or match is None:
        return None
    suite = SUITES.get(folder_suite)
    base, tag = row, ""
    if row.endswith("]") and "[" in row and not any(spec.label == row for spec in suite.methods):
        base, tag = row[:-1].split("[", 1)
    specs = [spec for spec in suite.methods if spec.label == base and spec.method == method]
    if not specs:
        return None
    spec = suite.cell_spec(specs[0], match["target"].split("-from-")[0], int(match["k"]))
    declared = {k: v for k, v in spec.options.items() if k not in HARNESS_OPTIONS}
    budget = METHODS.get(method).quick_options() if quick else {}
    return declared | budget | {k: options[k] for k in SET_TAG.findall(tag) if k in options}


def _stale_note(rows: pd.DataFrame) -> str:
    """The records whose configuration their row no longer declares (``config_drift``): a table row mixing two
    configurations is said, key by key; ``bench run`` reruns such a cell and keeps the old record aside."""
    if rows.empty or "config" not in rows:
        return ""
    drifts: dict[str, Counter[str]] = {}  # label -> drift_phrase -> records
    stale = 0
    for rec in rows.itertuples(index=False):
        path = Path(rec.path)
        options = rec.options if isinstance(rec.options, dict) else {}
        if not isinstance(rec.row, str) or rec.method not in METHODS:
            continue
        quick = getattr(rec, "quick", False) is True  # a missing field reads None (or NaN), not quick
        declared = declared_options(rec.row, rec.method, path.parent.parent.name, path.name, options, quick)
        if declared is None:
            continue
        record = {"method": rec.method, "config": rec.config, "options": options, "encoder": rec.encoder}
        drift = config_drift(record, rec.method, declared)
        stale += bool(drift)
        for key, (had, now) in drift.items():
            drifts.setdefault(rec.label, Counter())[drift_phrase(key, had, now)] += 1
    if not stale:
        return ""
    said = "; ".join(
        f"{label}: " + ", ".join(f"{what} ({n} record{'s' * (n > 1)})" for what, n in by.items())
        for label, by in drifts.items()
    )
    return (
        f"{stale} of {len(rows)} records ran another configuration than their row declares now (stale: `bench run` "
        f"reruns such a cell and keeps the old record as `<name>.stale`): {said}.\n\n"
    )


def _resumed_note(rows: pd.DataFrame) -> str:
    """The records whose training went on from a checkpoint of an earlier process (bit for bit the same weights;
    their ``resumed`` field gives the step and the commit that began the cell)."""
    what = (
        "resumed their training from a checkpoint that an earlier process saved (each record's `resumed` gives "
        "the step and the commit that began it)"
    )
    return _flagged_note(rows, "resumed", what)


def write_reports(suite: Suite, results_dir: Path = RESULTS_DIR) -> list[Path]:
    """The suite's report, then those of the suites including its rows, then the claims if it feeds them."""
    from bench.claims import CLAIM_SUITES, write_claims

    paths = [write_report(s, results_dir) for s in [suite, *including_suites(suite)]]
    if suite.name in CLAIM_SUITES:
        paths.append(write_claims(results_dir))
        write_index(reports_dir_for(results_dir))  # the front page shows the claims
    return paths


def write_report(suite: Suite, results_dir: Path = RESULTS_DIR, reports_dir: Path | None = None) -> Path:
    """``<reports>/<suite>.md`` (and case figures) from the suite's records; returns its path."""
    reports_dir = reports_dir or reports_dir_for(results_dir)
    rows = suite_records(suite, results_dir)
    table = suite_table(suite, results_dir, rows)
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"{suite.name}.md"
    body = (
        tabulate(table, headers="keys", tablefmt="github", showindex=False) if not table.empty else "(no results yet)"
    )
    n = len(rows)
    figures = reports_dir / "figures"
    paired = (
        _paired_section(suite, rows, figures)
        + _declared_section(suite, rows, figures)
        + _fewnerd_section(suite, rows, figures)
    )
    figure = table_figure(
        rows,
        f"{suite.name}: entity F1 per row, ours beside the paper's",
        reports_dir / "figures" / f"table-{suite.name}.png",
        order=list(table["method"]) if not table.empty else None,
    )
    figure_md = f"\n![{suite.name}](figures/{figure.name})\n" if figure else ""
    write_text_atomic(path.with_suffix(".csv"), tidy(rows, suite.name).to_csv(index=False, lineterminator="\n"))
    write_text_atomic(
        path,
        f"# Suite `{suite.name}`\n\n{suite.description}\n\n"
        f"Entity F1 (seqeval strict IOB2) per episode, averaged over a target's episodes; mean ± sample std "
        f"over seeds (n = seeds that ran). Avg: per seed, the mean over the targets that ran (a row missing one of them has none); it is named by its targets unless they are the paper's three (T17, T15, SNAP), and only then does the paper's Avg stand beside it; 'not run' where a target "
        f"(SNAP needs a user-given folder) or method has no results. Paper columns: SPEC section 6. "
        f"Comparing with the paper: Twitter-2017 is a filtered subset of SNAP, and the paper's T17 cells trained with SNAP "
        f"among the sources, so its T17 figures saw near-copies of the test tweets; its T15 figures are the fairer yardstick.\n\n"
        f"{body}\n\n"
        + _dirty_note(rows)
        + _resumed_note(rows)
        + _stale_note(rows)
        + (
            "One scoring per target and seed: its whole test split at once (seqeval over every sentence)"
            if suite.protocol == "fulldata"
            else f"Test episodes per target: at most {suite.max_episodes}"
            + (f", the first {suite.eval_episodes} scored" if suite.eval_episodes else "")
        )
        + f". Built from {n} record(s) under `{results_dir.name}/{suite.name}/` by `bench report --suite {suite.name}`; "
        f"each record holds its command, seed, git commit, environment and episode hash.\n"
        + figure_md
        + _published_section(suite, rows)
        + paired
        + _axis_section(rows, "encoder", figures, suite.name)
        + _axis_section(rows, "image_text", figures, suite.name)
        + _axis_section(rows, "precision", figures, suite.name)
        + _breakdown_section(suite, rows)
        + _cost_section(rows)
        + _method_sections(suite, rows, results_dir, reports_dir),
    )
    write_index(reports_dir)
    return path


def write_index(reports_dir: Path) -> Path:
    """``reports/README.md``: every report and figure there, and the command that rebuilds each."""
    from bench.suites import SUITES

    lines = [
        "# Reports",
        "",
        "Built from the records under `results/`; never edited by hand. `tests/test_committed_reports.py` rebuilds",
        "each report and fails if the committed one differs. Every table uses seqeval's strict IOB2 entity F1, states",
        "n (the seeds that ran) per cell and its suite's episode cap (200 test episodes per target unless said).",
        "Comparing with the paper: Twitter-2017 is a filtered subset of SNAP, and the paper's T17 cells trained with",
        "SNAP among the sources, so its T17 figures saw near-copies of the test tweets; its T15 figures are the fairer",
        "yardstick.",
        "",
    ]
    headline = reports_dir / "table3.md"
    if headline.exists():  # the front page: Table 3 beside the paper's, then the claims and their verdicts
        text = headline.read_text()
        table = re.search(r"^\|   K \|.*?(?=\n\n)", text, re.S | re.M)
        if table:
            lines += ["## Table 3 (from [table3.md](table3.md))", "", table.group(0), ""]
            if (reports_dir / "figures" / "table-table3.png").exists():
                lines += ["![table3](figures/table-table3.png)", ""]
    claims = reports_dir / "claims.md"
    if claims.exists():
        lines += [
            "## The paper's claims (from [claims.md](claims.md))",
            "",
            "Each claim's verdict at MiniLM and at mpnet-base, from a 95% t-interval over seeds; the table and its",
            "reading are in [claims.md](claims.md).",
            "",
        ]
        if (reports_dir / "figures" / "forest-claims.png").exists():
            lines += ["![claims](figures/forest-claims.png)", ""]
    lines += ["## Every report", "", "| report | what | rebuild |", "|---|---|---|"]
    for path in sorted(reports_dir.glob("*.md")):
        if path.name == "README.md":
            continue
        what = SUITES.get(path.stem).description if path.stem in SUITES else ""
        what = what or ("the paper's claims and their verdicts" if path.stem == "claims" else "")
        extra = f", [{path.stem}.csv]({path.stem}.csv)" if path.with_suffix(".csv").exists() else ""
        lines.append(f"| [{path.name}]({path.name}){extra} | {what} | `bench report --suite {path.stem}` |")
    figures = sorted((reports_dir / "figures").glob("*.png"))
    if figures:
        lines += ["", "Figures (`figures/`), rebuilt with their suite's report:", ""]
        lines += [f"- [{f.name}](figures/{f.name})" for f in figures]
    index = reports_dir / "README.md"
    write_text_atomic(index, "\n".join(lines) + "\n")
    return index

"""One cell of a suite: its plan (everything decided before it runs) and its run (fit on the sources, score the
target's episodes).

``plan_cell`` decides once, per selected cell, its row label, record file, scored and source domains, method
options, precision and episode limits: a ``CellPlan``. ``run_cell(plan, ...)`` runs one; the serial loop and
``--dry-run`` (``bench.runner``), a Dask worker (``bench.cluster``) and ``bench check`` (``bench.check``) all take
plans, so neither of them decides any of it again, and none imports another at run time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from bench.allocator import keep_freed_memory
from bench.methods import METHODS
from bench.records import RESULTS_DIR, git_state, peak_rss_mb, record_path, write_text_atomic
from bench.suites import HARNESS_OPTIONS, Cell, Suite, quick_train_episodes
from fewshot_ner.datasets import (
    DEFAULT_IMAGE_TEXT,
    Domain,
    dev_split,
    episode_sentences,
    image_text_name,
    split_part,
)
from fewshot_ner.encoder import DEFAULT_ENCODER, DEFAULT_PRECISION, check_precision, encoder_depth
from fewshot_ner.episodes import EpisodeSet, cached_episodes
from fewshot_ner.method import RunContext, SourceTask
from fewshot_ner.metrics import encode_tags, episode_f1, mean_over_episodes, type_counts
from fewshot_ner.paths import cache_dir


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class RunOptions:
    results_dir: Path = RESULTS_DIR
    device: str = "cpu"
    encoder: str = DEFAULT_ENCODER
    snap_dir: str | None = None
    image_text: str = DEFAULT_IMAGE_TEXT  # a source of IMAGE_TEXT_SOURCES or a captions file's path
    force: bool = False
    only_methods: tuple[str, ...] = ()
    overrides: dict[str, Any] = field(default_factory=dict)  # method options replaced for this run (--set)
    only_targets: tuple[str, ...] = ()
    seeds: tuple[int, ...] | None = None
    shots: tuple[int, ...] | None = None
    eval_episodes: int | None = None
    train_episodes: int | None = None  # source episodes per domain (None: the suite's)
    quick: bool = False  # each method's quick_options on top of its options (a fixed small training budget)
    progress: bool = True
    command: list[str] | None = None
    include: tuple[str, ...] = ()  # plugin files or folders (--include): a Dask worker imports them too
    log: list[str] = field(default_factory=list)
    say: Callable[[str], None] | None = None  # where log lines go as they happen (the CLI prints them)
    backend: str = "local"  # local: cells in this process; dask: on a Dask cluster (bench/cluster.py)
    scheduler: str | None = None  # a Dask scheduler address; None with dask: a local cluster of `jobs` workers
    jobs: int = 2
    before_cell: Callable[[Cell], None] | None = None  # runs on the worker before a dask cell (tests use it)

    def note(self, line: str) -> None:
        if line in self.log:
            return
        self.log.append(line)
        if self.say is not None:
            self.say(line)


def row_label(
    label: str, encoder: str, image_text: str = DEFAULT_IMAGE_TEXT, precision: str = DEFAULT_PRECISION
) -> str:
    """A table row's label: the suite's, tagged with the encoder, the image-text source and the precision
    unless they are the defaults (``MFNER@mpnet-base``, ``MFNER [owl]``, ``MFNER [file:captions.txt]``,
    ``MFNER fast@mpnet-base (bf16)``)."""
    label = label if encoder == DEFAULT_ENCODER else f"{label}@{Path(encoder).name}"
    label = label if image_text == DEFAULT_IMAGE_TEXT else f"{label} [{image_text_name(image_text)}]"
    return label if precision == DEFAULT_PRECISION else f"{label} ({precision})"


def cell_label(cell: Cell, opts: RunOptions) -> str:
    """The row label of a cell's record: its suite row tagged with the run's encoder, image text, precision."""
    return row_label(cell.spec.label, opts.encoder, opts.image_text, split_options(cell.spec.options)[1])


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A row's options as (the method's options, the precision); an unknown precision fails here."""
    method_options = {k: v for k, v in options.items() if k not in HARNESS_OPTIONS}
    return method_options, check_precision(options.get("precision", DEFAULT_PRECISION))


def config_drift(record: dict[str, Any], method: str, method_options: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Where a finished record's configuration differs from what ``method`` with ``method_options`` gives now:
    {key: (the record's, now)}; empty where the record is current.

    Compared with the method's defaults filled in (``resolved_config``), so options that only spell out a
    default are the same and a default that moved since is not; ``"all"`` and the encoder's depth are one
    ``*train_layers``. A key the record's ``config`` lacks (an option added since, whose default keeps the old
    arithmetic) is not compared. For a method that can't resolve its options, the options as given are.
    """
    if record.get("method") not in (None, method):
        return {"method": (record.get("method"), method)}
    resolved = METHODS.get(method).resolved_config(method_options)
    if resolved is None:
        had, now = record.get("options") or {}, method_options
        keys = set(had) | set(now)
    else:
        had, now = record.get("config") or {}, json.loads(json.dumps(resolved, default=str))  # as a record reads
        keys = set(had) & set(now)
    depth = encoder_depth(record.get("encoder") or DEFAULT_ENCODER)

    def layers(key: str, value: Any) -> Any:  # 6 and "all" are one choice at MiniLM
        return depth if key.endswith("train_layers") and value == "all" and depth is not None else value

    return {k: (had.get(k), now.get(k)) for k in sorted(keys) if layers(k, had.get(k)) != layers(k, now.get(k))}


def drift_phrase(key: str, had: Any, want: Any) -> str:
    """One stale key in the words the runner's log, ``bench check`` and the reports all use."""
    return f"{key} {had!r} where the row asks {want!r}"


def describe_drift(drift: dict[str, tuple[Any, Any]]) -> str:
    """A ``config_drift`` result as one phrase: ``similarity 'dot' where the row asks 'euclidean', ...``."""
    return ", ".join(drift_phrase(k, had, want) for k, (had, want) in sorted(drift.items()))


@dataclass(frozen=True)
class CellPlan:
    """One selected cell with everything about it decided: what ``run_cell`` runs and what a record is filed as.

    Domains are named, not held: a Dask worker loads them by name (``domains``), as the local loop looks them up.
    """

    cell: Cell
    suite: Suite
    label: str  # the record's row label: the suite's, tagged with a non-default encoder, image text, precision
    path: Path  # the record file
    sources: tuple[str, ...]  # the domains it trains on (leave-one-out, or the target's train split)
    method_options: dict[str, Any]  # the row's options for the method (its quick_options on top under --quick)
    precision: str
    eval_limit: int | None  # score the first N test episodes (None: every one)
    train_episodes: int | None  # source episodes per domain (None: all the suite gives)

    def domains(self, by_name: dict[str, Domain]) -> tuple[Domain, list[Domain]]:
        """The domain this cell is scored on and those it trains on, from the loaded domains."""
        return cell_domains(self.suite, self.cell.target, by_name)

    def context(self, opts: RunOptions) -> RunContext:
        return RunContext(
            seed=self.cell.seed,
            device=opts.device,
            encoder=opts.encoder,
            progress=opts.progress,
            image_text=opts.image_text,
            precision=self.precision,
            checkpoint=self.checkpoint(opts),
        )

    def checkpoint(self, opts: RunOptions) -> Path:
        """Where this cell's training loop keeps its state while it runs (the cache, not the results): named by
        the record it will become and everything that decides its training, so only the same cell resumes it."""
        decides = {
            "record": str(self.path.resolve()),
            "options": self.method_options,
            "precision": self.precision,
            "encoder": opts.encoder,
            "image_text": opts.image_text,
            "device": opts.device,
            "train_episodes": self.train_episodes,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        }
        digest = hashlib.sha256(json.dumps(decides, sort_keys=True, default=str).encode()).hexdigest()[:32]
        return cache_dir() / "checkpoints" / f"{digest}.pt"


def plan_cell(cell: Cell, suite: Suite, by_name: dict[str, Domain], opts: RunOptions) -> CellPlan:
    """Decide everything about ``cell`` once: an unknown precision or method option fails here."""
    method_options, precision = split_options(cell.spec.options)
    cls = METHODS.get(cell.spec.method)
    cls.check_options(method_options)  # a bad option fails before any fit
    label = cell_label(cell, opts)
    sources = tuple(d.name for d in cell_domains(suite, cell.target, by_name)[1])
    return CellPlan(
        cell=cell,
        suite=suite,
        label=label,
        path=record_path(opts.results_dir, suite.name, label, cell.target, cell.k, cell.seed, list(sources)),
        sources=sources,
        method_options={**method_options, **(cls.quick_options() if opts.quick else {})},
        precision=precision,
        # fulldata: one "episode", the whole test split scored at once; no episode limit applies
        eval_limit=None if suite.protocol == "fulldata" else opts.eval_episodes or suite.eval_episodes,
        train_episodes=opts.train_episodes
        or (quick_train_episodes(cell.k) if opts.quick else None)
        or suite.train_episodes,
    )


def run_cell(plan: CellPlan, by_name: dict[str, Domain], opts: RunOptions) -> tuple[dict, list[dict]]:
    """Fit the method on the plan's sources, predict every test episode of its target, score it.

    The method sees each test episode as a ``TestEpisode`` (query without gold tags); scoring
    happens here. Returns the record and the method's per-token traces (if it traces) of the first
    ``suite.trace_episodes`` test episodes, with the gold tag added by the harness.
    """
    keep_freed_memory()  # the process's allocator, for every caller (the serial loop, a Dask worker, bench check)
    t0, cpu0 = time.perf_counter(), time.process_time()
    cell, suite, limit = plan.cell, plan.suite, plan.eval_limit
    target, sources = plan.domains(by_name)
    if suite.protocol == "fulldata":
        test_set = EpisodeSet.whole(target)
        episodes = test_set.materialize(target)
        train_sets = {}
    else:
        test_set = cached_episodes(target, cell.k, cell.seed, suite.max_episodes, "test")
        episodes = test_set.materialize(target, limit)
        train_sets = {d.name: cached_episodes(d, cell.k, cell.seed, None, "train") for d in sources}
    asked = min(limit, len(test_set.episodes)) if limit else len(test_set.episodes)
    seed_everything(cell.seed)
    options, precision = plan.method_options, plan.precision
    ctx = plan.context(opts)
    checkpoint = ctx.checkpoint
    assert checkpoint is not None  # plan.context names one for every cell
    if checkpoint.is_file():
        opts.note(f"{plan.label} {cell.target} K={cell.k} seed={cell.seed}: resumes from its checkpoint")
    began = _began(checkpoint)
    method = METHODS.get(cell.spec.method)(ctx, **options)
    tasks = [
        SourceTask(d, train_sets[d.name].materialize(d, plan.train_episodes)) if d.name in train_sets else SourceTask(d)
        for d in sources
    ]
    method.fit(tasks)
    fit_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    # a quick cell readies only the sentences it scores (a frozen floor would embed the whole target otherwise)
    method.prepare(episode_sentences(target, episodes) if opts.quick else target)
    f1s, lenient, predictions = [], [], []  # predictions: per episode, per query sentence, encode_tags of the tags
    per_type: dict[str, list[int]] = {}  # strict [tp, predicted, gold] per entity type over the cell
    desc = f"{cell.spec.label} {target.spec.short} {cell.k}-shot s{cell.seed}"
    for ep in tqdm(episodes, desc=desc, disable=not opts.progress, unit="ep", leave=False):
        pred = method.predict(ep.for_prediction())
        gold = [s.tags for s in ep.query]
        f1s.append(episode_f1(gold, pred))
        lenient.append(episode_f1(gold, pred, lenient=True))
        for etype, c in type_counts(gold, pred).items():
            per_type[etype] = [a + b for a, b in zip(per_type.get(etype, [0, 0, 0]), c, strict=True)]
        predictions.append([encode_tags(p, ep.labels) for p in pred])
    predict_s = time.perf_counter() - t1
    traces = []
    for ep in episodes[: suite.trace_episodes]:
        for row in method.trace(ep.for_prediction()):
            gold = ep.query[row["sentence"]].tags[row["word"]]
            traces.append({"episode": ep.index, "gold": gold} | row)
    record = {
        "suite": suite.name,
        "label": plan.label,
        "row": cell.spec.label,
        "method": cell.spec.method,
        "options": options,
        "quick": opts.quick,
        "config": method.config(),
        "input": method.input,
        "encoder": opts.encoder,
        "precision": precision,
        "image_text": opts.image_text,
        "target": target.name,
        "sources": [d.name for d in sources],
        "k": cell.k,
        "seed": cell.seed,
        "n_episodes": len(f1s),
        "n_episodes_asked": limit,
        "max_episodes": suite.max_episodes,
        "f1": mean_over_episodes(f1s),
        "f1_per_episode": f1s,
        "f1_lenient_per_episode": lenient,
        "type_counts": per_type,
        "predictions": predictions,
        "episodes_sha256": test_set.sha256,
        "train_episodes_sha256": {n: s.sha256 for n, s in train_sets.items()},
        "train_episodes_used": {t.domain.name: len(t.episodes) for t in tasks},
        "data_sha256": {d.name: d.data_hash for d in [target, *sources]},
        "device": opts.device,
        "fit_s": round(fit_s, 3),
        "predict_s": round(predict_s, 3),
        "wall_s": round(time.perf_counter() - t0, 3),
        # CPU seconds of every thread of this process: unlike wall_s, not inflated by load beside the cell
        "cpu_s": round(time.process_time() - cpu0, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "fit_report": method.fit_report(),
    }
    if limit and asked < limit:
        record["warning"] = f"{target.name} gives {asked} test episodes at K={cell.k}, fewer than the {limit} asked"
    fit = record["fit_report"] or {}
    if "resumed_at_step" in fit:  # its training went on from a checkpoint an earlier process saved
        earlier_s, earlier_cpu_s = fit.get("earlier_train_s"), fit.get("earlier_train_cpu_s")
        record["resumed"] = began | {"at_step": fit["resumed_at_step"], "earlier_train_s": earlier_s}
        if earlier_s is not None:  # the cell's times count the training done before the cut (not the lost part)
            record["resumed"]["earlier_train_cpu_s"] = earlier_cpu_s
            for key, extra in (("fit_s", earlier_s), ("wall_s", earlier_s), ("cpu_s", earlier_cpu_s)):
                record[key] = round(record[key] + extra, 3)
    checkpoint.unlink(missing_ok=True)
    checkpoint.with_suffix(".json").unlink(missing_ok=True)
    return record, traces


def _began(checkpoint: Path) -> dict[str, Any]:
    """Who began the cell: the note an earlier process left beside its checkpoint, or this process (a fresh start:
    its note is written there for a later one to find); both unknown where a checkpoint has lost its note."""
    note = checkpoint.with_suffix(".json")
    if checkpoint.is_file():
        return json.loads(note.read_text()) if note.is_file() else {"began": None, "git": None}
    began = {"began": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "git": git_state()}
    note.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(note, json.dumps(began))
    return began


def cell_domains(suite: Suite, target: str, by_name: dict[str, Domain]) -> tuple[Domain, list[Domain]]:
    """The domain a cell is scored on and those it trains on: leave-one-out (every other domain of
    the suite), or the probe protocol (the domain's train split -> its valid split)."""
    if suite.protocol == "dev":
        train, dev = dev_split(by_name[target])
        return dev, [train]
    if suite.protocol == "fulldata":  # supervised: the target's train split (and valid, to stop) -> its test split
        domain = by_name[target]
        return split_part(domain, "test", "test"), [split_part(domain, s, s) for s in ("train", "valid")]
    sources = [d for name, d in by_name.items() if name != target]
    if not sources:
        raise ValueError(f"leave-one-out needs a source domain besides {target}")
    return by_name[target], sources

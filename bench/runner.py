"""Running a suite's cells: leave-one-out, resumable, one record per finished cell."""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import baselines  # noqa: F401 - registers the baselines
import mfner.train  # noqa: F401 - registers MFNER
from bench.records import RESULTS_DIR, claim_holder, claimed, peak_rss_mb, provenance, record_path, write_record
from bench.suites import Cell, Suite, with_options
from mfner.datasets import Domain, available_domains
from mfner.episodes import cached_episodes
from mfner.method import METHODS, RunContext, SourceTask
from mfner.metrics import encode_tags, episode_f1, mean_over_episodes

DEFAULT_ENCODER = "minilm"


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
    force: bool = False
    only_methods: tuple[str, ...] = ()
    overrides: dict[str, Any] = field(default_factory=dict)  # method options replaced for this run (--set)
    only_targets: tuple[str, ...] = ()
    seeds: tuple[int, ...] | None = None
    shots: tuple[int, ...] | None = None
    eval_episodes: int | None = None
    progress: bool = True
    command: list[str] | None = None
    log: list[str] = field(default_factory=list)


def row_label(label: str, encoder: str) -> str:
    """A table row's label: the suite's, tagged with the encoder unless it is the default."""
    return label if encoder == DEFAULT_ENCODER else f"{label}@{Path(encoder).name}"


def run_cell(
    cell: Cell, suite: Suite, target: Domain, sources: list[Domain], opts: RunOptions
) -> tuple[dict, list[dict]]:
    """Fit the method on the sources, predict every test episode of the target, score it.

    Returns the record and, for methods that trace (MFNER), per-token traces of the first
    ``suite.trace_episodes`` test episodes for the case-study figures.
    """
    t0 = time.perf_counter()
    test_set = cached_episodes(target, cell.k, cell.seed, suite.max_episodes, "test")
    limit = opts.eval_episodes or suite.eval_episodes
    episodes = test_set.materialize(target, limit)
    seed_everything(cell.seed)
    ctx = RunContext(seed=cell.seed, device=opts.device, encoder=opts.encoder, progress=opts.progress)
    method = METHODS.get(cell.spec.method)(ctx, **cell.spec.options)
    train_sets = {d.name: cached_episodes(d, cell.k, cell.seed, None, "train") for d in sources}
    tasks = [SourceTask(d, train_sets[d.name].materialize(d, suite.train_episodes)) for d in sources]
    method.fit(tasks)
    fit_s = time.perf_counter() - t0
    method.prepare(target)
    f1s = []
    predictions = []  # per episode, per query sentence: encode_tags of the predicted tags
    desc = f"{cell.spec.label} {target.spec.short} {cell.k}-shot s{cell.seed}"
    for ep in tqdm(episodes, desc=desc, disable=not opts.progress, unit="ep", leave=False):
        pred = method.predict(ep)
        f1s.append(episode_f1([s.tags for s in ep.query], pred))
        predictions.append([encode_tags(p, ep.labels) for p in pred])
    traces = []
    if hasattr(method, "trace"):
        for ep in episodes[: suite.trace_episodes]:
            traces += [{"episode": ep.index} | row for row in method.trace(ep)]
    record = {
        "suite": suite.name,
        "label": row_label(cell.spec.label, opts.encoder),
        "method": cell.spec.method,
        "options": cell.spec.options,
        "config": method.config(),
        "target": target.name,
        "sources": [d.name for d in sources],
        "k": cell.k,
        "seed": cell.seed,
        "n_episodes": len(f1s),
        "f1": mean_over_episodes(f1s),
        "f1_per_episode": f1s,
        "predictions": predictions,
        "episodes_sha256": test_set.sha256,
        "train_episodes_sha256": {n: s.sha256 for n, s in train_sets.items()},
        "train_episodes_used": {t.domain.name: len(t.episodes) for t in tasks},
        "data_sha256": {d.name: d.data_hash for d in [target, *sources]},
        "device": opts.device,
        "encoder": opts.encoder,
        "fit_s": round(fit_s, 3),
        "wall_s": round(time.perf_counter() - t0, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "fit_report": method.fit_report(),
    }
    return record, traces


def _select(suite: Suite, opts: RunOptions) -> tuple[list[Domain], list[tuple[Cell, Path]], list[tuple[Cell, Path]]]:
    """The suite's domains that can load, and its selected cells split into (todo, done)."""
    if suite.kind != "fewshot":
        raise ValueError(f"suite {suite.name!r} is a {suite.kind} suite")
    domains, skipped = available_domains(list(suite.domains), opts.snap_dir)
    for name, why in skipped.items():
        opts.log.append(f"skip domain {name}: {why}")
    names = [d.name for d in domains]
    targets = tuple(n for n in names if not opts.only_targets or n in opts.only_targets)
    seeds = opts.seeds or suite.seeds
    shots = opts.shots or suite.shots
    todo, done = [], []
    checked: set[str] = set()
    for cell in suite.cells(targets):
        aliases = {cell.spec.label, cell.spec.method}  # --method matches the suite's label or the method
        if opts.overrides:
            cell = replace(cell, spec=with_options(cell.spec, opts.overrides))
            aliases.add(cell.spec.label)
        if opts.only_methods and not aliases & set(opts.only_methods):
            continue
        if cell.seed not in seeds or cell.k not in shots:
            continue
        if cell.spec.method not in METHODS:
            msg = f"skip {cell.spec.label}: method {cell.spec.method!r} is not implemented yet"
            if msg not in opts.log:
                opts.log.append(msg)
            continue
        if opts.overrides and cell.spec.label not in checked:
            METHODS.get(cell.spec.method).check_options(cell.spec.options)  # a bad option fails before any fit
            checked.add(cell.spec.label)
        path = record_path(
            opts.results_dir, suite.name, row_label(cell.spec.label, opts.encoder), cell.target, cell.k, cell.seed
        )
        (done if path.exists() and not opts.force else todo).append((cell, path))
    return domains, todo, done


def _wall_s(record: Path) -> float | None:
    try:
        return float(json.loads(record.read_text())["wall_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _expected_wall_s(path: Path) -> float | None:
    """Median wall time of the finished cells beside ``path`` (same row, target and K; any seed)."""
    siblings = path.parent.glob(f"{path.name.rsplit('-s', 1)[0]}-s*.json")
    walls = [w for p in siblings if not p.name.endswith(".trace.json") and (w := _wall_s(p)) is not None]
    return float(np.median(walls)) if walls else None


def plan_suite(suite: Suite, opts: RunOptions) -> list[dict[str, Any]]:
    """What ``run_suite`` would do, without doing it: each selected cell as done, running or todo.

    ``wall_s``: a done cell's own wall time; for the others, the median of the finished cells of the
    same row, target and K (``None`` when there is none yet); ``left_s`` subtracts a running
    cell's elapsed time from it.
    """
    _, todo, done = _select(suite, opts)
    rows = []
    now = dt.datetime.now(dt.timezone.utc)
    for (cell, path), state in [*((c, "done") for c in done), *((c, "todo") for c in todo)]:
        holder = claim_holder(path) if state == "todo" else None
        wall = _wall_s(path) if state == "done" else _expected_wall_s(path)
        left = 0.0 if state == "done" else wall
        if holder and wall is not None and holder.get("since"):
            elapsed = (now - dt.datetime.fromisoformat(holder["since"])).total_seconds()
            left = max(wall - elapsed, 0.0)
        rows.append(
            {
                "method": row_label(cell.spec.label, opts.encoder),
                "label": cell.spec.label,
                "target": cell.target,
                "K": cell.k,
                "seed": cell.seed,
                "state": f"running (pid {holder['pid']} on {holder['host']})" if holder else state,
                "wall_s": wall,
                "left_s": left,
                "record": str(path),
            }
        )
    return rows


def run_suite(suite: Suite, opts: RunOptions) -> list[Path]:
    """Run every missing cell of ``suite``; return the record paths written or found."""
    if opts.eval_episodes and opts.results_dir.resolve() == RESULTS_DIR.resolve():
        raise ValueError("--episodes gives partial results: write them elsewhere with --results-dir DIR")
    domains, todo, done = _select(suite, opts)
    by_name = {d.name: d for d in domains}
    if done:
        opts.log.append(f"{len(done)} cell(s) already have results (use --force to redo)")
    written = [p for _, p in done]
    meta = provenance(opts.command)
    for cell, path in tqdm(todo, desc=f"suite {suite.name}", disable=not opts.progress, unit="cell"):
        with claimed(path) as mine:
            if not mine:
                opts.log.append(f"skip {path.name} of {cell.spec.label}: another worker is running it")
                continue
            if path.exists() and not opts.force:  # another worker finished it since the listing
                written.append(path)
                continue
            written.append(_run_and_write(cell, suite, path, domains, by_name[cell.target], opts, meta))
    return written


def _run_and_write(
    cell: Cell, suite: Suite, path: Path, domains: list[Domain], target: Domain, opts: RunOptions, meta: dict
) -> Path:
    sources = [d for d in domains if d.name != cell.target]
    if not sources:
        raise ValueError(f"leave-one-out needs a source domain besides {cell.target}")
    record, traces = run_cell(cell, suite, target, sources, opts)
    label = row_label(cell.spec.label, opts.encoder)
    if traces:
        trace = {"label": label, "target": cell.target, "k": cell.k, "seed": cell.seed, "rows": traces}
        write_record(path.with_suffix(".trace.json"), trace)
    write_record(path, record | meta)
    tqdm.write(
        f"{label:14s} {target.spec.short:5s} K={cell.k} seed={cell.seed}: F1 {record['f1']:6.2f} "
        f"over {record['n_episodes']} episodes ({record['wall_s']:.0f}s)"
    )
    return path

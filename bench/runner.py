"""Running a suite's cells: leave-one-out, resumable, one record per finished cell.

Before any cell runs, the whole selection is checked: options that match nothing, the device,
the encoder, and that every selected (target, K) can give its test episodes. Skip lines are
printed first, not after a run that may last hours.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from bench.cell import (  # noqa: F401 - re-exported: bench.runner is where callers have found them
    DEFAULT_ENCODER,
    CellPlan,
    RunOptions,
    cell_domains,
    cell_label,
    config_drift,
    describe_drift,
    plan_cell,
    row_label,
    run_cell,
    seed_everything,
    split_options,
)
from bench.estimate import CellKey, CostIndex, cell_seconds, peer_seconds, record_seconds
from bench.methods import METHODS
from bench.records import (
    QUICK_REFERENCE_DIR,
    RESULTS_DIR,
    claim_holder,
    claimed,
    environment,
    provenance,
    read_record,
    set_aside,
    write_record,
)
from bench.suites import Suite, check_selection, no_match, with_options
from fewshot_ner.datasets import (
    Domain,
    available_domains,
    short_name,
)
from fewshot_ner.encoder import check_encoder
from fewshot_ner.episodes import EpisodeError, cached_episodes

FEW_EPISODES = 10  # a target giving fewer test episodes than this is warned about before any cell runs


def check_device(device: str) -> None:
    """Refuse a device this machine doesn't have, before any cell runs."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"--device {device!r} is not a torch device; use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"--device {device}: this machine has no CUDA device (torch {torch.__version__}); use --device cpu"
        )
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {device!r}: only cpu and cuda are supported")


def _check_selection(suite: Suite, opts: RunOptions, targets: tuple[str, ...]) -> None:
    """Every selection option must match something: a typo fails naming the option and the choices."""
    check_selection(suite, opts.only_methods, opts.shots, opts.seeds, opts.overrides, opts.eval_episodes)
    for t in opts.only_targets:
        if t not in targets:
            raise no_match("--target", repr(t), ", ".join(targets) or "none loadable")


def select(suite: Suite, opts: RunOptions) -> tuple[list[Domain], list[CellPlan], list[CellPlan]]:
    """The suite's domains that can load, and the plans of its selected cells split into (todo, done).

    A record counts as done only if it reads as JSON and was trained on the same source domains;
    an unreadable one is moved aside (``.corrupt``) and said.
    """
    if suite.kind != "fewshot":
        raise ValueError(f"suite {suite.name!r} is a {suite.kind} suite")
    domains, skipped = available_domains(list(suite.domains), opts.snap_dir, opts.image_text)
    for name, why in skipped.items():
        opts.note(f"skip domain {name}: {why}")
    names = [d.name for d in domains]
    by_name = {d.name: d for d in domains}
    _check_selection(suite, opts, tuple(names))
    targets = tuple(n for n in names if not opts.only_targets or n in opts.only_targets)
    seeds = opts.seeds or suite.seeds
    shots = opts.shots or suite.shots
    todo: list[CellPlan] = []
    done: list[CellPlan] = []
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
            opts.note(f"skip {cell.spec.label}: method {cell.spec.method!r} is not implemented yet")
            continue
        plan = plan_cell(cell, suite, by_name, opts)
        (done if is_done(plan, opts) and not opts.force else todo).append(plan)
    if not todo and not done:
        raise ValueError(f"the selection holds no cell of suite {suite.name!r} that can run here (see the skip lines)")
    return domains, todo, done


def is_done(plan: CellPlan, opts: RunOptions) -> bool:
    """Whether the plan's record exists, reads, was trained on the plan's sources, and ran the configuration
    the plan asks (``stale_options``); a stale record is said, and kept aside when the cell's rerun finishes."""
    path = plan.path
    if not path.exists():
        return False
    record = read_record(path, on_corrupt=opts.note)
    if record is None:
        return False
    if sorted(record.get("sources") or []) != sorted(plan.sources):
        opts.note(
            f"{path.name}: its record was trained on {record.get('sources')}, not {list(plan.sources)}: not done "
            f"(the leave-one-out protocol differs; move it or use another --results-dir)"
        )
        return False
    if stale := stale_options(record, plan):
        opts.note(
            f"warning: {path}: its record ran with {describe_drift(stale)}: it counts as not done (bench run reruns "
            f"the cell and keeps this record as {path.name}{STALE_SUFFIX})"
        )
        return False
    return True


def stale_record(plan: CellPlan) -> tuple[dict[str, Any], dict[str, tuple[Any, Any]]] | None:
    """The plan's record and where it is stale (``stale_options``), if a record reads at its path and is stale;
    nothing noted or moved: a listing (``--dry-run``, ``bench check``) only looks."""
    try:
        record = json.loads(plan.path.read_text())
    except (OSError, ValueError):
        return None
    stale = stale_options(record, plan) if isinstance(record, dict) else {}
    return (record, stale) if stale else None


STALE_SUFFIX = ".stale"  # a record its cell's rerun replaced because its configuration is no longer the row's


def stale_options(record: dict[str, Any], plan: CellPlan) -> dict[str, tuple[Any, Any]]:
    """Where a finished record's configuration differs from what ``plan`` asks now (``config_drift``)."""
    return config_drift(record, plan.cell.spec.method, plan.method_options)


def keep_stale(path: Path) -> None:
    """Move a stale record (and its traces) aside before its cell's new record is written: nothing is lost.
    Without a record there, nothing moves."""
    if not path.exists():
        return
    for old in (path, path.with_suffix(".trace.json")):
        if old.exists():
            set_aside(old, STALE_SUFFIX)


def _check_episodes(todo: list[CellPlan], by_name: dict[str, Domain], opts: RunOptions) -> None:
    """Every selected (target, K, seed) can give its test episodes and every source its training ones."""
    seen: set[tuple[str, int, int]] = set()
    for plan in todo:
        cell, suite = plan.cell, plan.suite
        if suite.protocol == "fulldata" or (cell.target, cell.k, cell.seed) in seen:
            continue  # fulldata: no episodes, the splits themselves
        seen.add((cell.target, cell.k, cell.seed))
        try:
            target, sources = plan.domains(by_name)
            test = cached_episodes(target, cell.k, cell.seed, suite.max_episodes, "test")
            for d in sources:
                cached_episodes(d, cell.k, cell.seed, None, "train")
        except EpisodeError as err:
            raise ValueError(f"{cell.target} K={cell.k} seed={cell.seed}: {err}") from None
        if len(test.episodes) < FEW_EPISODES:
            opts.note(
                f"warning: {cell.target} gives only {len(test.episodes)} test episode(s) at K={cell.k} (seed {cell.seed}): "
                f"a mean over so few is not a stable figure"
            )
        if plan.eval_limit and len(test.episodes) < plan.eval_limit:
            opts.note(
                f"warning: {cell.target} gives {len(test.episodes)} test episodes at K={cell.k} (seed {cell.seed}), "
                f"fewer than the {plan.eval_limit} asked; its records will say so"
            )


def cell_key(plan: CellPlan, opts: RunOptions) -> CellKey:
    """What the cost estimate needs to know of a cell before its folder holds a record."""
    return CellKey(plan.cell.spec.method, plan.cell.spec.label, (opts.encoder, plan.precision), plan.method_options)


def plan_suite(suite: Suite, opts: RunOptions) -> list[dict[str, Any]]:
    """What ``run_suite`` would do, without doing it: each selected cell as done, running or todo.

    ``wall_s``: a done cell's own wall time; for the others, the median of the finished cells of the
    same row, target and K, here or committed (under ``--quick``, the quick reference's), else the row's
    other cells scaled (``bench.estimate``; ``basis`` says from what, empty otherwise), else ``None``; ``left_s`` subtracts a
    running cell's elapsed time from it. ``plan``: the cell's ``CellPlan``.
    """
    import datetime as dt

    _, todo, done = select(suite, opts)
    rows = []
    now = dt.datetime.now(dt.timezone.utc)
    index = CostIndex(opts.results_dir, _peers_dir(opts))
    for plan, state in [*((p, "done") for p in done), *((p, "todo") for p in todo)]:
        path = plan.path
        holder = claim_holder(path) if state == "todo" else None
        wall = record_seconds(path) if state == "done" else peer_seconds(path, opts.results_dir, _peers_dir(opts))
        basis = ""  # set where the time is scaled from the row's other cells
        if state == "todo" and wall is None and (scaled := index.scaled(path, cell_key(plan, opts))) is not None:
            wall, basis = scaled
        left = 0.0 if state == "done" else wall
        if holder and wall is not None and holder.get("since"):
            elapsed = (now - dt.datetime.fromisoformat(holder["since"])).total_seconds()
            left = max(wall - elapsed, 0.0)
        checkpoint = plan.checkpoint(opts) if state == "todo" and not holder else None
        if checkpoint is not None and checkpoint.is_file():  # a cell cut short: its training goes on from there
            saved = dt.datetime.fromtimestamp(checkpoint.stat().st_mtime, dt.timezone.utc)
            state = f"todo, resumes from its checkpoint of {saved.isoformat(timespec='minutes')}"
        elif state == "todo" and not holder and (found := stale_record(plan)):
            state = f"todo, stale ({', '.join(found[1])})"  # its record ran another configuration: it reruns
        rows.append(
            {
                "method": plan.label,
                "label": plan.cell.spec.label,
                "target": plan.cell.target,
                "K": plan.cell.k,
                "seed": plan.cell.seed,
                "state": f"running (pid {holder['pid']} on {holder['host']})" if holder else state,
                "wall_s": wall,
                "basis": basis,
                "left_s": left,
                "record": str(path),
                "plan": plan,
            }
        )
    return rows


def run_suite(suite: Suite, opts: RunOptions) -> list[Path]:
    """Run every missing cell of ``suite``; return the record paths written or found."""
    partial = opts.eval_episodes or opts.quick or opts.train_episodes
    if partial and opts.results_dir.resolve() == RESULTS_DIR.resolve():
        raise ValueError("--episodes and --quick give partial results: write them elsewhere with --results-dir DIR")
    check_device(opts.device)
    domains, todo, done = select(suite, opts)
    if todo:
        check_encoder(opts.encoder)
    by_name = {d.name: d for d in domains}
    _check_episodes(todo, by_name, opts)
    if done:
        opts.note(f"{len(done)} cell(s) already have results (use --force to redo)")
    written = [p.path for p in done]
    meta = provenance(opts.command)

    def finished(plan: CellPlan) -> bool:
        """Whether the cell's record exists now, asked again once its claim is held (by this loop and by Dask):
        another worker may have written it since the listing."""
        return is_done(plan, opts) and not opts.force

    if opts.backend == "dask":
        from bench.cluster import run_on_dask

        def write(plan: CellPlan, record: dict, traces: list[dict], env: dict) -> Path:
            if not opts.force:
                keep_stale(plan.path)
            return write_cell(plan, record, traces, meta | {"env": env, "worker": "dask"})

        # the longest cells first, so that no worker is left with a long one while the others idle; by CPU seconds,
        # which a cell that waited for another's source training (or shared the machine) does not inflate
        expected = cell_seconds(
            [p.path for p in todo], opts.results_dir, _peers_dir(opts), "cpu_s", [cell_key(p, opts) for p in todo]
        )
        longest_first = [p for _, p in sorted(zip(expected, todo, strict=True), key=lambda e: -e[0])]
        return written + run_on_dask(longest_first, opts, write, opts.before_cell, finished)
    expected = cell_seconds(
        [p.path for p in todo], opts.results_dir, _peers_dir(opts), cells=[cell_key(p, opts) for p in todo]
    )
    # One bar in cells; its ETA is the expected seconds of the cells left (medians of finished peers, here or
    # committed), not tqdm's rate, which a grid of cells from seconds to an hour would make meaningless.
    bar = tqdm(total=len(todo), desc=f"suite {suite.name}", disable=not opts.progress, unit="cell")
    left = sum(expected)
    for plan, seconds in zip(todo, expected, strict=True):
        bar.set_postfix_str(f"~{_duration(left)} left")
        with claimed(plan.path) as mine:
            if not mine:
                opts.note(f"skip {plan.path.name} of {plan.cell.spec.label}: another worker is running it")
            elif finished(plan):
                written.append(plan.path)
            else:
                record, traces = run_cell(plan, by_name, opts)
                if not opts.force:
                    keep_stale(plan.path)
                written.append(write_cell(plan, record, traces, meta | {"env": environment()}))  # threads at the end
        left -= seconds
        bar.update()
    bar.close()
    return written


def _duration(seconds: float) -> str:
    """``12 s``, ``7 min``, ``3.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _peers_dir(opts: RunOptions) -> Path:
    """Where finished cells like these are committed: the quick reference for ``--quick``, else the results."""
    return QUICK_REFERENCE_DIR if opts.quick else RESULTS_DIR


def write_cell(plan: CellPlan, record: dict, traces: list[dict], meta: dict) -> Path:
    """Write a finished cell at its plan's path: its traces, then its record (atomic each), and log its line."""
    cell, path = plan.cell, plan.path
    if traces:
        trace = {"label": record["label"], "target": cell.target, "k": cell.k, "seed": cell.seed, "rows": traces}
        write_record(path.with_suffix(".trace.json"), trace)
    write_record(path, record | meta)
    if "warning" in record:
        tqdm.write(f"warning: {record['warning']}")
    tqdm.write(
        f"{record['label']:14s} {short_name(record['target']):5s} K={cell.k} seed={cell.seed}: F1 {record['f1']:6.2f} "
        f"over {record['n_episodes']} episodes ({record['wall_s']:.0f}s)"
    )
    return path

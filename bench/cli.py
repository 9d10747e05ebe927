"""The ``bench`` command line: list, data stats, episodes, run, report."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

from tabulate import tabulate

from bench.suites import QUICK_EPISODES, QUICK_TRAIN_EPISODES
from fewshot_ner.defaults import DEFAULT_IMAGE_TEXT

EXAMPLES = """\
examples:
  bench list                              methods, suites, encoders, datasets
  bench data stats                        tweets per split, entities, repairs, image-text coverage
  bench data stats --image-text pgim      the same with PGIM's contexts as the image text
  bench image-text --images DIR --out F --captioner BLIP_DIR --detector DETR_DIR
                                          your images as image text; then bench run ... --image-text F
  bench episodes --k 1 --k 5              episode counts per domain beside the paper's
  bench run --suite table3 --quick --jobs 2
                                          check every method of Table 3 runs and learns here (8 min, 2 cores)
  bench run --suite smoke                 a quick end-to-end check (about 3 minutes, cold cache)
  bench run --suite table3 --jobs 2       the full table on a local Dask cluster of 2 workers
  bench run --suite table3 --seeds 0 1    part of Table 3; rerunning skips finished cells
  bench report --suite table3             reports/table3.md from results/table3/
  bench check --suite smoke               rerun the committed smoke cells; exit 1 if any F1 moved
  bench run --suite kernels --device cpu  CRF kernels against pytorch-crf
"""


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--snap-dir", metavar="DIR", help="folder with SNAP's train/valid/test.txt (or set MFNER_SNAP_DIR)")
    g.add_argument(
        "--image-text",
        default=DEFAULT_IMAGE_TEXT,
        metavar="SOURCE|PATH",
        help="each tweet's image text: blip2 (BLIP-2 captions, the default), owl (long image descriptions, a "
        "subset of the images), pgim (language-model-written contexts, not captions), none (empty), or a "
        "file of '<imgid>.jpg :<text>' lines (as `bench image-text` writes)",
    )


def _add_selection_args(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--method", action="append", metavar="LABEL", help="only this method label or name (repeatable)")
    g.add_argument("--target", action="append", metavar="DATASET", help="only this target domain (repeatable)")
    g.add_argument("--seeds", type=int, nargs="+", metavar="N", help="only these seeds")
    g.add_argument("--k", type=int, action="append", metavar="K", help="only these shots (repeatable)")
    g.add_argument(
        "--set",
        action="append",
        type=_option,
        dest="overrides",
        metavar="KEY=VALUE",
        help="replace a method option (repeatable; VALUE read as JSON, else as text), e.g. --set passes=6: "
        "the selected rows run as rows of their own, labelled like 'MFNER[passes=6]'",
    )


def _option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` from the command line; VALUE as JSON (6, 1e-4, true, null) or else as text."""
    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY a name, got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def _selection(args: argparse.Namespace) -> dict[str, Any]:
    """RunOptions fields from the selection options."""
    return {
        "only_methods": tuple(args.method or ()),
        "only_targets": tuple(args.target or ()),
        "seeds": tuple(args.seeds) if args.seeds else None,
        "shots": tuple(args.k) if args.k else None,
        "overrides": dict(args.overrides or ()),
    }


def cmd_list(args: argparse.Namespace) -> int:
    from bench.methods import METHODS
    from bench.suites import SUITES
    from fewshot_ner.datasets import DATASETS
    from fewshot_ner.encoder import ENCODERS

    print(
        tabulate(
            [(n, c.summary()) for n, c in METHODS.items()],
            headers=["method", "what"],
            tablefmt="simple",
        )
    )
    print()
    print(
        tabulate(
            [(n, s.kind, s.description) for n, s in SUITES.items()],
            headers=["suite", "kind", "what"],
            tablefmt="simple",
        )
    )
    print()
    print("encoders:", ", ".join(ENCODERS), "(or any local model folder)")
    print("datasets:", ", ".join(f"{n} ({s.short})" for n, s in DATASETS.items()))
    return 0


def cmd_data_stats(args: argparse.Namespace) -> int:
    from fewshot_ner.datasets import DATASETS, DatasetUnavailable, image_text_name, load_domain

    for name, spec in DATASETS.items():
        try:
            domain = load_domain(name, args.snap_dir, image_text=args.image_text)
        except DatasetUnavailable as err:
            print(f"{spec.short} ({name}): not available: {err}\n")
            continue
        words = [len(s.image_text.split()) for s in domain.sentences]
        with_text = [w for w in words if w]
        coverage = (
            f"image text: {image_text_name(args.image_text)}; {len(with_text)} of {len(words)} tweets have some, "
            f"{sum(with_text) / max(len(with_text), 1):.1f} words on average where present"
        )
        rows = []
        for split, rep in [*domain.reports.items(), ("all", domain.report)]:
            covered = rep.sentences - rep.image_text_missing - rep.image_text_empty
            rows.append(
                [split, rep.sentences, rep.tokens, *(rep.entities.get(t, 0) for t in spec.types)]
                + [
                    rep.orphan_i_repaired,
                    f"{covered}/{rep.sentences}",
                    rep.image_text_empty,
                    rep.image_text_missing,
                    rep.image_text_unmatched,
                ]
            )
        print(
            f"{spec.short} ({name}, {spec.citation}): {domain.report.sentences} tweets (paper: {spec.paper_tweets}); data sha256 {domain.data_hash[:12]}"
        )
        print(coverage)
        headers = [
            "split",
            "tweets",
            "tokens",
            *spec.types,
            "orphan I->B",
            "with image text",
            "empty text",
            "missing text",
            "captions matching no tweet",
        ]
        print(tabulate(rows, headers=headers, tablefmt="simple"))
        print()
    return 0


def cmd_episodes(args: argparse.Namespace) -> int:
    from bench import paper
    from fewshot_ner.datasets import DATASETS, DatasetUnavailable, load_domain
    from fewshot_ner.episodes import cached_episodes, sample_episodes

    rows = []
    for name in DATASETS:
        try:
            domain = load_domain(name, args.snap_dir, image_text=args.image_text)
        except DatasetUnavailable as err:
            print(f"{name}: not available ({err})")
            continue
        for k in args.k or [1, 5]:
            capped = cached_episodes(domain, k, args.seed, args.cap)
            uncapped = sample_episodes(domain, k, args.seed, None)
            n_sup = sum(len(s) for s, _ in capped.episodes) / len(capped.episodes)
            n_qry = sum(len(q) for _, q in capped.episodes) / len(capped.episodes)
            rows.append(
                [
                    domain.spec.short,
                    k,
                    len(capped.episodes),
                    len(uncapped.episodes),
                    paper.EPISODES.get((name, k), "-"),
                    f"{n_sup:.1f}",
                    f"{n_qry:.1f}",
                    capped.sha256[:12],
                ]
            )
    print(
        tabulate(
            rows,
            headers=[
                "domain",
                "K",
                f"episodes (cap {args.cap})",
                "uncapped",
                "paper",
                "support sents",
                "query sents",
                "sha256",
            ],
            tablefmt="simple",
        )
    )
    return 0


def cmd_image_text(args: argparse.Namespace) -> int:
    import logging
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models from local folders or the cache; never a download

    from bench.runner import check_device
    from fewshot_ner.image_to_text import describe_folder, image_files, pipeline_describer

    logging.basicConfig(format="%(levelname)s: %(message)s")
    check_device(args.device)
    if not image_files(Path(args.images)):
        raise ValueError(f"--images {args.images}: no images (.jpg, .jpeg, .png, .gif, .webp, .bmp) in it")
    describer = pipeline_describer(
        args.captioner, args.detector, args.score_threshold, args.max_objects, args.device, args.max_new_tokens
    )
    summary = describe_folder(Path(args.images), Path(args.out), describer, args.batch_size, not args.quiet)
    print(summary.line())
    for path in summary.unreadable:
        print(f"  unreadable: {path}")
    print(f"wrote {args.out}; use it with --image-text {args.out}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from bench.suites import SUITES, check_selection

    suite = SUITES.get(args.suite)
    if suite.kind == "fewshot":  # a mistyped selection fails in milliseconds, before torch is imported
        sel = _selection(args)
        check_selection(suite, sel["only_methods"], sel["shots"], sel["seeds"], sel["overrides"], args.episodes)

    from bench.report import write_reports
    from bench.runner import RunOptions, run_suite
    from fewshot_ner.datasets import check_image_text

    results_dir = Path(args.results_dir) if args.results_dir else None
    if suite.kind == "kernels":
        from bench.kernels import run_kernels

        run_kernels(device=args.device, results_dir=results_dir)
        return 0
    opts = RunOptions(
        device=args.device,
        encoder=args.encoder or suite.encoder,
        snap_dir=args.snap_dir,
        image_text=check_image_text(args.image_text),
        force=args.force,
        **_selection(args),
        eval_episodes=args.episodes,
        progress=not args.quiet and sys.stderr.isatty(),  # a log file gets the plain per-cell lines, no bars
        command=["bench", *sys.argv[1:]],
        include=tuple(args.include),
        say=print,
        backend="dask" if (args.backend == "dask" or args.jobs or args.scheduler) else "local",
        scheduler=args.scheduler,
        jobs=args.jobs or 2,
    )
    if results_dir is not None:
        opts.results_dir = results_dir
    if args.quick:
        from bench.records import ROOT

        _plan_quick(opts, suite, args.episodes, results_dir or ROOT / "results-quick")
    if args.dry_run:
        from bench.runner import plan_suite

        plan = plan_suite(suite, opts)
        rows = [
            {k: v for k, v in r.items() if k not in ("record", "label", "wall_s", "left_s", "plan", "basis")}
            | {"wall s": _seconds(r["wall_s"], r["state"] != "done", scaled=bool(r["basis"]))}
            for r in plan
        ]
        print(tabulate(rows, headers="keys", tablefmt="github") if rows else "no cells selected")
        counts = {s: sum(r["state"].startswith(s) for r in plan) for s in ("done", "running", "todo")}
        print(", ".join(f"{n} {s}" for s, n in counts.items()))
        pending = [r for r in plan if r["state"] != "done"]
        if pending:
            known = [r["left_s"] for r in pending if r["left_s"] is not None]
            scaled = [r for r in pending if r["left_s"] is not None and r["basis"]]
            unknown = len(pending) - len(known)
            if not known:
                print("cell time left: unknown (no finished cell of the same row, target and K to go by)")
            else:
                print(
                    f"cell time left: about {sum(known) / 3600:.1f} h in one worker"
                    + (f" ({sum(r['left_s'] for r in scaled) / 3600:.1f} h of it scaled, '≈')" if scaled else "")
                    + (f", plus {unknown} cell(s) with nothing to go by" if unknown else "")
                    + " ('~': the median of the finished cells of the same row, target and K)"
                )
            bases = sorted({(r["method"], r["target"], r["K"], r["basis"]) for r in scaled})
            if bases:
                print("'≈': the row's median at another target or K, times the median ratio of the two over the")
                print("other rows of the same method and protocol (any suite or encoder) that have finished both;")
                print("for a row that has finished nothing, its twin's (the same row at another encoder or precision)")
                print("times the median ratio of the two settings over the same method's cells that ran at both:")
                for method, target, k, basis in bases:
                    print(f"  {method} {target} K={k}: {basis}")
        return 0
    print(f"results: {opts.results_dir}")
    before = {p: p.stat().st_mtime_ns for p in (opts.results_dir / suite.name).glob("*/*.json")}
    paths = run_suite(suite, opts)
    new = [p for p in paths if before.get(p) != p.stat().st_mtime_ns]  # written by this run (or a worker meanwhile)
    if new and not args.no_report:
        report, *others = write_reports(suite, opts.results_dir)
        if not args.quick:
            print(report.read_text())
        said = "report written to " + ", ".join(map(str, [report, *others]))
    else:  # rebuilding every report (figures, breakdowns) takes a minute: not for a run that changed nothing
        if not args.quick:
            from bench.report import suite_table

            print(tabulate(suite_table(suite, opts.results_dir), headers="keys", tablefmt="github", showindex=False))
        why = "--no-report" if new else "no new record"
        said = f"reports left as they were ({why}; `bench report --suite {suite.name}` rebuilds them)"
    if args.quick:
        _print_quick(suite, opts)
    print(f"{len(paths)} record(s), {len(new)} new; {said}")
    return 0


def _quick_budget() -> str:
    """``64 source episodes a domain at 1 shot, 32 at 5``."""
    one, five = QUICK_TRAIN_EPISODES[1], QUICK_TRAIN_EPISODES[5]
    return f"{one} source episodes a domain at 1 shot, {five} at 5"


def _print_quick(suite: Any, opts: Any) -> None:
    """The reproduction line (the quick cells against the committed reference), the quick run's table, then the
    committed full table (with the paper's columns), each labelled."""
    from bench.check import compare_with_reference
    from bench.records import QUICK_REFERENCE_DIR, RESULTS_DIR
    from bench.report import suite_table

    _, line = compare_with_reference(opts.results_dir, QUICK_REFERENCE_DIR, suite.name)
    print(f"\n{line}\n")
    quick = suite_table(suite, opts.results_dir)
    full = suite_table(suite, RESULTS_DIR)
    ours = [c for c in quick.columns if not c.endswith("paper")]
    print(
        f"## This machine, --quick (seed {opts.seeds[0]}, first {opts.eval_episodes} test episodes, "
        f"{_quick_budget()}, each method's quick training budget)\n"
    )
    print(
        tabulate(quick[ours], headers="keys", tablefmt="github", showindex=False)
        if not quick.empty
        else "(nothing ran)"
    )
    print(f"\n## Committed full results ({RESULTS_DIR}) and the paper's\n")
    print(tabulate(full, headers="keys", tablefmt="github", showindex=False) if not full.empty else "(none committed)")
    print("\nQuick cells check that every method runs here; their F1 is not comparable with the full table's.")


def _seconds(value: float | None, estimate: bool, scaled: bool = False) -> str:
    if value is None:
        return "?"
    return f"{'≈' if scaled else '~'}{value:.0f}" if estimate else f"{value:.0f}"


def _plan_quick(opts: Any, suite: Any, episodes: int | None, results_dir: Path) -> None:
    """``opts`` planning ``--quick`` cells, for ``bench run`` and ``bench check`` alike: each method's quick budget,
    the first ``episodes`` (default ``QUICK_EPISODES``) test episodes, the suite's first seed unless seeds were
    chosen; source episodes come from ``quick_train_episodes(K)``, by the plan."""
    opts.quick = True
    opts.eval_episodes = episodes or QUICK_EPISODES
    opts.seeds = opts.seeds or suite.seeds[:1]
    opts.results_dir = results_dir


def cmd_check(args: argparse.Namespace) -> int:
    from bench.check import check_suite
    from bench.runner import RunOptions
    from bench.suites import SUITES
    from fewshot_ner.datasets import check_image_text

    suite = SUITES.get(args.suite)
    opts = RunOptions(
        encoder=args.encoder or suite.encoder,
        snap_dir=args.snap_dir,
        image_text=check_image_text(args.image_text),
        **_selection(args),
        progress=not args.quiet and sys.stderr.isatty(),  # a log file gets the plain per-cell lines, no bars
        command=["bench", *sys.argv[1:]],
        include=tuple(args.include),
    )
    if args.quick:  # the cells as `bench run --quick` plans them (its budget, episodes and seed)
        from bench.records import QUICK_REFERENCE_DIR

        _plan_quick(opts, suite, None, QUICK_REFERENCE_DIR)
    if args.results_dir:
        opts.results_dir = Path(args.results_dir)
    rows, ok = check_suite(suite, opts, args.tolerance, args.adopt)
    if not rows:
        print(f"bench: error: no committed records of suite {suite.name!r} match the selection", file=sys.stderr)
        return 2
    print(tabulate(rows, headers="keys", tablefmt="github"))
    failed = sum(not r["status"].startswith("ok") for r in rows)
    print(f"{len(rows) - failed} of {len(rows)} cell(s) reproduce within {args.tolerance} F1 per episode")
    return 0 if ok else 1


def cmd_report(args: argparse.Namespace) -> int:
    from bench.report import write_reports
    from bench.suites import SUITES

    kwargs = {"results_dir": Path(args.results_dir)} if args.results_dir else {}
    if args.format != "md":  # the records as data, to stdout; nothing is written
        from bench.api import export

        SUITES.get(args.suite)  # an unknown name fails naming the suites
        sys.stdout.write(export(args.suite, args.format, **kwargs))
        return 0
    if args.suite == "claims":  # not a suite: the paper's claims read from several suites' records
        from bench.claims import write_claims
        from bench.records import RESULTS_DIR, reports_dir_for
        from bench.report import write_index

        path = write_claims(**kwargs)
        write_index(reports_dir_for(kwargs.get("results_dir", RESULTS_DIR)))
        print(path.read_text())
        print(f"report written to {path}")
        return 0
    suite = SUITES.get(args.suite)
    if suite.kind == "kernels":
        from bench.kernels import write_kernel_report
        from bench.records import RESULTS_DIR

        path, others = write_kernel_report(kwargs.get("results_dir", RESULTS_DIR)), []
    else:
        path, *others = write_reports(suite, **kwargs)
    print(path.read_text())
    print(f"report written to {path}")
    for other in others:
        print(f"report written to {other} (it shows rows of {suite.name})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench",
        description="Few-shot multimodal NER harness: MFNER and baselines under one protocol.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--include",
        action="append",
        default=[],
        dest="include_top",
        metavar="PATH",
        help="import a plugin first: a .py file or a folder of them that registers methods and suites "
        "(repeatable; also after the command: bench run --include PATH ...)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="registered methods, suites, encoders, datasets")
    p.add_argument(
        "--include", action="append", default=[], metavar="PATH", help="a plugin file or folder (repeatable)"
    )
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("data", help="dataset commands")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    ps = dsub.add_parser("stats", help="tweets per split, entities per type, repairs, image-text coverage")
    _add_data_args(ps)
    ps.set_defaults(func=cmd_data_stats)

    p = sub.add_parser(
        "image-text",
        help="turn a folder of images into image text (a caption and detected regions' captions)",
        description=(
            "MFNER's image-to-text step over your images: a global caption per image, then for each detected "
            "region (best first) its label and a caption of its crop, one '<imgid>.jpg :<text>' line an image. "
            "Models are local folders or names your transformers cache holds (nothing is downloaded). "
            "Resumable: ids already in --out are skipped; a kill loses at most one batch."
        ),
    )
    p.add_argument("--images", required=True, metavar="DIR", help="folder of images; the id is the file name's stem")
    p.add_argument("--out", required=True, metavar="FILE", help="captions file to write (appended to on a rerun)")
    p.add_argument("--captioner", required=True, metavar="MODEL", help="an image captioning model (e.g. a BLIP folder)")
    p.add_argument("--detector", metavar="MODEL", help="an object-detection model (e.g. DETR); none: captions only")
    p.add_argument("--score-threshold", type=float, default=0.5, metavar="X", help="keep regions scoring >= X")
    p.add_argument("--max-objects", type=int, default=5, metavar="N", help="at most N regions an image (default 5)")
    p.add_argument("--max-new-tokens", type=int, default=30, metavar="N", help="caption length cap in tokens")
    p.add_argument("--device", default="cpu", metavar="DEV", help="cpu or cuda (default cpu)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="images a batch (default 8)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_image_text)

    p = sub.add_parser("episodes", help="sample (and cache) test episodes; print counts beside the paper's")
    p.add_argument("--k", type=int, action="append", metavar="K", help="shots (repeatable; default 1 and 5)")
    p.add_argument("--seed", type=int, default=0, metavar="N")
    p.add_argument("--cap", type=int, default=200, metavar="N", help="episodes per domain at most (default 200)")
    _add_data_args(p)
    p.set_defaults(func=cmd_episodes)

    p = sub.add_parser(
        "run",
        help="run a suite (resumable: finished cells are skipped)",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--suite", required=True, metavar="NAME", help="smoke, table3, kernels, ... (see bench list)")
    g = p.add_argument_group("selection (default: the whole suite)")
    _add_selection_args(g)
    g.add_argument("--episodes", type=int, metavar="N", help="evaluate only the first N test episodes (quick look)")
    g.add_argument(
        "--quick",
        action="store_true",
        help=f"a check that every method of the suite runs here, in minutes: one seed, the first {QUICK_EPISODES} test "
        f"episodes, {_quick_budget()} and a small fixed training budget, into "
        "results-quick/ (never the committed results); prints its table beside the committed one and the paper's",
    )
    g = p.add_argument_group("execution")
    g.add_argument("--device", default="cpu", metavar="DEV", help="cpu or cuda (default cpu)")
    g.add_argument(
        "--encoder",
        metavar="NAME|PATH",
        help="encoder name or local model folder (default: the suite's, minilm but for suite base: mpnet-base)",
    )
    g.add_argument("--force", action="store_true", help="redo cells that already have results")
    g.add_argument(
        "--backend",
        choices=("local", "dask"),
        default="local",
        help="local: cells one after another in this process (default); dask: cells on a Dask cluster, "
        "records written here as they finish (needs the dask extra)",
    )
    g.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://10.0.0.5:8786")
    g.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="a local Dask cluster of N one-thread worker processes (implies --backend dask)",
    )
    g.add_argument(
        "--dry-run",
        action="store_true",
        help="list the selected cells as done, running (claimed) or todo, with wall times and the time left; run nothing",
    )
    g.add_argument("--results-dir", metavar="DIR", help="where records go (default results/)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    g.add_argument(
        "--no-report",
        action="store_true",
        help="do not rebuild the reports after the run (grid workers: rebuild once with `bench report`); "
        "a run that wrote no new record never rebuilds them",
    )
    _add_data_args(p)
    p.add_argument(
        "--include", action="append", default=[], metavar="PATH", help="a plugin file or folder (repeatable)"
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "check",
        help="rerun a suite's committed cells into a scratch folder; exit 1 if any episode's F1 moved",
        description=(
            "Regression check: every selected cell with a committed record is rerun into a temporary folder "
            "and compared episode by episode (same episode file, per-episode F1 within --tolerance). "
            "Runs on CPU with the thread count the records were made with give the same digits."
        ),
    )
    p.add_argument("--suite", required=True, metavar="NAME", help="e.g. smoke (about a minute)")
    g = p.add_argument_group("selection (default: every committed cell of the suite)")
    _add_selection_args(g)
    p.add_argument("--tolerance", type=float, default=0.0, metavar="F1", help="allowed |delta| per episode (default 0)")
    p.add_argument(
        "--adopt",
        action="store_true",
        help="a cell that reproduces exactly replaces its committed record with the rerun's (the current record "
        "layout: predictions kept); a cell that moved is left as it was; a record with predictions is not rerun",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="check the committed --quick cells (reference/quick/, the maintainers' machine) as `bench run --quick` "
        "makes them: every method of a suite in minutes, so a change that moves any method's F1 fails",
    )
    p.add_argument("--encoder", metavar="NAME|PATH", help="encoder of the rows to check (default: the suite's)")
    p.add_argument(
        "--results-dir", metavar="DIR", help="the committed records (default results/, with --quick reference/quick/)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_data_args(p)
    p.add_argument(
        "--include", action="append", default=[], metavar="PATH", help="a plugin file or folder (repeatable)"
    )
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("report", help="write reports/<suite>.md from the suite's records")
    p.add_argument("--suite", required=True, metavar="NAME", help="a suite, or claims (the paper's claims)")
    p.add_argument("--results-dir", metavar="DIR")
    p.add_argument(
        "--format",
        choices=("md", "csv", "json"),
        default="md",
        help="md: write the report (default); csv, json: print one row per record to stdout (bench.api.results)",
    )
    p.add_argument(
        "--include", action="append", default=[], metavar="PATH", help="a plugin file or folder (repeatable)"
    )
    p.set_defaults(func=cmd_report)
    return parser


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds: a killed run releases its cell claim


def _quiet_libraries(quiet: bool = True) -> None:
    """No progress bars from transformers (weight loading): for ``--quiet`` and for output that is no terminal (a
    log would fill with carriage returns); ``--quiet`` silences its warnings too. The environment reaches a
    transformers imported later (nothing heavy is imported here); one imported already is told directly."""
    import os

    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if quiet:
        os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if quiet:
            hf_logging.set_verbosity_error()


def _one_line_warning(message: Warning | str, category: type[Warning], *_: object, **__: object) -> str:
    """A data warning as the user's line (``warning: ...``), not Python's source excerpt."""
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.formatwarning = _one_line_warning
    if getattr(args, "quiet", False) or not sys.stderr.isatty():
        _quiet_libraries(quiet=getattr(args, "quiet", False))
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        args.include = [*args.include_top, *getattr(args, "include", [])]
        if args.include:
            from bench.plugins import include

            for path in args.include:
                include(path)
        return args.func(args)
    except (KeyError, ValueError, FileNotFoundError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"bench: error: {msg}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a folder without write permission: one line, not a traceback
        print(f"bench: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

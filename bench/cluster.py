"""Cells on a Dask distributed cluster: workers compute, the client writes.

``bench run --backend dask --scheduler ADDRESS`` sends each selected cell to an existing cluster;
``--jobs N`` without a scheduler starts a local cluster of N one-thread worker processes (the
fastest way through a grid on a small machine). A worker loads the data it needs by name, runs
the cell and returns the record and traces; the client writes them atomically into its results
folder, so workers need no shared filesystem. A worker lost mid-cell loses nothing written: Dask
reschedules that cell's task on another worker, and only a finished task's record is written. The
client holds each submitted cell's claim (its lock file) while the cluster works on it, so other
``bench run`` processes sharing the folder skip those cells.

For Slurm or PBS, start a cluster with dask-jobqueue (not a dependency) and pass its address::

    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster(cores=1, processes=1, memory="8GB", walltime="04:00:00")
    cluster.scale(jobs=20)
    print(cluster.scheduler_address)   # then: bench run --suite table3 --backend dask --scheduler <address>
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from bench.cell import CellPlan, run_cell
from bench.records import claimed, environment
from bench.suites import Cell


def cell_task(
    plan: CellPlan,
    opts: Any,
    threads: int,
    specs: dict[str, Any],
    before: Callable[[Cell], None] | None = None,
) -> tuple[dict, list[dict], dict]:
    """What a worker runs: load the plan's domains by name, run it, return (record, traces, environment).

    ``specs``: the client's dataset specs, registered here when the worker lacks them (a dataset
    the user registered; its files must be readable at the same path on the worker, while the
    bundled Twitter sets come with the worker's own installation).
    """
    import torch
    from transformers.utils import logging as hf_logging

    from bench.plugins import include
    from fewshot_ner.datasets import DATASETS, available_domains

    for path in opts.include:  # the user's methods and suites, registered on this worker too
        include(path)
    for name, spec in specs.items():
        if name not in DATASETS:
            DATASETS.add(name, spec)
    torch.set_num_threads(threads)
    hf_logging.disable_progress_bar()  # weight-loading bars of several workers would interleave in the client's log
    if before is not None:
        before(plan.cell)
    domains, _ = available_domains(list(plan.suite.domains), opts.snap_dir, opts.image_text)
    record, traces = run_cell(plan, {d.name: d for d in domains}, opts)
    return record, traces, environment()


def run_on_dask(
    todo: list[CellPlan],
    opts: Any,
    write: Callable[[CellPlan, dict, list[dict], dict], Path],
    before: Callable[[Cell], None] | None = None,
    done: Callable[[CellPlan], bool] | None = None,
) -> list[Path]:
    """Run the plans ``todo`` on the cluster ``opts.scheduler`` (or a local one of ``opts.jobs`` workers); write
    each as it finishes.

    ``done(plan)``: whether the cell's record exists now; asked again once its claim is held (another
    worker may have written it between the listing and the claim), as the serial runner does.
    """
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ValueError("--backend dask needs the distributed package: pip install 'mfner-bench[dask]'") from None
    from fewshot_ner.datasets import DATASETS

    worker_opts = dataclasses.replace(opts, say=None, log=[], progress=False, before_cell=None)
    names = {name for plan in todo for name in plan.suite.domains}
    specs = {name: DATASETS.get(name) for name in names if name in DATASETS}
    suite = todo[0].suite.name if todo else ""
    written: list[Path] = []
    with ExitStack() as stack:
        if opts.scheduler:
            client = stack.enter_context(Client(opts.scheduler))
        else:
            cluster = stack.enter_context(
                LocalCluster(n_workers=opts.jobs, threads_per_worker=1, processes=True, dashboard_address=None)
            )
            client = stack.enter_context(Client(cluster))
        futures = {}
        for plan in todo:
            if not stack.enter_context(claimed(plan.path)):
                opts.note(f"skip {plan.path.name} of {plan.cell.spec.label}: another worker is running it")
                continue
            if done is not None and done(plan):  # another worker finished it since the listing
                written.append(plan.path)
                continue
            futures[client.submit(cell_task, plan, worker_opts, 1, specs, before, pure=False)] = plan
        bar = tqdm(total=len(futures), desc=f"suite {suite} on dask", disable=not opts.progress, unit="cell")
        for future in as_completed(futures):
            record, traces, env = future.result()
            written.append(write(futures[future], record, traces, env))
            bar.update()
        bar.close()
    return written

"""Cells on a Dask LocalCluster of two processes: the same records as a serial run; a killed worker costs a rerun."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from bench.runner import RunOptions, run_suite

pytest.importorskip("distributed")

MARKER = "MFNER_TEST_KILLED_ONCE"


def kill_the_first_worker(cell) -> None:
    """Runs on a worker before a cell: the first time, the worker process dies mid-cell (as if lost)."""
    marker = Path(os.environ[MARKER])
    if cell.seed == 0 and cell.target == "mini17" and not marker.exists():
        marker.write_text("killed")
        os._exit(1)


def per_episode(folder: Path) -> dict[str, list[float]]:
    return {
        p.name: json.loads(p.read_text())["f1_per_episode"]
        for p in folder.rglob("*.json")
        if not p.name.endswith(".trace.json")
    }


def test_dask_records_equal_a_serial_run_and_survive_a_lost_worker(suite, tiny_model_dir, tmp_path, monkeypatch):
    import torch

    one = replace(suite, seeds=(0, 1))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the serial run at the workers' one thread, so the sums run in the same order
    try:
        run_suite(one, RunOptions(results_dir=tmp_path / "serial", encoder=str(tiny_model_dir), progress=False))
    finally:
        torch.set_num_threads(threads)
    monkeypatch.setenv(MARKER, str(tmp_path / "killed"))
    opts = RunOptions(
        results_dir=tmp_path / "dask",
        encoder=str(tiny_model_dir),
        progress=False,
        backend="dask",
        jobs=2,
        before_cell=kill_the_first_worker,
    )
    written = run_suite(one, opts)
    assert (tmp_path / "killed").exists()  # a worker did die mid-cell
    assert len(written) == 4 and per_episode(tmp_path / "dask") == per_episode(tmp_path / "serial")
    record = json.loads(written[0].read_text())
    assert record["worker"] == "dask" and record["env"]["torch_threads"] == 1
    assert not list((tmp_path / "dask").rglob("*.lock"))  # every claim released


def test_dask_skips_a_cell_finished_between_listing_and_claim(suite, tiny_model_dir, tmp_path, monkeypatch):
    """A record another worker wrote after the listing is not rerun and overwritten (the serial runner's check)."""
    import bench.runner as runner

    one = replace(suite, seeds=(0,))
    serial = RunOptions(results_dir=tmp_path, encoder=str(tiny_model_dir), progress=False)
    (path, *_others) = run_suite(one, serial)
    stamp = path.stat().st_mtime_ns
    real_select = runner.select

    def stale_listing(s, o):  # as if listed before the other worker wrote its records: all of them todo
        domains, todo, done = real_select(s, o)
        return domains, todo + done, []

    monkeypatch.setattr(runner, "select", stale_listing)
    opts = RunOptions(results_dir=tmp_path, encoder=str(tiny_model_dir), progress=False, backend="dask", jobs=1)
    written = run_suite(one, opts)
    assert path in written and path.stat().st_mtime_ns == stamp  # found done once claimed: not rerun

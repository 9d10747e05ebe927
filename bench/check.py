"""Regression check: rerun a suite's committed cells into a scratch folder and compare, episode by episode."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

from bench.records import environment, provenance, write_text_atomic
from bench.runner import RunOptions, check_device, describe_drift, run_cell, select, stale_record, write_cell
from bench.suites import Suite
from fewshot_ner.encoder import check_encoder


def compare_records(old: dict[str, Any], new: dict[str, Any], tolerance: float) -> tuple[str, float | None]:
    """('ok' | 'CHANGED' | 'other episodes', the largest per-episode |F1 difference|)."""
    if old["episodes_sha256"] != new["episodes_sha256"] or len(old["f1_per_episode"]) != len(new["f1_per_episode"]):
        return "other episodes", None
    worst = max((abs(a - b) for a, b in zip(old["f1_per_episode"], new["f1_per_episode"], strict=True)), default=0.0)
    return ("ok" if worst <= tolerance else "CHANGED"), worst


def compare_with_reference(fresh_dir: Path, reference_dir: Path, suite: str) -> tuple[list[dict[str, Any]], str]:
    """Each record of ``fresh_dir/suite`` against the record at the same place under ``reference_dir`` (the
    quick cells committed from the maintainers' machine): a row per cell, and the one line a newcomer reads."""
    rows = []
    for path in sorted((fresh_dir / suite).glob("*/*.json")):
        if path.name.endswith(".trace.json"):
            continue
        ref = reference_dir / path.relative_to(fresh_dir)
        new = json.loads(path.read_text())
        if not ref.exists():
            rows.append({"cell": str(path.relative_to(fresh_dir)), "status": "no reference"})
            continue
        old = json.loads(ref.read_text())
        status, worst = compare_records(old, new, 0.0)
        threads = f"{old.get('env', {}).get('torch_threads')}/{new.get('env', {}).get('torch_threads')}"
        rows.append(
            {
                "cell": str(path.relative_to(fresh_dir)),
                "status": status,
                "max |episode delta|": worst,
                "threads": threads,
            }
        )
    compared = [r for r in rows if r["status"] != "no reference"]
    same = [r for r in compared if r["status"] == "ok"]
    if not compared:
        return rows, f"no reference cells to compare with ({reference_dir / suite})"
    line = f"{len(same)} of {len(compared)} cells reproduce the reference to the last digit"
    moved = [r for r in compared if r["status"] != "ok"]
    if moved:
        worst = max(moved, key=lambda r: r["max |episode delta|"] or 0.0)
        line += (
            f"; the largest per-episode difference is {worst['max |episode delta|']} F1 ({worst['cell']}, torch "
            f"threads reference/here {worst['threads']}: another thread count or CPU sums in another order)"
        )
    return rows, line


def adopt(fresh: Path, committed: Path) -> None:
    """Put a rerun's record (and trace) in place of the committed one it reproduced: same per-episode F1,
    with what the current record layout adds (predictions, input, predict_s). Atomic per file."""
    for suffix in (".trace.json", ".json"):  # the record last: a kill in between leaves the old record whole
        src = fresh.with_name(fresh.stem + suffix)
        if src.exists():
            write_text_atomic(committed.with_name(committed.stem + suffix), src.read_text())


def check_suite(
    suite: Suite, opts: RunOptions, tolerance: float = 0.0, adopt_reproduced: bool = False
) -> tuple[list[dict[str, Any]], bool]:
    """Rerun every selected cell that has a committed record under ``opts.results_dir``; compare.

    A cell passes when it saw the same test episodes (same episode-file hash) and every episode's
    F1 is within ``tolerance`` of the committed one. Another torch thread count sums in another
    order, so trained methods may move in the last digits; each row shows both counts. Returns a
    row per committed cell and whether there was at least one and all passed; a committed record that ran
    another configuration than its row declares now (``stale_options``) is a failing row, not rerun. With
    ``adopt_reproduced``, a cell that reproduces exactly (every episode's F1 equal) replaces its
    committed record by the rerun's, which carries the current layout's fields (predictions), and a
    cell whose record has them already is not rerun (nothing to adopt; its row says so).
    """
    check_device(opts.device)
    domains, todo, done = select(suite, opts)
    by_name = {d.name: d for d in domains}
    rows = []

    def row_of(plan: Any) -> dict[str, Any]:
        return {"method": plan.label, "target": plan.cell.target, "K": plan.cell.k, "seed": plan.cell.seed}

    for plan in todo:  # a committed record its row no longer declares fails without a rerun: rerun it with bench run
        if found := stale_record(plan):
            record, stale = found
            status = f"STALE ({describe_drift(stale)})"
            rows.append(row_of(plan) | {"committed F1": round(record["f1"], 4), "status": status})

    if adopt_reproduced:
        current = [p for p in done if "predictions" in json.loads(p.path.read_text())]
        done = [p for p in done if p not in current]
        rows += [row_of(p) | {"status": "ok, has predictions already (not rerun)"} for p in current]
    if done:
        check_encoder(opts.encoder)
    meta = provenance(opts.command)
    with tempfile.TemporaryDirectory(prefix="bench-check-") as scratch:
        for plan in done:  # each committed cell's own plan, rerun as it is into the scratch folder
            fresh = Path(scratch) / plan.path.relative_to(opts.results_dir)
            record, traces = run_cell(plan, by_name, dataclasses.replace(opts, results_dir=Path(scratch)))
            write_cell(dataclasses.replace(plan, path=fresh), record, traces, meta | {"env": environment()})
            old = json.loads(plan.path.read_text())
            new = json.loads(fresh.read_text())
            status, worst = compare_records(old, new, tolerance)
            if adopt_reproduced and status == "ok" and worst == 0.0:
                adopt(fresh, plan.path)
                status = "ok, adopted"
            rows.append(
                row_of(plan)
                | {
                    "committed F1": round(old["f1"], 4),
                    "now F1": round(new["f1"], 4),
                    "max |episode delta|": "-" if worst is None else f"{worst:.2e}",
                    "threads then/now": f"{old.get('env', {}).get('torch_threads')}/{new['env']['torch_threads']}",
                    "status": status,
                }
            )
    return rows, bool(rows) and all(row["status"].startswith("ok") for row in rows)

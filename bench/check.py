"""Regression check: rerun a suite's committed cells into a scratch folder and compare, episode by episode."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

from bench.records import write_text_atomic
from bench.runner import RunOptions, plan_suite, run_suite
from bench.suites import Suite


def compare_records(old: dict[str, Any], new: dict[str, Any], tolerance: float) -> tuple[str, float | None]:
    """('ok' | 'CHANGED' | 'other episodes', the largest per-episode |F1 difference|)."""
    if old["episodes_sha256"] != new["episodes_sha256"] or len(old["f1_per_episode"]) != len(new["f1_per_episode"]):
        return "other episodes", None
    worst = max((abs(a - b) for a, b in zip(old["f1_per_episode"], new["f1_per_episode"], strict=True)), default=0.0)
    return ("ok" if worst <= tolerance else "CHANGED"), worst


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
    row per committed cell and whether there was at least one and all passed. With
    ``adopt_reproduced``, a cell that reproduces exactly (every episode's F1 equal) replaces its
    committed record by the rerun's, which carries the current layout's fields (predictions), and a
    cell whose record has them already is not rerun (nothing to adopt; its row says so).
    """
    committed = [r for r in plan_suite(suite, opts) if r["state"] == "done"]
    rows = []
    if adopt_reproduced:
        current = [r for r in committed if "predictions" in json.loads(Path(r["record"]).read_text())]
        committed = [r for r in committed if r not in current]
        for r in current:
            row = {"method": r["method"], "target": r["target"], "K": r["K"], "seed": r["seed"]}
            rows.append(row | {"status": "ok, has predictions already (not rerun)"})
    with tempfile.TemporaryDirectory(prefix="bench-check-") as scratch:
        for r in committed:
            only = dataclasses.replace(
                opts,
                results_dir=Path(scratch),
                force=False,
                only_methods=(r["label"],),
                only_targets=(r["target"],),
                seeds=(r["seed"],),
                shots=(r["K"],),
                log=[],
            )
            (fresh,) = run_suite(suite, only)
            old = json.loads(Path(r["record"]).read_text())
            new = json.loads(fresh.read_text())
            status, worst = compare_records(old, new, tolerance)
            if adopt_reproduced and status == "ok" and worst == 0.0:
                adopt(fresh, Path(r["record"]))
                status = "ok, adopted"
            rows.append(
                {
                    "method": r["method"],
                    "target": r["target"],
                    "K": r["K"],
                    "seed": r["seed"],
                    "committed F1": round(old["f1"], 4),
                    "now F1": round(new["f1"], 4),
                    "max |episode delta|": "-" if worst is None else f"{worst:.2e}",
                    "threads then/now": f"{old.get('env', {}).get('torch_threads')}/{new['env']['torch_threads']}",
                    "status": status,
                }
            )
    return rows, bool(rows) and all(row["status"].startswith("ok") for row in rows)

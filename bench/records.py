"""Result records: one JSON file per cell, carrying everything needed to trust it later."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

RECORD_VERSION = 1
ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(os.environ.get("MFNER_RESULTS_DIR", ROOT / "results"))
_PACKAGES = ("torch", "transformers", "seqeval", "numpy", "pandas", "pytorch-crf")


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    commit = git("rev-parse", "HEAD")
    return {
        "commit": commit or None,
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None,
    }


def environment() -> dict[str, Any]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": __import__("torch").get_num_threads(),
        "packages": versions,
        "harness": __import__("mfner").__version__,
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def provenance(command: list[str] | None = None) -> dict[str, Any]:
    return {
        "git": git_state(),
        "env": environment(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(command if command is not None else ["bench", *sys.argv[1:]]),
    }


def label_folder(label: str) -> str:
    """The folder name of a table row's records."""
    return label.replace("/", "_").replace(" ", "_")


def record_path(results_dir: Path, suite: str, label: str, target: str, k: int, seed: int) -> Path:
    safe = label_folder(label)
    return results_dir / suite / safe / f"{target}-k{k}-s{seed}.json"


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Atomic write: a crash never leaves a half-written result."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"record_version": RECORD_VERSION, **record}, indent=1, sort_keys=True))
    tmp.replace(path)


def load_records(results_dir: Path, suite: str, pattern: str = "*") -> pd.DataFrame:
    """Records of a suite as rows (label, method, target, k, seed, f1, ...); ``pattern`` picks label folders."""
    rows = []
    for path in sorted((results_dir / suite).glob(f"{pattern}/*.json")):
        if path.name.endswith(".trace.json"):
            continue
        rec = json.loads(path.read_text())
        rows.append(
            {
                key: rec.get(key)
                for key in (
                    "label",
                    "method",
                    "target",
                    "sources",
                    "k",
                    "seed",
                    "f1",
                    "n_episodes",
                    "wall_s",
                    "peak_rss_mb",
                )
            }
            | {"path": str(path)}
        )
    return pd.DataFrame(rows)

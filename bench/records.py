"""Result records: one JSON file per cell, carrying everything needed to trust it later."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from fewshot_ner.datasets import DATASETS, DEFAULT_IMAGE_TEXT
from fewshot_ner.paths import atomic_path


def bundled_domains() -> frozenset[str]:
    """Domains with a fixed folder (shipped in ``data/``); SNAP's folder is the user's."""
    names = {name for name, spec in DATASETS.items() if spec.folder is not None}
    parts = {f"{n}-{p}" for n in names for p in ("devtrain", "train", "valid")}  # probe and full-data parts
    return frozenset(names | parts)


RECORD_VERSION = 2  # 2: input, encoder, sources in the identity, predict_s, predictions
CODE_ROOT = Path(__file__).resolve().parent.parent  # where this code lives (its git commit goes in records)


def project_root(start: Path | None = None) -> Path:
    """The checkout the user stands in: the nearest folder upward from ``start`` (default: the working
    directory) with this project's ``pyproject.toml``; else the folder this code lives in.

    An installed ``bench`` run from a checkout follows that checkout's ``results/`` and ``reports/``,
    not the folder the package was installed from.
    """
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and 'name = "mfner-bench"' in pyproject.read_text(errors="replace"):
            return folder
    return CODE_ROOT


ROOT = project_root()
RESULTS_DIR = Path(os.environ.get("MFNER_RESULTS_DIR", ROOT / "results"))
REPORTS_DIR = ROOT / "reports"
QUICK_REFERENCE_DIR = ROOT / "reference" / "quick"  # the maintainers' --quick cells, never in the tables
_PACKAGES = ("torch", "transformers", "seqeval", "numpy", "pandas", "pytorch-crf")
OUTPUT_DIRS = ("results/", "reports/", "reference/")  # what runs write; changes there leave the code as committed


def git_state() -> dict[str, Any]:
    """The commit, and whether the code differs from it (changes under ``OUTPUT_DIRS`` don't count)."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=CODE_ROOT, capture_output=True, text=True, check=False).stdout
        return out.rstrip("\n")  # porcelain lines start with a status column that may be a space

    commit = git("rev-parse", "HEAD")
    changed = sorted(line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines())
    code = [f for f in changed if not f.startswith(OUTPUT_DIRS)]
    state = {
        "commit": commit or None,
        "dirty": bool(code) if commit else None,
        "dirty_files": changed,  # what differed from the commit, by name
    }
    if code:  # what differed, by content: the same hash means the same uncommitted code
        diff = git("diff", "HEAD", "--", *code)
        state["diff_sha256"] = hashlib.sha256(diff.encode()).hexdigest()
    return state


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
        "harness": __import__("fewshot_ner").__version__,
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


def record_path(
    results_dir: Path, suite: str, label: str, target: str, k: int, seed: int, sources: list[str] | None = None
) -> Path:
    """A cell's record. Its identity includes the source domains: a cell trained on sources other than
    the bundled leave-one-out ones (SNAP given with ``--snap-dir``) is another file, ``...-from-<sources>``."""
    safe = label_folder(label)
    suffix = "" if sources is None or set(sources) <= bundled_domains() else "-from-" + "+".join(sorted(sources))
    return results_dir / suite / safe / f"{target}{suffix}-k{k}-s{seed}.json"


def times_partial(record: dict[str, Any]) -> bool:
    """Whether a record's seconds leave out part of its training: it resumed from a checkpoint, and its
    ``resumed`` note does not say how long the earlier processes trained (records before that was carried)."""
    resumed = record.get("resumed")
    return isinstance(resumed, dict) and resumed.get("earlier_train_s") is None


def set_aside(path: Path, suffix: str) -> Path:
    """Move ``path`` to ``<name><suffix>`` (``.corrupt``, ``.stale``), or ``<name><suffix>.N`` where an earlier copy
    is there already (it is kept, not overwritten); returns where it went."""
    aside, n = path.with_name(path.name + suffix), 0
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}{suffix}.{n}")
    path.replace(aside)
    return aside


def read_record(path: Path, on_corrupt: Callable[[str], None] | None = None) -> dict[str, Any] | None:
    """A record, or None if it can't be read as one: then it is moved aside to ``<name>.corrupt``
    (so it never counts as done, and nothing is lost) and ``on_corrupt`` hears which file and why."""
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or "f1_per_episode" not in record:
            raise ValueError("not a result record (no f1_per_episode)")
        return record
    except (OSError, ValueError) as err:
        try:
            aside = set_aside(path, ".corrupt")
        except OSError:
            aside = path
        if on_corrupt is not None:
            on_corrupt(f"{path}: unreadable record ({err}); moved to {aside.name}, the cell counts as not done")
        return None


def reports_dir_for(results_dir: Path) -> Path:
    """``reports/`` for the committed ``results/``; ``<results_dir>/reports`` for any other folder.

    A trial run into a scratch folder must never overwrite the committed reports.
    """
    return REPORTS_DIR if results_dir.resolve() == RESULTS_DIR.resolve() else results_dir / "reports"


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a per-process temporary file: concurrent workers never interleave a file."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Atomic write: a crash never leaves a half-written result."""
    write_text_atomic(path, json.dumps({"record_version": RECORD_VERSION, **record}, indent=1, sort_keys=True))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


STALE_UNREADABLE_CLAIM_S = 10.0  # a claim is written in microseconds; unreadable for longer: its writer died


def _read_claim(lock: Path) -> dict[str, Any] | None:
    """A lock file's holder; None while it is being written or after it was removed."""
    try:
        holder = json.loads(lock.read_text())
        return holder if isinstance(holder, dict) else None
    except (OSError, ValueError):
        return None


def _unreadable_and_stale(lock: Path) -> bool:
    """An empty or unparsable lock older than a few seconds: what a kill between create and write leaves."""
    try:
        return time.time() - lock.stat().st_mtime > STALE_UNREADABLE_CLAIM_S
    except OSError:
        return False


def claim_holder(path: Path) -> dict[str, Any] | None:
    """Who holds the claim on a cell's record, if a live process does (or one on another host)."""
    holder = _read_claim(path.with_suffix(".lock"))
    return holder if holder is not None and _holds(holder) else None


CLAIM_TTL = dt.timedelta(hours=24)  # longer than any cell; a claim from another host expires after it


def _holds(holder: dict[str, Any]) -> bool:
    """A claim holds while its process lives; one from another host can't be checked, so it holds
    until ``CLAIM_TTL`` has passed (a machine that went away must not block the cell for ever)."""
    if holder.get("host") == socket.gethostname():
        try:
            return _alive(int(holder.get("pid", -1)))
        except (TypeError, ValueError):  # a claim no process of ours wrote ({"pid": "abc"}): nobody holds it
            return False
    try:
        since = dt.datetime.fromisoformat(holder["since"])
    except (KeyError, TypeError, ValueError):
        return True
    return dt.datetime.now(dt.timezone.utc) - since < CLAIM_TTL


@contextmanager
def claimed(path: Path) -> Iterator[bool]:
    """Hold ``<record>.lock`` while a cell runs, so workers sharing a results folder split the grid.

    Yields False when another live process holds the claim (on another host: any claim younger
    than ``CLAIM_TTL``, since its process can't be checked from here). A claim whose process on
    this host has died, or an expired one, is taken over. The lock goes when the block ends,
    however it ends (SIGTERM included: ``bench`` turns it into an exit).
    """
    lock = path.with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": dt.datetime.now(dt.timezone.utc).isoformat()}
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        holder = _read_claim(lock)
        if holder is None and not _unreadable_and_stale(lock):  # being written this instant, not ours to take
            yield False
            return
        if holder is not None and _holds(holder):
            yield False
            return
        write_text_atomic(lock, json.dumps(me))  # a dead holder's claim is taken over
        if (_read_claim(lock) or {}).get("pid") != me["pid"]:  # another worker took it first
            yield False
            return
    else:
        try:
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(me))
        except OSError as err:  # a full disk: leave no empty claim behind that would make the next run skip
            lock.unlink(missing_ok=True)
            raise OSError(f"can't write the claim {lock}: {err.strerror or err}") from None
    try:
        yield True
    finally:
        lock.unlink(missing_ok=True)


def load_records(results_dir: Path, suite: str, pattern: str = "*") -> pd.DataFrame:
    """Records of a suite as rows (label, method, target, k, seed, f1, ...); ``pattern`` picks label folders."""
    rows = []
    for path in sorted((results_dir / suite).glob(f"{pattern}/*.json")):
        if path.name.endswith(".trace.json"):
            continue
        rec = read_record(path, on_corrupt=lambda line: print(f"warning: {line}", file=sys.stderr))
        if rec is None:
            continue
        env = rec.get("env", {})
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
                    "fit_s",
                    "predict_s",
                    "peak_rss_mb",
                    "f1_per_episode",
                    "episodes_sha256",
                    "input",
                    "encoder",
                    "image_text",
                    "precision",
                    "row",
                    "options",
                    "config",
                    "quick",
                    "predictions",
                    "max_episodes",
                )
            }
            | {"threads": env.get("torch_threads"), "platform": env.get("platform"), "path": str(path)}
            | {"dirty": bool((rec.get("git") or {}).get("dirty"))}
            | {"resumed": "resumed" in rec}
            # seconds that leave out part of the training are no cost figure
            | ({"wall_s": None, "fit_s": None, "predict_s": None} if times_partial(rec) else {})
            | {"fit_cached": bool((rec.get("fit_report") or {}).get("loaded_from_cache"))}
            | ({"label": f"{rec['label']} (from {'+'.join(rec['sources'])})"} if "-from-" in path.name else {})
        )
    return pd.DataFrame(rows)


#: The columns of the results as data: a record's row, run axes, cell, F1 and cost (``bench.api.results``,
#: ``reports/<suite>.csv``, ``bench report --format csv|json``).
TIDY_COLUMNS = (
    "suite", "label", "row", "method", "encoder", "input", "image_text", "precision", "target", "k", "seed",
    "f1", "n_episodes", "episodes_sha256", "wall_s", "fit_s", "peak_rss_mb", "threads",
)  # fmt: skip


def tidy(rows: pd.DataFrame, suite: str) -> pd.DataFrame:
    """``load_records`` rows as one row per cell in ``TIDY_COLUMNS``, sorted; fields older records lack read
    their defaults (precision fp32, the BLIP-2 captions, the row from the label)."""
    if rows.empty:
        return pd.DataFrame(columns=list(TIDY_COLUMNS))
    table = rows.assign(suite=suite).reindex(columns=list(TIDY_COLUMNS))
    table["precision"] = table["precision"].fillna("fp32")
    table["image_text"] = table["image_text"].fillna(DEFAULT_IMAGE_TEXT)
    table["row"] = table["row"].fillna(table["label"].str.partition("@")[0])
    table["f1"] = table["f1"].round(4)
    return table.sort_values(["label", "target", "k", "seed"], kind="stable").reset_index(drop=True)

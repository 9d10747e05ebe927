"""Where the harness keeps caches (embeddings, episodes, models); never inside git."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CACHE_ENV = "MFNER_CACHE"


def cache_dir() -> Path:
    """``$MFNER_CACHE`` or ``~/.cache/mfner``; created on first use."""
    path = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "mfner")
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A per-process temporary path beside ``path`` to write to; moved onto ``path`` when the block ends
    without error, removed otherwise: a reader (another worker) sees the whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def computed_once(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock (``flock`` on ``.<name>.lock`` beside ``path``) while a cache file is
    looked up and, when missing, computed and written: of two processes after the same file, the second waits and
    then finds it, instead of computing it again. The OS drops the lock of a process that dies; where ``fcntl`` is
    missing (Windows) there is no lock, and both compute it, as before."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux or macOS
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

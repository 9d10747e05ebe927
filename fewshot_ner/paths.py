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

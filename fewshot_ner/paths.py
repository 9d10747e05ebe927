"""Where the harness keeps caches (embeddings, episodes, models); never inside git."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "MFNER_CACHE"


def cache_dir() -> Path:
    """``$MFNER_CACHE`` or ``~/.cache/mfner``; created on first use."""
    path = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "mfner")
    path.mkdir(parents=True, exist_ok=True)
    return path

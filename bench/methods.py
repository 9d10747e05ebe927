"""The one place where every method joins the registry: the paper's model and each baseline.

``fewshot_ner.method.METHODS`` holds the classes; importing this module fills it. ``bench list``,
the runner and the reports all go through here, so a method registered here is known everywhere; so is one
an installed plugin registers (``bench.plugins``).
"""

from __future__ import annotations

import baselines  # noqa: F401 - baselines/__init__.py imports one module per baseline
import mfner.method  # noqa: F401 - registers "mfner"
from bench.plugins import load_entry_points
from fewshot_ner.method import METHODS

load_entry_points()  # installed plugins (the mfner_bench.plugins entry points); --include files: bench.plugins

__all__ = ["METHODS"]

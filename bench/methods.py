"""The one place where every method joins the registry: the paper's model and each baseline.

``fewshot_ner.method.METHODS`` holds the classes; importing this module fills it. ``bench list``,
the runner and the reports all go through here, so a method registered here is known everywhere.
"""

from __future__ import annotations

import baselines  # noqa: F401 - baselines/__init__.py imports one module per baseline
import mfner.method  # noqa: F401 - registers "mfner"
from fewshot_ner.method import METHODS

__all__ = ["METHODS"]

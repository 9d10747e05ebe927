"""Methods and suites from outside the package: ``bench --include PATH`` and the ``mfner_bench.plugins`` entry points.

A plugin is Python that registers into the harness's registries when imported::

    from fewshot_ner.method import METHODS, ConfiguredMethod
    from bench.suites import SUITES, MethodSpec, Suite

    @METHODS.register("my-method")
    class MyMethod(ConfiguredMethod): ...

    SUITES.add("mine", Suite(name="mine", description="...", methods=(MethodSpec("Mine", "my-method"),)))

``--include`` takes a ``.py`` file or a folder (its ``.py`` files, in name order), as lm-evaluation-harness's
``--include_path``; an installed package exposes a module in the ``mfner_bench.plugins`` entry-point group,
loaded whenever the method registry is. ``fewshot_ner.conformance.check_method`` checks such a method.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path

ENTRY_POINT_GROUP = "mfner_bench.plugins"


def include(path: str | Path) -> list[str]:
    """Import a plugin file, or every ``.py`` file of a folder; the module names. A file imported before (by
    this process) is not imported again. Errors name the file (and the line, for a syntax error)."""
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise FileNotFoundError(f"--include {path}: no such file or folder")
    files = sorted(path.glob("*.py")) if path.is_dir() else [path]
    if not files:
        raise ValueError(f"--include {path}: no .py file there")
    names = []
    for file in files:
        name = f"bench_include_{file.stem}_{hashlib.sha256(str(file).encode()).hexdigest()[:8]}"
        names.append(name)
        if name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise ValueError(f"--include {file}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except SyntaxError as err:
            del sys.modules[name]
            raise ValueError(f"--include {err.filename}:{err.lineno}: {err.msg}") from None
        except Exception as err:
            del sys.modules[name]
            raise ValueError(f"--include {file}: importing it raised {type(err).__name__}: {err}") from err
    return names


def load_entry_points() -> list[str]:
    """Import every module of the ``mfner_bench.plugins`` entry-point group (installed plugins)."""
    loaded = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()
        loaded.append(ep.name)
    return loaded


__all__ = ["ENTRY_POINT_GROUP", "include", "load_entry_points"]

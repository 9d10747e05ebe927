"""The floors hold: the core imports no method or harness package; methods never import the harness."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "fewshot_ner": {"mfner", "baselines", "bench"},
    "mfner": {"baselines", "bench"},
    "baselines": {"bench"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_runs_upward(package):
    files = sorted((ROOT / package).glob("*.py"))
    assert files
    bad = {f.name: sorted(imported_packages(f) & FORBIDDEN[package]) for f in files}
    assert not {k: v for k, v in bad.items() if v}, f"{package} imports a floor above it: {bad}"


def test_the_checker_catches_an_upward_import(tmp_path):
    (tmp_path / "m.py").write_text("import bench.runner\nfrom mfner.method import MFNER\n")
    assert imported_packages(tmp_path / "m.py") == {"bench", "mfner"}

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


def bench_import_graph() -> dict[str, set[str]]:
    """bench module -> the bench modules it imports anywhere in its text (top level or inside a function)."""
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / "bench").glob("*.py")):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bench."):
                found.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("bench.")}
        graph[path.stem] = found - {path.stem}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, nxt])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_the_harness_imports_in_no_circle():
    assert find_cycle(bench_import_graph()) is None, find_cycle(bench_import_graph())


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None

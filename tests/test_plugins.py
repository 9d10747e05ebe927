"""Methods and suites from outside the package: ``--include`` a file, run its suite, check its method."""

from __future__ import annotations

import json
import textwrap

import pytest

from bench.cli import main
from bench.methods import METHODS
from bench.suites import SUITES
from fewshot_ner.conformance import check_method

PLUGIN = textwrap.dedent(
    '''
    """A user's method and suite: the lookup floor that also tags every capitalised word as the first type."""
    from baselines.lookup import Lookup
    from bench.suites import SUITES, MethodSpec, Suite
    from fewshot_ner.method import METHODS


    @METHODS.register("plug-caps")
    class Caps(Lookup):
        def predict(self, episode):
            out = []
            for tags, q in zip(super().predict(episode), episode.query):
                first = "B-" + episode.types[0]
                out.append([first if t == "O" and w[:1].isupper() else t for t, w in zip(tags, q.tokens)])
            return out


    SUITES.add(
        "plug",
        Suite(name="plug", description="a plugin's suite", methods=(MethodSpec("Caps", "plug-caps"),),
              domains=("mini17", "mini15"), shots=(1,), seeds=(0,), max_episodes=4),
    )
    '''
)


@pytest.fixture
def plugin(tmp_path):
    path = tmp_path / "plugins" / "caps.py"
    path.parent.mkdir()
    path.write_text(PLUGIN)
    yield path
    METHODS._items.pop("plug-caps", None)  # the registries are the process's: leave them as they were
    SUITES._items.pop("plug", None)


def test_an_included_method_and_suite_list_run_and_conform(plugin, small_domains, tmp_path, capsys, tiny_model_dir):
    assert main(["--include", str(plugin.parent), "list"]) == 0  # a folder: its .py files
    out = capsys.readouterr().out
    assert "plug-caps" in out and "plug" in out
    results = tmp_path / "results"
    argv = ["run", "--include", str(plugin), "--suite", "plug", "--results-dir", str(results), "--quiet"]
    assert main([*argv, "--no-report"]) == 0  # the same file again: imported once, no collision
    records = sorted(results.rglob("*-k1-s0.json"))
    assert len(records) == 2 and {json.loads(p.read_text())["method"] for p in records} == {"plug-caps"}
    check_method(METHODS.get("plug-caps"), {}, tiny_model_dir)


def test_a_broken_include_is_one_line_naming_the_file(tmp_path, capsys):
    assert main(["--include", str(tmp_path / "missing.py"), "list"]) == 2
    assert "missing.py: no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\ndef broken(:\n")
    assert main(["list", "--include", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2:" in err and err.count("\n") == 1

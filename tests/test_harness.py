"""End to end: a suite over two small domains cut from the real data, with the tiny encoder."""

import json
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.report import suite_table
from bench.runner import RunOptions, run_suite
from bench.suites import MethodSpec, Suite
from fewshot_ner.datasets import load_domain


def test_suite_runs_resumes_and_reports(suite, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("MFNER_SNAP_DIR", raising=False)
    opts = RunOptions(results_dir=tmp_path, encoder=str(tiny_model_dir), progress=False)
    paths = run_suite(suite, opts)
    assert len(paths) == 4  # 1 method x 2 targets x 2 seeds; 'nope' and SNAP skipped with a reason
    assert any("skip domain snap" in line for line in opts.log)
    assert any("'not-a-method' is not implemented" in line for line in opts.log)

    rec = json.loads(paths[0].read_text())
    assert rec["n_episodes"] == 6 and len(rec["f1_per_episode"]) == 6
    assert 0.0 <= rec["f1"] <= 100.0
    assert rec["sources"] and rec["target"] not in rec["sources"]
    assert len(rec["episodes_sha256"]) == 64 and rec["git"]["commit"] and rec["env"]["packages"]["torch"]
    assert rec["config"] == {"input": "text", "similarity": "dot", "encoder": str(tiny_model_dir)}

    # Resumable: a second run finds every cell done and rewrites nothing.
    stamp = paths[0].stat().st_mtime_ns
    opts2 = RunOptions(results_dir=tmp_path, encoder=str(tiny_model_dir), progress=False)
    assert sorted(run_suite(suite, opts2)) == sorted(paths)
    assert paths[0].stat().st_mtime_ns == stamp and "4 cell(s) already have results" in " ".join(opts2.log)

    table = suite_table(suite, tmp_path)
    assert (
        list(table["method"]) == [f"proto-dot@{tiny_model_dir.name}"]
        and "(n=2)" in table["mini17"].iloc[0]
        and table["SNAP"].iloc[0] == "not run"
    )


def test_same_seed_same_f1(suite, tiny_model_dir, tmp_path):
    a = run_suite(
        suite, RunOptions(results_dir=tmp_path / "a", encoder=str(tiny_model_dir), progress=False, seeds=(1,))
    )
    b = run_suite(
        suite, RunOptions(results_dir=tmp_path / "b", encoder=str(tiny_model_dir), progress=False, seeds=(1,))
    )
    for pa, pb in zip(sorted(a), sorted(b), strict=True):
        assert json.loads(pa.read_text())["f1_per_episode"] == json.loads(pb.read_text())["f1_per_episode"]


def test_cli_help_and_errors(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0 and "bench run --suite table3" in capsys.readouterr().out
    assert main(["run", "--suite", "tabel3"]) == 2
    assert "Did you mean 'table3'" in capsys.readouterr().err


def test_cli_data_stats_shows_counts_and_repairs(capsys, monkeypatch):
    monkeypatch.delenv("MFNER_SNAP_DIR", raising=False)
    assert main(["data", "stats"]) == 0
    out = capsys.readouterr().out
    assert "8257 tweets (paper: 8257)" in out and "4819 tweets (paper: 4819)" in out
    assert "SNAP (snap): not available" in out
    t15_block = out[out.index("T15 (twitter2015") :]
    t15_all = [line for line in t15_block.splitlines() if line.startswith("all")][0]
    assert t15_all.split()[1:3] == ["8257", "133439"] and "374" in t15_all.split()


def test_domains_load_for_the_fixture(small_domains):
    assert len(load_domain(small_domains[0]).sentences) == 450


def test_case_figure_from_a_trace(tmp_path):
    from bench.records import write_record
    from mfner.figures import write_case_figures

    rows = [
        {
            "episode": 0,
            "sentence": 0,
            "key": "k",
            "token": t,
            "gold": g,
            "pred": p,
            "pred_no_image": n,
            "pred_fixed_denoiser": f,
            "alpha": 0.7,
            "beta": 0.3,
            "image_text": "a man" if i == 0 else "",
        }
        for i, (t, g, p, n, f) in enumerate(
            [("Obama", "B-PER", "B-PER", "B-LOC", "B-PER"), ("speaks", "O", "O", "O", "O")]
        )
    ]
    cell = {"label": "MFNER", "target": "twitter2017", "k": 1, "seed": 0, "rows": rows}
    write_record(tmp_path / "res" / "s" / "MFNER" / "twitter2017-k1-s0.trace.json", cell)
    from bench.traces import load_traces

    (figure,) = write_case_figures(load_traces(tmp_path / "res", "s"), "s", tmp_path / "rep" / "figures")
    assert figure.name == "case-s-MFNER-twitter2017-k1-s0.png" and figure.stat().st_size > 5000
    other = tmp_path / "rep" / "figures" / "case-other-MFNER-twitter2017-k1-s0.png"
    other.write_bytes(b"another suite's")
    longer = tmp_path / "rep" / "figures" / "case-s-base-MFNER-twitter2017-k1-s0.png"  # suite "s-base" extends "s"
    longer.write_bytes(b"suite s-base's")
    (tmp_path / "res" / "s" / "MFNER" / "twitter2017-k1-s0.trace.json").unlink()  # the cell is redone later
    figures = tmp_path / "rep" / "figures"
    assert write_case_figures(load_traces(tmp_path / "res", "s"), "s", figures, ("s", "s-base", "other")) == []
    assert not figure.exists() and other.exists() and longer.exists()  # a stale figure goes; other suites' stay


def test_partial_runs_must_not_land_in_results(suite):
    from bench.records import RESULTS_DIR

    with pytest.raises(ValueError, match="--results-dir"):
        run_suite(suite, RunOptions(results_dir=RESULTS_DIR, eval_episodes=3, progress=False))


def test_other_encoders_get_their_own_rows(suite, tiny_model_dir, tmp_path):
    paths = run_suite(suite, RunOptions(results_dir=tmp_path, encoder=str(tiny_model_dir), progress=False, seeds=(0,)))
    assert {p.parent.name for p in paths} == {f"proto-dot@{tiny_model_dir.name}"}


def test_cli_episodes_prints_counts_beside_the_paper(capsys, monkeypatch):
    monkeypatch.delenv("MFNER_SNAP_DIR", raising=False)
    assert main(["episodes", "--k", "5"]) == 0
    out = capsys.readouterr().out
    t17 = next(line.split() for line in out.splitlines() if line.startswith("T17"))
    assert t17[1] == "5" and t17[4] == "80"  # K, then the paper's 80 episodes
    assert 60 <= int(t17[2]) <= 110  # ours, capped at 200: all of them


def _lock(path: Path, pid: int, host: str | None = None, hours_ago: float = 0.0) -> Path:
    import datetime as dt
    import socket

    lock = path.with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=hours_ago)
    lock.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "since": since.isoformat()}))
    return lock


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_claims_split_work_between_workers(tmp_path):
    import os

    from bench.records import claimed

    cell = tmp_path / "row" / "t-k1-s0.json"
    with claimed(cell) as first:
        assert first and cell.with_suffix(".lock").exists()
        with claimed(cell) as second:  # same host, live holder: not ours
            assert not second
    assert not cell.with_suffix(".lock").exists()  # released

    _lock(cell, os.getpid(), host="another-host")
    with claimed(cell) as mine:
        assert not mine  # a claim from elsewhere can't be checked, so it holds
    _lock(cell, os.getpid(), host="another-host", hours_ago=25)
    with claimed(cell) as mine:
        assert mine  # ... until it expires

    lock = _lock(cell, _dead_pid())
    with claimed(cell) as mine:
        assert mine and json.loads(lock.read_text())["pid"] == os.getpid()  # a dead worker's claim is taken over
    assert not lock.exists()

    with pytest.raises(RuntimeError), claimed(cell) as mine:
        raise RuntimeError("cell failed")
    assert not lock.exists()  # released on failure too


def test_runner_skips_a_cell_another_worker_holds(suite, tiny_model_dir, tmp_path):
    import os

    from bench.records import record_path
    from bench.runner import row_label

    label = row_label("proto-dot", str(tiny_model_dir))
    held = record_path(tmp_path, suite.name, label, "mini17", 1, 0)
    _lock(held, os.getppid())  # a live process on this host
    opts = RunOptions(results_dir=tmp_path, encoder=str(tiny_model_dir), progress=False, seeds=(0,))
    paths = run_suite(suite, opts)
    assert held not in paths and not held.exists() and len(paths) == 1
    assert any("another worker is running it" in line for line in opts.log)


def test_report_pairs_variants_with_the_reference(suite, tiny_model_dir, tmp_path, capsys):
    from dataclasses import replace

    from bench.report import write_report

    methods = (MethodSpec("proto-dot", "proto-frozen", {"similarity": "dot"}), MethodSpec("proto-euc", "proto-frozen"))
    paired = replace(suite, methods=methods, reference="proto-dot", seeds=(0,))
    run_suite(paired, RunOptions(results_dir=tmp_path, encoder=str(tiny_model_dir), progress=False))
    logged = [line for line in capsys.readouterr().out.splitlines() if ": F1 " in line]
    assert len(logged) == 4 and all(line.startswith("proto-") and f"@{tiny_model_dir.name}" in line for line in logged)
    text = write_report(paired, tmp_path, tmp_path / "reports").read_text()
    section = text.split("## Paired differences against proto-dot")[1].split("##")[0]  # one encoder's rows pair
    lines = [line for line in section.splitlines() if line.startswith(f"| 1   | proto-euc@{tiny_model_dir.name} ")]
    assert len(lines) == 2  # one per target, each paired on seed 0
    assert all("| 1/1 " in line or "| 0/1 " in line for line in lines)
    assert "## Encoders" not in text  # every row ran the tiny encoder: no default-encoder twin to pair with


def test_cost_table_counts_cells_and_threads():
    import pandas as pd

    from bench.report import cost_table

    rows = pd.DataFrame(
        [
            {"k": 1, "label": "m", "target": "twitter2017", "wall_s": w, "peak_rss_mb": r, "threads": t}
            for w, r, t in ((10.0, 1024.0, 2), (30.0, 2048.0, 1), (20.0, 512.0, 2))
        ]
    )
    (row,) = cost_table(rows).to_dict("records")
    assert row["target"] == "T17" and row["cells"] == 3 and row["threads"] == "1,2"
    assert (row["wall s (median)"], row["wall s (max)"], row["peak RSS GB (max)"]) == (20, 30, 2.0)
    assert "fit loaded from cache" not in row  # no row read the transfer cache: no column for it
    cached = rows.assign(fit_cached=[False, True, True])
    (row,) = cost_table(cached).to_dict("records")
    assert row["fit loaded from cache"] == 2
    hosts = rows.assign(
        platform=[
            "Linux-6.18.44-fc-v769-x86_64-with-glibc2.36",
            "Linux-6.18.44-fc-v595-x86_64-with-glibc2.36",
            "Linux-6.18.44-fc-v595-x86_64-with-glibc2.36",
        ]
    )
    (row,) = cost_table(hosts).to_dict("records")
    assert row["machines"] == "6.18.44-fc-v595,6.18.44-fc-v769"  # two hosts, named by kernel release
    (row,) = cost_table(hosts.assign(platform=["Darwin-arm", None, None])).to_dict("records")
    assert row["machines"] == "Darwin-arm"  # no release part: the whole string; a record without one is left out
    assert "step tokens" not in cost_table(rows.assign(options=[{}, None, {"step_tokens": 0}]))
    (row,) = cost_table(rows.assign(options=[{}, {"step_tokens": 1024}, {"input": "text"}])).to_dict("records")
    assert row["step tokens"] == "0,1024"  # a group that mixes the two says so


def test_runs_into_another_folder_leave_the_committed_reports_alone(suite, tiny_model_dir, tmp_path, capsys):
    from bench.records import REPORTS_DIR, reports_dir_for
    from bench.report import write_report

    assert reports_dir_for(tmp_path) == tmp_path / "reports"
    before = {p: p.stat().st_mtime_ns for p in REPORTS_DIR.rglob("*") if p.is_file()}
    run_suite(suite, RunOptions(results_dir=tmp_path, encoder=str(tiny_model_dir), progress=False, seeds=(0,)))
    path = write_report(suite, tmp_path)
    assert path == tmp_path / "reports" / f"{suite.name}.md" and path.read_text().startswith("# Suite `mini`")
    assert {p: p.stat().st_mtime_ns for p in REPORTS_DIR.rglob("*") if p.is_file()} == before


def test_a_terminated_worker_releases_its_claim(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    cell = tmp_path / "row" / "t-k1-s0.json"
    code = (
        "import signal, sys, time\n"
        "from pathlib import Path\n"
        "from bench.cli import _exit_on_sigterm\n"
        "from bench.records import claimed\n"
        "signal.signal(signal.SIGTERM, _exit_on_sigterm)\n"
        f"with claimed(Path({str(cell)!r})):\n"
        "    print('claimed', flush=True)\n"
        "    time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "claimed" and cell.with_suffix(".lock").exists()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    time.sleep(0.1)
    assert not cell.with_suffix(".lock").exists()


def test_dry_run_lists_done_running_and_todo(suite, tiny_model_dir, tmp_path, capsys, monkeypatch):
    import os

    from bench.runner import plan_suite
    from bench.suites import SUITES

    opts = RunOptions(results_dir=tmp_path, encoder=str(tiny_model_dir), progress=False, seeds=(0,))
    (done,) = [p for p in run_suite(suite, opts) if "mini17" in p.name]
    _lock(done.with_name("mini15-k1-s1.json"), os.getppid())
    plan = plan_suite(suite, RunOptions(results_dir=tmp_path, encoder=str(tiny_model_dir), progress=False))
    states = {(r["target"], r["seed"]): r["state"] for r in plan}
    assert states[("mini17", 0)] == "done" and states[("mini17", 1)] == "todo"
    assert states[("mini15", 1)].startswith("running (pid")
    assert len(list(tmp_path.rglob("*.json"))) == 2  # planning wrote nothing
    walls = {(r["target"], r["seed"]): (r["wall_s"], r["left_s"]) for r in plan}
    own = json.loads(done.read_text())["wall_s"]
    assert walls[("mini17", 0)] == (own, 0.0)
    assert walls[("mini17", 1)] == (own, own)  # expected: the finished cell of the same row, target and K
    peer = json.loads(done.with_name("mini15-k1-s0.json").read_text())["wall_s"]
    assert walls[("mini15", 1)][0] == peer and 0 <= walls[("mini15", 1)][1] <= peer  # running: minus its time so far

    SUITES.add("mini", suite)
    try:
        assert main(["run", "--suite", "mini", "--dry-run", "--results-dir", str(tmp_path)]) == 0
    finally:
        del SUITES._items["mini"]
    out = capsys.readouterr().out
    assert "0 done, 0 running, 4 todo" in out  # default encoder: other row labels
    assert "cell time left: unknown" in out


def test_check_reproduces_committed_cells_and_catches_a_change(suite, tiny_model_dir, tmp_path, capsys):
    from bench.check import check_suite
    from bench.suites import SUITES

    opts = RunOptions(results_dir=tmp_path, encoder=str(tiny_model_dir), progress=False, seeds=(0,))
    paths = sorted(run_suite(suite, opts))
    rows, ok = check_suite(suite, opts)
    assert ok and len(rows) == 2 and {r["status"] for r in rows} == {"ok"}

    rec = json.loads(paths[0].read_text())
    rec["f1_per_episode"][3] += 0.5  # as if the code had changed one episode's outcome
    paths[0].write_text(json.dumps(rec))
    rows, ok = check_suite(suite, opts, tolerance=0.1)
    assert not ok and sorted(r["status"] for r in rows) == ["CHANGED", "ok"]
    assert check_suite(suite, opts, tolerance=0.6)[1]

    rec["episodes_sha256"] = "0" * 64
    paths[0].write_text(json.dumps(rec))
    assert "other episodes" in [r["status"] for r in check_suite(suite, opts, tolerance=1.0)[0]]

    SUITES.add("mini", suite)
    try:
        argv = ["check", "--suite", "mini", "--encoder", str(tiny_model_dir), "--results-dir", str(tmp_path)]
        assert main([*argv, "--quiet"]) == 1
        assert "1 of 2 cell(s) reproduce" in capsys.readouterr().out
        assert main([*argv, "--seeds", "1", "--quiet"]) == 2  # nothing committed for seed 1
    finally:
        del SUITES._items["mini"]


def test_git_state_names_changed_files_and_ignores_outputs(tmp_path, monkeypatch):
    import subprocess

    from bench import records

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    for name in ("code.py", "reports/t.md", "reference/quick/r.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("a\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setattr(records, "CODE_ROOT", tmp_path)
    assert records.git_state()["dirty"] is False
    (tmp_path / "reports/t.md").write_text("b\n")  # a run rewrote a report: the code is as committed
    (tmp_path / "reference/quick/r.json").write_text("b\n")  # and the quick reference (--results-dir reference/quick)
    state = records.git_state()
    assert state["dirty"] is False and state["dirty_files"] == ["reference/quick/r.json", "reports/t.md"]
    (tmp_path / "code.py").write_text("b\n")
    state = records.git_state()
    assert state["dirty"] is True and state["dirty_files"] == ["code.py", "reference/quick/r.json", "reports/t.md"]


def test_case_figure_draws_emoji_as_a_placeholder(tmp_path):
    import warnings

    import pandas as pd

    from mfner.figures import MISSING_GLYPH, draw_case, drawable

    assert drawable("Hi \N{THUMBS UP SIGN} Zürich") == f"Hi {MISSING_GLYPH} Zürich"
    sentence = pd.DataFrame(
        {
            "token": ["Great", "\N{THUMBS UP SIGN}"],
            "gold": ["O", "O"],
            "pred": ["O", "O"],
            "pred_no_image": ["O", "O"],
            "pred_fixed_denoiser": ["O", "O"],
            "beta": [0.2, 0.8],
            "image_text": ["a man \N{FACE WITH TEARS OF JOY}", ""],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)" for emoji
        draw_case(sentence, "t", tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000


def test_denoiser_table_against_hand_counts(suite, tmp_path):
    from dataclasses import replace

    from bench.records import write_record
    from bench.report import write_report
    from bench.traces import suite_traces
    from mfner.report_hook import denoiser_table

    def trace(label, seed, toks):
        rows = [
            {"episode": 0, "sentence": 0, "token": "w", "gold": g, "pred": p, "pred_no_image": n,
             "pred_fixed_denoiser": f, "alpha": 1 - b, "beta": b, "image_text": ""}
            for g, p, n, f, b in toks
        ]  # fmt: skip
        cell = {"label": label, "target": "twitter2017", "k": 1, "seed": seed, "rows": rows}
        folder = label.replace(" ", "_")
        write_record(tmp_path / "s" / folder / f"twitter2017-k1-s{seed}.trace.json", cell)
        record = {"label": label, "method": "mfner", "target": "twitter2017", "k": 1, "seed": seed, "f1": 1.0,
                  "f1_per_episode": [1.0], "wall_s": 1.0, "peak_rss_mb": 1.0, "sources": ["twitter2015"]}  # fmt: skip
        write_record(tmp_path / "s" / folder / f"twitter2017-k1-s{seed}.json", record)

    trace("MFNER", 0, [("B-PER", "B-PER", "O", "B-PER", 0.2), ("O", "O", "O", "B-LOC", 0.6), ("O", "O", "O", "O", 1.0)])
    trace("MFNER", 1, [("B-PER", "O", "O", "O", 0.4), ("I-PER", "O", "O", "O", 0.8), ("O", "O", "B-LOC", "O", 0.5)])
    trace("MFNER fixed", 0, [("B-PER", "B-PER", "O", "B-PER", 0.5), ("O", "O", "O", "O", 0.5)])
    table = denoiser_table(suite_traces(tmp_path, "s"))
    assert table.method.tolist() == ["MFNER"]  # a constant gate is a setting, not a measurement
    (row,) = table.to_dict("records")
    # seed 0: entity beta 0.2, other 0.8, changed 1/3 and 1/3; seed 1: entity 0.6, other 0.5, 1/3 and 0
    assert row["seeds"] == 2 and row["tokens"] == 6
    assert row["beta, entity tokens"] == f"0.40 ± {np.std([0.2, 0.6], ddof=1):.2f}"
    assert row["beta, other tokens"] == f"0.65 ± {np.std([0.8, 0.5], ddof=1):.2f}"
    assert row["% changed, no image text"] == "33.33 ± 0.00"
    assert row["% changed, fixed gate"] == f"16.67 ± {np.std([100 / 3, 0], ddof=1):.2f}"
    shown = denoiser_table(suite_traces(tmp_path, "another", include=(("s", "MFNER"), ("s", "MFNER fixed"))))
    assert shown.to_dict("records") == [row]  # a suite shows the traces of the rows it includes
    text = write_report(replace(suite, name="s"), tmp_path, tmp_path / "reports").read_text()
    section = text.split("## Denoiser (traced episodes)")[1].split("##")[0]
    assert [line.split("|")[2].strip() for line in section.splitlines() if line.startswith("|   1")] == ["MFNER"]


def test_set_runs_a_row_of_its_own_equal_to_a_declared_peer(suite, tiny_model_dir, tmp_path, capsys):
    """--set similarity=euclidean on proto-dot gives the same F1 as a row declared with it."""
    from dataclasses import replace

    from bench.suites import SUITES

    args = ["--results-dir", str(tmp_path), "--encoder", str(tiny_model_dir), "--quiet", "--seeds", "0"]
    SUITES.add("mini", suite)
    try:
        assert main(["run", "--suite", "mini", "--method", "proto-dot", "--set", "similarity=euclidean", *args]) == 0
        assert main(["run", "--suite", "mini", "--method", "proto-dot", "--set", "simlarity=dot", *args]) == 2
        assert "has no option simlarity; known: input, similarity" in capsys.readouterr().err
        check = ["check", "--suite", "mini", "--method", "proto-dot", "--set", "similarity=euclidean", *args]
        assert main(check) == 0  # the override rows are found and reproduced
        assert "proto-dot[similarity=euclidean]" in capsys.readouterr().out
    finally:
        del SUITES._items["mini"]
    records = sorted(tmp_path.glob("mini/*/*.json"))
    assert {p.parent.name for p in records} == {f"proto-dot[similarity=euclidean]@{tiny_model_dir.name}"}
    assert all(json.loads(p.read_text())["options"] == {"similarity": "euclidean"} for p in records)

    peer = replace(suite, methods=(MethodSpec("proto-euc", "proto-frozen", {"similarity": "euclidean"}),), seeds=(0,))
    peer_paths = run_suite(peer, RunOptions(results_dir=tmp_path / "peer", encoder=str(tiny_model_dir), progress=False))
    assert sorted(json.loads(p.read_text())["f1_per_episode"] for p in peer_paths) == sorted(
        json.loads(p.read_text())["f1_per_episode"] for p in records
    )


def test_set_parses_values_as_json_else_text():
    import argparse

    from bench.cli import _option
    from bench.suites import with_options

    assert _option("passes=6") == ("passes", 6) and _option("encoder_lr=1e-4") == ("encoder_lr", 1e-4)
    assert _option("image_text=false") == ("image_text", False) and _option("denoiser=fixed") == ("denoiser", "fixed")
    for bad in ("passes", "=6", "two words=1"):
        with pytest.raises(argparse.ArgumentTypeError):
            _option(bad)
    spec = with_options(MethodSpec("MFNER", "mfner", {"profile": "frozen"}), {"passes": 6, "input": "text"})
    assert spec.label == "MFNER[passes=6,input=text]"
    assert spec.options == {"profile": "frozen", "passes": 6, "input": "text"}


def test_mfner_checks_its_options_before_a_run():
    from mfner.method import MFNER

    MFNER.check_options({"passes": 6, "profile": "frozen"})
    with pytest.raises(ValueError, match="unknown MFNER options \\['pases'\\]"):
        MFNER.check_options({"pases": 6})
    with pytest.raises(ValueError, match="unknown MFNER profile"):
        MFNER.check_options({"profile": "gpu"})


def test_avg_needs_every_target_of_the_table(tmp_path):
    from bench.records import record_path, write_record

    suite = Suite(name="s", description="d", methods=(), domains=("twitter2017", "twitter2015"))
    cells = [("MFNER", "twitter2017", 0, 60.0), ("MFNER", "twitter2015", 0, 50.0), ("MFNER", "twitter2017", 1, 62.0)]
    cells += [("MFNER", "twitter2015", 1, 48.0), ("big", "twitter2017", 0, 70.0)]
    for label, target, seed, f1 in cells:
        record = {"label": label, "method": "mfner", "target": target, "k": 1, "seed": seed, "f1": f1}
        write_record(record_path(tmp_path, "s", label, target, 1, seed), record | {"f1_per_episode": [f1]})
    table = {r["method"]: r for r in suite_table(suite, tmp_path).to_dict("records")}
    avg = "Avg (T17, T15)"  # not the paper's Avg over T17, T15 and SNAP: named by what it averages
    assert table["MFNER"][avg] == f"55.00 ± {np.std([55.0, 55.0], ddof=1):.2f}" and "Avg paper" not in table["MFNER"]
    assert table["big"][avg] == "not run" and table["big"]["T15"] == "not run"  # T17 alone is no average


def test_a_method_with_the_base_constructor_takes_no_options():
    from fewshot_ner.method import FewShotMethod, RunContext

    class Fixed(FewShotMethod):
        def predict(self, episode):
            return []

    Fixed.check_options({})
    with pytest.raises(ValueError, match="method Fixed has no option x; known: none"):
        Fixed.check_options({"x": 1})
    with pytest.raises(TypeError):  # the check agrees with the constructor
        Fixed(RunContext(), x=1)


def test_check_adopts_only_exactly_reproduced_cells(suite, tiny_model_dir, tmp_path, monkeypatch):
    from bench.check import check_suite

    opts = RunOptions(results_dir=tmp_path, encoder=str(tiny_model_dir), progress=False, seeds=(0,))
    first, second = sorted(run_suite(suite, opts))
    for path in (first, second):  # as records written before predictions were kept
        rec = json.loads(path.read_text())
        del rec["predictions"]
        path.write_text(json.dumps(rec))
    moved = json.loads(second.read_text())
    moved["f1_per_episode"][0] += 0.5
    second.write_text(json.dumps(moved))
    rows, ok = check_suite(suite, opts, tolerance=1.0, adopt_reproduced=True)
    assert sorted(r["status"] for r in rows) == ["ok", "ok, adopted"]
    assert "predictions" in json.loads(first.read_text())  # reproduced exactly: replaced by the rerun
    assert json.loads(second.read_text()) == moved  # within tolerance but not exact: left as it was
    import bench.check

    reruns = []
    real_run = bench.check.run_cell
    monkeypatch.setattr(bench.check, "run_cell", lambda p, d, o: reruns.append(p.cell.target) or real_run(p, d, o))
    rows, ok = check_suite(suite, opts, tolerance=1.0, adopt_reproduced=True)
    assert ok and len(reruns) == 1  # the adopted record has predictions: only the other cell reruns
    assert sorted(r["status"] for r in rows) == ["ok", "ok, has predictions already (not rerun)"]


def test_quick_runs_every_method_small_into_a_scratch_folder(suite, tiny_model_dir, tmp_path, capsys):
    from dataclasses import replace

    from bench.suites import SUITES, quick_train_episodes

    quick_suite = replace(
        suite,
        name="mini-quick",
        methods=(MethodSpec("proto-dot", "proto-frozen", {"similarity": "dot"}), MethodSpec("ProtoNet", "protonet")),
    )
    SUITES.add("mini-quick", quick_suite)
    try:
        argv = ["run", "--suite", "mini-quick", "--quick", "--encoder", str(tiny_model_dir), "--quiet"]
        assert main([*argv, "--results-dir", str(tmp_path)]) == 0
    finally:
        del SUITES._items["mini-quick"]
    out = capsys.readouterr().out
    assert "--quick (seed 0" in out and "## Committed full results" in out
    records = [json.loads(p.read_text()) for p in tmp_path.glob("mini-quick/*/*.json")]
    assert len(records) == 4  # 2 methods x 2 targets, one seed
    protonet = [r for r in records if r["method"] == "protonet"]
    assert all(r["quick"] and r["options"]["min_steps"] == 0 for r in protonet)
    assert all(r["fit_report"]["train_episodes"] <= quick_train_episodes(r["k"]) for r in protonet)
    assert all(r["options"]["episodes_per_step"] == 1 for r in protonet)  # a step per source episode
    assert "no reference cells to compare with" in out  # the reproduction line, here with no reference


def test_every_report_has_its_figure_and_the_index_lists_it(suite, tiny_model_dir, tmp_path):
    from dataclasses import replace

    from bench.report import write_report

    one = replace(suite, seeds=(0,))
    run_suite(one, RunOptions(results_dir=tmp_path, encoder=str(tiny_model_dir), progress=False))
    path = write_report(one, tmp_path, tmp_path / "reports")
    figure = tmp_path / "reports" / "figures" / "table-mini.png"
    assert figure.stat().st_size > 5000 and "![mini](figures/table-mini.png)" in path.read_text()
    index = (tmp_path / "reports" / "README.md").read_text()
    assert "[mini.md](mini.md)" in index and "figures/table-mini.png" in index and "strict IOB2" in index


def test_run_rebuilds_the_reports_only_when_it_wrote_a_record(suite, tiny_model_dir, tmp_path, capsys):
    """Rebuilding every report takes a minute on the real results: a rerun that finds every cell done, or a
    grid worker's run with --no-report, leaves them as they were."""
    from bench.suites import SUITES

    args = ["--results-dir", str(tmp_path), "--encoder", str(tiny_model_dir), "--quiet", "--seeds", "0"]
    report = tmp_path / "reports" / "mini.md"
    SUITES.add("mini", suite)
    try:
        assert main(["run", "--suite", "mini", "--method", "proto-dot", "--target", "mini17", *args]) == 0
        first = capsys.readouterr().out
        written = report.stat().st_mtime_ns
        assert main(["run", "--suite", "mini", "--method", "proto-dot", "--target", "mini17", *args]) == 0
        again = capsys.readouterr().out
        assert report.stat().st_mtime_ns == written
        assert main(["run", "--suite", "mini", "--method", "proto-dot", "--no-report", *args]) == 0
        quiet = capsys.readouterr().out
        assert report.stat().st_mtime_ns == written
    finally:
        del SUITES._items["mini"]
    assert "1 record(s), 1 new; report written to" in first
    assert "1 record(s), 0 new; reports left as they were (no new record;" in again and "proto-dot" in again
    assert "2 record(s), 1 new; reports left as they were (--no-report;" in quiet

"""Each runner defect found by trying the harness as a new user would, with the test that pins its fix.

The numbers follow the shared-core issue's list of runner defects.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bench.cli import main
from bench.records import claimed, project_root, record_path
from bench.runner import RunOptions, plan_suite, run_suite
from fewshot_ner.data import DataFormatError, read_conll


def opts_for(tmp_path: Path, model_dir: Path, **kw) -> RunOptions:
    return RunOptions(results_dir=tmp_path, encoder=str(model_dir), progress=False, **kw)


# 1. a result's identity includes its source domains
def test_a_cell_trained_on_other_sources_is_not_done(suite, tiny_model_dir, tmp_path):
    one = replace(suite, seeds=(0,))
    (path,) = [p for p in run_suite(one, opts_for(tmp_path, tiny_model_dir, only_targets=("mini17",)))]
    assert json.loads(path.read_text())["sources"] == ["mini15"]
    assert [r["state"] for r in plan_suite(one, opts_for(tmp_path, tiny_model_dir, only_targets=("mini17",)))] == [
        "done"
    ]
    record = json.loads(path.read_text())
    path.write_text(json.dumps(record | {"sources": ["mini15", "snap"]}))  # as if trained with SNAP too
    opts = opts_for(tmp_path, tiny_model_dir, only_targets=("mini17",))
    assert [r["state"] for r in plan_suite(one, opts)] == ["todo"]
    assert any("trained on ['mini15', 'snap']" in line for line in opts.log)
    with_snap = record_path(tmp_path, "s", "MFNER", "twitter2017", 1, 0, ["twitter2015", "snap"])
    assert with_snap.name == "twitter2017-from-snap+twitter2015-k1-s0.json"  # both protocols keep their file
    assert record_path(tmp_path, "s", "MFNER", "twitter2017", 1, 0, ["twitter2015"]).name == "twitter2017-k1-s0.json"


# 2. an empty or unparsable lock left by a kill blocks its cell only while it could be being written
def test_an_empty_stale_lock_is_taken_over(tmp_path):
    record = tmp_path / "cell.json"
    lock = record.with_suffix(".lock")
    lock.write_text("")
    with claimed(record) as mine:
        assert not mine  # just created: its writer may be writing it this instant
    old = time.time() - 60
    os.utime(lock, (old, old))
    with claimed(record) as mine:
        assert mine  # unreadable for a minute: its writer died between create and write
    lock.write_text("{not json")
    os.utime(lock, (old, old))
    with claimed(record) as mine:
        assert mine


# 3. a truncated record is named, moved aside and counted as not done
def test_a_truncated_record_is_moved_aside_and_rerun(suite, tiny_model_dir, tmp_path, capsys):
    one = replace(suite, seeds=(0,))
    opts = opts_for(tmp_path, tiny_model_dir, only_targets=("mini17",))
    (path,) = run_suite(one, opts)
    path.write_text(path.read_text()[:100])
    opts = opts_for(tmp_path, tiny_model_dir, only_targets=("mini17",))
    assert [r["state"] for r in plan_suite(one, opts)] == ["todo"]
    assert any(str(path) in line and "unreadable record" in line for line in opts.log)
    assert path.with_name(path.name + ".corrupt").exists() and not path.exists()
    (again,) = run_suite(one, opts_for(tmp_path, tiny_model_dir, only_targets=("mini17",)))
    assert json.loads(again.read_text())["n_episodes"] == 6


def test_reports_skip_an_unreadable_record_naming_it(suite, tmp_path, capsys):
    from bench.records import load_records

    bad = tmp_path / "mini" / "proto-dot" / "mini17-k1-s0.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"label": "proto-dot", "f1')
    assert load_records(tmp_path, "mini").empty
    assert str(bad) in capsys.readouterr().err


# 4. a selection that matches nothing exits non-zero naming the option and the choices
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "ProtoNte"], "--method 'ProtoNte' matches nothing in this suite; choices:"),
        (["--k", "3"], "--k 3 matches nothing in this suite; choices: 1, 5"),
        (["--seeds", "-1"], "--seeds -1 matches nothing in this suite; choices: 0, 1, 2, 3, 4"),
        (["--target", "twitter2019"], "--target 'twitter2019' matches nothing"),
        (["--episodes", "0"], "--episodes must be at least 1, got 0"),
    ],
)
def test_a_selection_matching_nothing_fails(args, message, capsys, tmp_path):
    code = main(["run", "--suite", "table3", "--dry-run", "--results-dir", str(tmp_path), *args])
    assert code == 2 and message in capsys.readouterr().err


# 5. a device this machine lacks is refused before any cell
def test_cuda_without_cuda_is_refused_first(suite, tiny_model_dir, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA device"):
        run_suite(suite, opts_for(tmp_path, tiny_model_dir, device="cuda"))
    assert not list(tmp_path.rglob("*.json"))


# 6. a missing encoder folder is one clear line
def test_a_missing_encoder_is_one_line(capsys, tmp_path):
    code = main(["run", "--suite", "smoke", "--encoder", "/nonexistent", "--results-dir", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == "bench: error: encoder folder /nonexistent does not exist"


# 7. a domain too small for K-shot episodes is found before any cell runs
def test_a_too_small_domain_fails_before_any_cell(suite, tiny_model_dir, tmp_path):
    big_k = replace(suite, shots=(1, 400))
    with pytest.raises(ValueError, match="too small for one 400-shot episode"):
        run_suite(big_k, opts_for(tmp_path, tiny_model_dir))
    assert not list(tmp_path.rglob("*.json"))  # not even the 1-shot cells ran


def test_fewer_episodes_than_asked_are_said_in_the_log_and_the_record(suite, tiny_model_dir, tmp_path):
    one = replace(suite, seeds=(0,))
    opts = opts_for(tmp_path, tiny_model_dir, only_targets=("mini17",), eval_episodes=50)
    (path,) = run_suite(one, opts)
    record = json.loads(path.read_text())
    assert (
        record["n_episodes"] == 6
        and record["n_episodes_asked"] == 50
        and "fewer than the 50 asked" in record["warning"]
    )
    assert any("fewer than the 50 asked" in line for line in opts.log)
    assert any("only 6 test episode(s)" in line for line in opts.log)


# 8. skip lines come first, before any cell runs
def test_skip_lines_are_said_before_the_first_cell(suite, tiny_model_dir, tmp_path):
    said = []
    opts = opts_for(tmp_path, tiny_model_dir, say=lambda line: said.append((line, len(list(tmp_path.rglob("*.json"))))))
    run_suite(suite, opts)
    skips = [n for line, n in said if line.startswith("skip")]
    assert skips and all(n == 0 for n in skips)  # no record existed yet when each skip line was said


# 9. the results folder follows the checkout the user stands in; report prints its path
def test_results_follow_the_working_tree(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "mfner-bench"\n')
    (tmp_path / "sub").mkdir()
    assert project_root(tmp_path / "sub") == tmp_path
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    (elsewhere / "pyproject.toml").write_text('[project]\nname = "something-else"\n')
    assert project_root(elsewhere) != elsewhere


def test_report_prints_the_path_it_wrote(capsys, tmp_path):
    assert main(["report", "--suite", "smoke", "--results-dir", str(tmp_path)]) == 0
    assert f"report written to {tmp_path / 'reports' / 'smoke.md'}" in capsys.readouterr().out


def test_quiet_silences_weight_loading_bars(tiny_model_dir, capsys, tmp_path):
    from bench.cli import _quiet_libraries
    from fewshot_ner.encoder import WordEncoder

    _quiet_libraries()
    WordEncoder(str(tiny_model_dir))
    assert "Loading weights" not in capsys.readouterr().err


# 10. data: unknown entity type, captions matching no tweet, a tab inside a token
def test_data_errors_name_file_and_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("IMGID:1\nObama\tB-PER\nsays\tO\n\nIMGID:2\nParis\tB-PLACE\n")
    with pytest.raises(DataFormatError, match=r"train.txt:6: entity type 'PLACE' is not one of"):
        read_conll(path, "train", types=("PER", "LOC"))
    path.write_text("IMGID:1\nOb\tama\tB-PER\n")
    with pytest.raises(DataFormatError, match=r"train.txt:2: token 'Ob\\tama' holds a tab"):
        read_conll(path, "train")


def test_captions_matching_no_tweet_are_warned_and_counted(small_domains, tmp_path):
    from fewshot_ner.datasets import DATASETS, DatasetSpec, _load

    real = DATASETS.get("mini17")
    folder = tmp_path / "d"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        (folder / f"{split}.txt").write_bytes((real.folder / f"{split}.txt").read_bytes())
    (folder / real.caption_file).write_text("nope1.jpg :a man\nnope2.jpg :a dog\n")
    DATASETS.add("mini-nocap", DatasetSpec("mini-nocap", "mn", real.types, real.caption_file, folder=folder))
    try:
        with pytest.warns(UserWarning, match="none of its 2 image ids matches a tweet"):
            domain = _load("mini-nocap", folder, False)
        assert domain.report.image_text_unmatched == 2
    finally:
        del DATASETS._items["mini-nocap"]


def test_the_probe_protocol_never_touches_test_sentences(suite, tiny_model_dir, tmp_path):
    """A probe meta-trains on a domain's train split and scores episodes of its valid split."""
    from fewshot_ner.datasets import load_domain
    from fewshot_ner.episodes import cached_episodes

    probe = replace(suite, protocol="dev", seeds=(0,))
    opts = opts_for(tmp_path, tiny_model_dir, only_targets=("mini17",))
    (path,) = run_suite(probe, opts)
    record = json.loads(path.read_text())
    assert record["target"] == "mini17-dev" and record["sources"] == ["mini17-devtrain"]
    from fewshot_ner.datasets import dev_split

    train, dev = dev_split(load_domain("mini17"))
    assert {s.key.split(":")[1] for s in train.sentences} == {"train"}
    episodes = cached_episodes(dev, 1, 0, probe.max_episodes, "test")
    assert episodes.sha256 == record["episodes_sha256"]
    assert all(k.split(":")[1] == "valid" for s, q in episodes.episodes for k in (*s, *q))


def test_cell_seconds_come_from_the_finished_peers(tmp_path):
    from bench.estimate import cell_seconds

    folder = tmp_path / "s" / "row"
    folder.mkdir(parents=True)
    for seed, wall in ((0, 100.0), (1, 300.0)):
        (folder / f"twitter2017-k1-s{seed}.json").write_text(json.dumps({"wall_s": wall}))
    todo = [folder / "twitter2017-k1-s2.json", folder / "twitter2015-k1-s0.json"]
    assert cell_seconds(todo, tmp_path) == [200.0, 200.0]  # the median; a cell with no peer takes the others'


# The newcomer issue's faults: a claim with a pid that is no number, a second corruption, a full disk.
def test_a_claim_whose_pid_is_no_number_is_taken_over(tmp_path):
    import socket

    record = tmp_path / "cell.json"
    record.with_suffix(".lock").write_text(json.dumps({"pid": "abc", "host": socket.gethostname()}))
    with claimed(record) as mine:
        assert mine  # no process of ours wrote it: taken over, not an abort of the whole run


def test_a_second_corruption_keeps_the_first_copy(tmp_path):
    from bench.records import read_record

    record = tmp_path / "cell.json"
    for text in ("first", "second"):
        record.write_text(text)
        assert read_record(record) is None
    assert (tmp_path / "cell.json.corrupt").read_text() == "first"
    assert (tmp_path / "cell.json.corrupt.1").read_text() == "second"


def test_a_claim_that_cannot_be_written_leaves_no_empty_lock(tmp_path, monkeypatch):
    import errno

    record = tmp_path / "cell.json"
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, fd: int) -> None:
            self.f = real_fdopen(fd, "w")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, _text: str) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk(fd))
    with pytest.raises(OSError, match="can't write the claim .*No space left on device"):
        with claimed(record):
            pass
    assert not record.with_suffix(".lock").exists()  # the next run does not skip the cell


def test_a_snap_folder_that_does_not_load_is_an_error_not_a_skip(tmp_path, capsys):
    empty = tmp_path / "snap"
    empty.mkdir()
    assert main(["run", "--suite", "table3", "--method", "lookup", "--snap-dir", str(empty), "--dry-run"]) == 2
    assert f"--snap-dir {empty}" in capsys.readouterr().err


def test_a_mistyped_selection_fails_before_torch_is_imported():
    import subprocess
    import sys

    code = (
        "import sys; from bench.cli import main; "
        "rc = main(['run', '--suite', 'table3', '--method', 'nosuch']); print(rc, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2", "False"] and "matches nothing" in out.stderr


def test_the_suite_bar_says_the_time_left_in_readable_units():
    from bench.runner import _duration

    assert [_duration(s) for s in (12, 420, 12_600)] == ["12 s", "7 min", "3.5 h"]


def test_a_log_that_is_no_terminal_gets_plain_lines(suite, tiny_model_dir, tmp_path, capsys):
    from bench.suites import SUITES

    capsys.readouterr()  # what the fixtures printed
    SUITES.add("mini", suite)
    try:
        argv = ["run", "--suite", "mini", "--encoder", str(tiny_model_dir), "--seeds", "0"]
        assert main([*argv, "--results-dir", str(tmp_path), "--no-report"]) == 0  # no --quiet: stderr is captured
    finally:
        del SUITES._items["mini"]
    out = capsys.readouterr()
    assert "\r" not in out.out + out.err  # no progress bar redrawn in a log file
    assert out.out.count("seed=0: F1") == 2  # one plain line a cell


def test_the_report_says_which_records_ran_from_uncommitted_code():
    import pandas as pd

    from bench.report import _dirty_note

    clean = pd.DataFrame({"label": ["A", "A", "B"], "dirty": [False, False, False]})
    assert _dirty_note(clean) == ""
    rows = pd.DataFrame({"label": ["A", "A", "B"], "dirty": [True, False, True]})
    note = _dirty_note(rows)
    assert "2 of 3 records" in note and "A (1)" in note and "B (1)" in note

from pathlib import Path

import pytest

from fewshot_ner.data import DataFormatError, LoadReport, read_conll, read_image_text, repair_tags
from fewshot_ner.datasets import DATASETS, file_sha256, load_domain


def write(tmp_path: Path, text: str | bytes, name: str = "train.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


GOOD = "IMGID:1\nGeorge\tB-PER\nZimmerman\tI-PER\nshot\tO\n\nIMGID:2\nin\tO\nParis\tB-LOC\n"


def test_reads_tweets(tmp_path):
    rep = LoadReport()
    rows = read_conll(write(tmp_path, GOOD), "train", rep)
    assert rows == [
        ("1", ["George", "Zimmerman", "shot"], ["B-PER", "I-PER", "O"]),
        ("2", ["in", "Paris"], ["O", "B-LOC"]),
    ]
    assert (rep.sentences, rep.tokens, rep.entities["PER"], rep.entities["LOC"]) == (2, 5, 1, 1)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("George\tB-PER\n", 1, "before any IMGID"),
        ("IMGID:1\nGeorge B-PER\n", 2, "no tab"),
        ("IMGID:1\nGeorge\tB-PER\nshot\tX-PER\n", 3, "not in BIO form"),
        ("IMGID:1\nGeorge\tPER\n", 2, "not in BIO form"),
        ("IMGID:1\n\tO\n", 2, "empty token"),
        ("IMGID:1\n\nIMGID:2\nx\tO\n", 1, "has no tokens"),
        ("\n\n", 1, "file is empty"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path, text)
    with pytest.raises(DataFormatError, match=message) as info:
        read_conll(path, "train")
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert info.value.line == line


def test_non_utf8_bytes_report_their_line(tmp_path):
    path = write(tmp_path, b"IMGID:1\nok\tO\ncaf\xe9\tO\n")
    with pytest.raises(DataFormatError, match="not UTF-8") as info:
        read_conll(path, "train")
    assert info.value.line == 3


def test_orphan_i_is_repaired_and_counted():
    tags, n = repair_tags(["O", "I-ORG", "I-ORG", "B-PER", "I-LOC", "I-PER"])
    assert tags == ["O", "B-ORG", "I-ORG", "B-PER", "B-LOC", "B-PER"]
    assert n == 3


def test_nbsp_token_is_kept(tmp_path):
    rows = read_conll(write(tmp_path, "IMGID:1\n\xa0\tO\nx\tB-PER\n"), "train")
    assert rows[0][1] == ["\xa0", "x"]


def test_image_text_split_on_first_separator(tmp_path):
    path = write(tmp_path, "12.jpg :a man : smiling\n17_06_1.jpg :\n", "caps.txt")
    assert read_image_text(path) == {"12": "a man : smiling", "17_06_1": ""}
    with pytest.raises(DataFormatError, match=r"caps.txt:1: expected"):
        read_image_text(write(tmp_path, "no separator here\n", "caps.txt"))


@pytest.mark.parametrize("name", [n for n, s in DATASETS.items() if s.folder is not None])
def test_shipped_files_match_their_pinned_hashes(name):
    spec = DATASETS.get(name)
    assert spec.sha256, "shipped datasets pin their files"
    for file, digest in spec.sha256.items():
        assert file_sha256(spec.folder / file) == digest, file


def test_real_domains_match_the_paper(t15, t17):
    assert len(t15.sentences) == 8257 and len(t17.sentences) == 4819
    assert {s: r.orphan_i_repaired for s, r in t15.reports.items()} == {"train": 186, "valid": 53, "test": 135}
    assert t17.report.orphan_i_repaired == 0
    assert t15.report.image_text_empty == 2 and t15.report.image_text_missing == 0
    assert len({s.key for s in t15.sentences}) == 8257
    assert all(s.image_text for s in t17.sentences)


def test_domain_with_missing_captions_counts_them(tmp_path):
    folder = tmp_path / "snap"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        write(folder, f"IMGID:{split}1\nJohn\tB-PER\n\nIMGID:{split}2\nRome\tB-LOC\n", f"{split}.txt")
    write(folder, "train1.jpg :a man\nvalid1.jpg :\n", "captions.txt")
    domain = load_domain("snap", folder)
    assert len(domain.sentences) == 6
    assert domain.report.image_text_missing == 4 and domain.report.image_text_empty == 1


def test_snap_without_folder_says_how_to_give_one(monkeypatch):
    from fewshot_ner.datasets import DatasetUnavailable

    monkeypatch.delenv("MFNER_SNAP_DIR", raising=False)
    with pytest.raises(DatasetUnavailable, match="--snap-dir"):
        load_domain("snap")

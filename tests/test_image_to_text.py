"""`bench image-text`: tiny captioning and detection models built from configs, images drawn here."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
import torch

from fewshot_ner.data import read_image_text
from fewshot_ner.image_to_text import ImageDescriber, describe_folder, pipeline_describer


@pytest.fixture(scope="session")
def vision_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny BLIP captioner and a tiny YOLOS detector (random weights) saved with their processors."""
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
        YolosConfig,
        YolosForObjectDetection,
        YolosImageProcessor,
    )

    root = tmp_path_factory.mktemp("vision")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "man", "dog", "stage", *string.ascii_lowercase]
    (root / "vocab.txt").write_text("\n".join(vocab))
    torch.manual_seed(0)
    text = {"vocab_size": len(vocab), "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    text |= {"intermediate_size": 37, "max_position_embeddings": 64, "bos_token_id": 2, "sep_token_id": 3}
    text |= {"pad_token_id": 0, "eos_token_id": 3}
    vision = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 37}
    vision |= {"image_size": 32, "patch_size": 8}
    captioner = BlipForConditionalGeneration(BlipConfig(text_config=text, vision_config=vision, projection_dim=32))
    captioner.save_pretrained(root / "cap")
    processor = BlipProcessor(
        BlipImageProcessor(size={"height": 32, "width": 32}), BertTokenizer(str(root / "vocab.txt"))
    )
    processor.save_pretrained(root / "cap")
    config = YolosConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        image_size=[32, 32],
        patch_size=8,
        num_detection_tokens=4,
        id2label={0: "person", 1: "dog"},
        label2id={"person": 0, "dog": 1},
    )
    YolosForObjectDetection(config).save_pretrained(root / "det")
    YolosImageProcessor(size={"shortest_edge": 32, "longest_edge": 32}).save_pretrained(root / "det")
    return root / "cap", root / "det"


def draw(folder: Path, names: list[str]) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", (40 + 4 * i, 30), (40 * i % 255, 90, 200)).save(folder / name)
    return folder


def fake(score: float = 0.9) -> ImageDescriber:
    """A describer with known answers: caption = the image's width; two regions a picture."""

    def caption(images):
        return [f"w{img.size[0]}" for img in images]

    def detect(images):
        box = {"xmin": 0, "ymin": 0, "xmax": 10, "ymax": 10}
        return [
            [{"score": score - 0.5, "label": "dog", "box": box}, {"score": score, "label": "man", "box": box}]
        ] * len(images)

    return ImageDescriber(caption, detect, score_threshold=0.5, max_objects=5)


def test_format_and_order_global_caption_then_regions_best_first(tmp_path):
    images = draw(tmp_path / "img", ["2.jpg", "1.png"])
    summary = describe_folder(images, tmp_path / "out.txt", fake(), batch_size=1, progress=False)
    lines = (tmp_path / "out.txt").read_text().splitlines()
    # by file name; "dog" scores 0.4 < 0.5 and is dropped; the crop of 10 px is captioned "w10"
    assert lines == ["1.jpg :w44. man: w10", "2.jpg :w40. man: w10"]
    assert read_image_text(tmp_path / "out.txt") == {"1": "w44. man: w10", "2": "w40. man: w10"}
    assert (summary.described, summary.regions, summary.unreadable) == (2, 2, [])


def test_threshold_and_max_objects(tmp_path):
    images = draw(tmp_path / "img", ["a.jpg"])
    loose = fake()
    loose.score_threshold, loose.max_objects = 0.0, 1
    describe_folder(images, tmp_path / "one.txt", loose, progress=False)
    assert read_image_text(tmp_path / "one.txt") == {"a": "w40. man: w10"}  # the best region only
    loose.max_objects = 5
    describe_folder(images, tmp_path / "two.txt", loose, progress=False)
    assert read_image_text(tmp_path / "two.txt") == {"a": "w40. man: w10. dog: w10"}


def test_a_corrupt_image_gets_an_empty_text_and_is_counted(tmp_path, caplog):
    images = draw(tmp_path / "img", ["good.jpg"])
    (images / "bad.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    summary = describe_folder(images, tmp_path / "out.txt", fake(), progress=False)
    assert read_image_text(tmp_path / "out.txt") == {"bad": "", "good": "w40. man: w10"}
    assert summary.unreadable == [str(images / "bad.jpg")] and "bad.jpg" in caplog.text


def test_resume_after_a_kill_loses_at_most_the_cut_line(tmp_path):
    images = draw(tmp_path / "img", ["1.jpg", "2.jpg", "3.jpg"])
    out = tmp_path / "out.txt"
    calls = []
    describer = fake()
    inner = describer.caption

    def dying(imgs):
        calls.append(len(imgs))
        if len(calls) == 3:  # the second batch's global captions: the process dies here
            raise KeyboardInterrupt
        return inner(imgs)

    describer.caption = dying
    with pytest.raises(KeyboardInterrupt):
        describe_folder(images, out, describer, batch_size=1, progress=False)
    out.write_text(out.read_text() + "2.jpg :half a li")  # and a line cut mid-write
    describer.caption = inner
    summary = describe_folder(images, out, describer, batch_size=1, progress=False)
    assert summary.already_done == 1 and summary.described == 2
    assert out.read_text().splitlines() == ["1.jpg :w40. man: w10", "2.jpg :w44. man: w10", "3.jpg :w48. man: w10"]


def test_real_pipelines_from_local_folders(tmp_path, vision_models):
    captioner, detector = vision_models
    images = draw(tmp_path / "img", ["x.jpg", "y.jpg"])
    describer = pipeline_describer(str(captioner), str(detector), score_threshold=0.0, max_objects=2, max_new_tokens=4)
    summary = describe_folder(images, tmp_path / "out.txt", describer, batch_size=2, progress=False)
    texts = read_image_text(tmp_path / "out.txt")
    assert set(texts) == {"x", "y"} and summary.regions == 4
    for text in texts.values():  # random weights: the words are noise, the layout is not
        regions = [part for part in text.split(". ") if part.split(":")[0] in ("person", "dog")]
        assert len(regions) == 2 and text.endswith(regions[-1]), text
    none = pipeline_describer(str(captioner), str(detector), score_threshold=1.01, max_objects=2, max_new_tokens=4)
    describe_folder(images, tmp_path / "bare.txt", none, progress=False)
    assert all(": " not in t for t in read_image_text(tmp_path / "bare.txt").values())


def test_cli_refuses_cuda_without_cuda_and_an_empty_folder(tmp_path, capsys):
    from bench.cli import main

    images = draw(tmp_path / "img", ["x.jpg"])
    if not torch.cuda.is_available():
        args = ["image-text", "--images", str(images), "--out", str(tmp_path / "o.txt"), "--captioner", "x"]
        assert main([*args, "--device", "cuda"]) != 0
        assert "no CUDA device" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["image-text", "--images", str(tmp_path / "empty"), "--out", "o.txt", "--captioner", "x"]) != 0
    assert "no images" in capsys.readouterr().err

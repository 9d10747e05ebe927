"""The precision axis: bf16 autocast reaches the encoder and nothing after it, and stays close to fp32."""

import json

import pytest
import torch

from bench.cli import main
from bench.runner import RunOptions, row_label, run_suite, split_options
from bench.suites import MethodSpec, Suite, with_options
from fewshot_ner import crf
from fewshot_ner.encoder import WordEncoder, check_precision
from fewshot_ner.episodes import sample_episodes
from fewshot_ner.method import RunContext
from mfner.method import MFNER
from tests.test_mfner import registered, synthetic_domain  # noqa: F401 - the fixture is used by name

# bf16 keeps 8 bits of mantissa: one rounding is a relative error of 2^-9 ~ 0.2%; through a 2-layer
# encoder and its backward the gradients of the tiny model agree with fp32 to a few percent.
GRAD_REL_TOL = 0.05


def _dtypes_seen(module: torch.nn.Module, kind: type) -> set[torch.dtype]:
    seen: set[torch.dtype] = set()
    for sub in module.modules():
        if isinstance(sub, kind):
            sub.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
    return seen


def test_precision_names_are_checked():
    assert check_precision("bf16") == "bf16"
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, got 'bf32'"):
        check_precision("bf32")
    assert split_options({"profile": "fast", "precision": "bf16"}) == ({"profile": "fast"}, "bf16")
    assert split_options({}) == ({}, "fp32")


def test_autocast_reaches_the_encoder_and_not_the_crf(tiny_model_dir, registered, monkeypatch):  # noqa: F811
    source = synthetic_domain("syn-prec", 40, 9, text_tells=True, noisy_half=False)
    episode = sample_episodes(source, 1, 0, None, "train").materialize(source)[0]
    method = MFNER(RunContext(encoder=str(tiny_model_dir), progress=False, precision="bf16"))
    assert method.encoder.precision == "bf16"
    linear = _dtypes_seen(method.encoder.model, torch.nn.Linear)
    crf_inputs: list[torch.dtype] = []
    real_nll = crf.nll

    def spy(emissions, *args, **kwargs):
        crf_inputs.extend([emissions.dtype, *(a.dtype for a in args if torch.is_tensor(a) and a.is_floating_point())])
        return real_nll(emissions, *args, **kwargs)

    monkeypatch.setattr(crf, "nll", spy)
    method.model.features.add_domain(source)
    method.model.train()
    loss = method.model.loss(episode)
    assert linear == {torch.bfloat16}  # every matrix product of the transformer ran in bfloat16
    assert crf_inputs and set(crf_inputs) == {torch.float32} and loss.dtype == torch.float32
    loss.backward()
    assert all(p.dtype == torch.float32 for p in method.model.parameters())
    grads = [p.grad for p in method.encoder.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 for g in grads)


def test_bf16_gradients_agree_with_fp32(tiny_model_dir, t17):
    sentences = list(t17.sentences)[:8]
    grads = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        enc = WordEncoder(str(tiny_model_dir), precision=precision)
        batch = enc.tokenize(sentences, "text+image")
        vectors = enc(batch)  # (B, W, H) float32 in both
        assert vectors.dtype == torch.float32
        target = torch.randn(vectors.shape, generator=torch.Generator().manual_seed(1))
        ((vectors - target) ** 2)[batch.word_mask].mean().backward()
        grads[precision] = torch.cat([p.grad.flatten() for p in enc.parameters() if p.grad is not None])
    a, b = grads["fp32"], grads["bf16"]
    assert a.shape == b.shape and not torch.equal(a, b)  # bf16 did round something
    rel = (a - b).norm() / a.norm()
    assert rel < GRAD_REL_TOL, float(rel)
    assert torch.nn.functional.cosine_similarity(a, b, dim=0) > 0.99


def test_precision_tags_the_label_not_the_option_bracket():
    spec = with_options(MethodSpec("MFNER fast", "mfner", {"profile": "fast"}), {"precision": "bf16"})
    assert spec.label == "MFNER fast" and spec.options == {"profile": "fast", "precision": "bf16"}
    spec = with_options(MethodSpec("MFNER", "mfner"), {"passes": 1, "precision": "bf16"})
    assert spec.label == "MFNER[passes=1]"
    assert row_label("MFNER fast", "mpnet-base", precision="bf16") == "MFNER fast@mpnet-base (bf16)"
    assert row_label("MFNER", "minilm", precision="fp32") == "MFNER"


def test_a_record_carries_its_precision_and_bf16_is_deterministic(small_domains, tiny_model_dir, tmp_path):
    suite = Suite(
        name="prec",
        description="test suite",
        methods=(MethodSpec("MFNER", "mfner", {"max_train_episodes": 4, "passes": 1, "min_steps": 0}),),
        domains=small_domains,
        shots=(1,),
        seeds=(0,),
        max_episodes=3,
    )
    runs = {}
    for name, precision in (("fp32", "fp32"), ("bf16", "bf16"), ("bf16-again", "bf16")):
        overrides = {"precision": precision} if precision == "bf16" else {}
        opts = RunOptions(
            results_dir=tmp_path / name,
            encoder=str(tiny_model_dir),
            progress=False,
            overrides=overrides,
            only_targets=(small_domains[1],),
        )
        (path,) = run_suite(suite, opts)
        runs[name] = json.loads(path.read_text())
    assert runs["fp32"]["precision"] == "fp32" and runs["bf16"]["precision"] == "bf16"
    assert runs["bf16"]["label"].endswith(" (bf16)") and runs["bf16"]["row"] == "MFNER"
    assert "precision" not in runs["bf16"]["options"]
    assert runs["bf16"]["f1_per_episode"] == runs["bf16-again"]["f1_per_episode"]


def test_an_unknown_precision_fails_before_anything_runs(tmp_path, capsys):
    args = ["run", "--suite", "ci", "--results-dir", str(tmp_path), "--quiet", "--set", "precision=bf32"]
    assert main(args) == 2
    assert "precision must be one of fp32, bf16, got 'bf32'" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.json"))


def test_kept_weight_casts_give_autocasts_results_to_the_last_bit(tiny_model_dir, t17):
    """Weights cast once and kept while unchanged (``WordEncoder.linear_casts``), with their gradient parts
    summed by autograd or by ``GradSum``, against autocast casting them in every call: the same vectors,
    gradients and updated weights, bit for bit, over several calls a backward pass, two backward passes a
    step (``.grad`` already holding the first's sum), optimizer steps and inference."""
    sentences = list(t17.sentences)[:12]
    encoders = []
    for kept, summed in ((False, False), (True, False), (True, True)):
        enc = WordEncoder(str(tiny_model_dir), precision="bf16")
        enc.cast_cache, enc.grad_sum = kept, summed
        enc.train()
        encoders.append((enc, torch.optim.Adam(enc.trainable(None), lr=1e-3)))
    target = torch.Generator().manual_seed(1)
    passes = (
        ((sentences[:4], "text+image"), (sentences[4:8], "text"), (sentences[:6], "text+image")),
        ((sentences[6:12], "text"),),
    )
    for _step in range(3):
        grads, vectors = [], []
        for enc, opt in encoders:
            opt.zero_grad(set_to_none=True)
            torch.manual_seed(_step)  # the same dropout masks in all
            gen = torch.Generator().manual_seed(target.initial_seed())
            out = []
            for calls in passes:
                loss = torch.zeros(())
                for part, view in calls:
                    batch = enc.tokenize(part, view)
                    v = enc(batch)  # (B, W, H)
                    out.append(v.detach())
                    loss = loss + ((v - torch.randn(v.shape, generator=gen)) ** 2)[batch.word_mask].mean()
                loss.backward()
            grads.append([p.grad for p in enc.parameters()])
            vectors.append(out)
            opt.step()
        assert sum(g is not None for g in grads[2]) > 10  # the linear weights trained
        for other in (1, 2):
            assert all(torch.equal(a, b) for a, b in zip(vectors[0], vectors[other], strict=True))
            pairs = zip(grads[0], grads[other], strict=True)
            assert all((a is None and b is None) or torch.equal(a, b) for a, b in pairs)
            assert all(
                torch.equal(a, b)
                for a, b in zip(encoders[0][0].parameters(), encoders[other][0].parameters(), strict=True)
            )
    kept = encoders[1][0]
    first = kept.linear_casts()
    assert first and all(t.dtype == torch.bfloat16 for t in first.values())
    with torch.no_grad():
        again = kept.linear_casts()
    assert all(again[k].data_ptr() == first[k].data_ptr() for k in first)  # unchanged weights: no new cast
    with torch.no_grad():
        next(iter(kept.model.parameters())).add_(0.0)  # not a linear weight: nothing to recast
        linear = next(m for m in kept.model.modules() if isinstance(m, torch.nn.Linear))
        linear.weight.mul_(1.0)  # an in-place update, even to the same values, makes a new cast
    assert (
        kept.linear_casts()[next(k for k in first if k.endswith("weight"))].data_ptr()
        != first[next(k for k in first if k.endswith("weight"))].data_ptr()
    )
    embedded = [enc.embed(sentences, "text+image") for enc, _ in encoders]
    for other in embedded[1:]:
        assert all(torch.equal(a, b) for a, b in zip(embedded[0], other, strict=True))

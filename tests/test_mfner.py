"""MFNER's parts do what they claim: denoiser weights, null-space projection, image text, training."""

import random

import pytest
import torch

from fewshot_ner.data import LoadReport, Sentence
from fewshot_ner.datasets import DATASETS, DatasetSpec, Domain
from fewshot_ner.episodes import sample_episodes
from fewshot_ner.labels import label_name
from fewshot_ner.method import RunContext, SourceTask
from fewshot_ner.metrics import episode_f1
from mfner.denoiser import Denoiser
from mfner.method import MFNER, make_config
from mfner.tapnet import LTapNet, null_space


def test_denoiser_weights_sum_to_one_and_follow_the_input():
    torch.manual_seed(0)
    den = Denoiser(8)
    torch.nn.init.normal_(den.gate.weight)
    text, multi = torch.randn(3, 5, 8), torch.randn(3, 5, 8)
    fused, w = den(text, multi)
    assert torch.allclose(w.sum(-1), torch.ones(3, 5))
    assert torch.allclose(fused, w[..., :1] * text + w[..., 1:] * multi)
    _, w2 = den(text, multi + 1.0)
    assert not torch.allclose(w, w2)
    fixed, wf = den(text, multi, "fixed")
    assert torch.allclose(fixed, 0.5 * (text + multi)) and (wf == 0.5).all()
    off, wo = den(text, None, "off")
    assert torch.equal(off, text) and (wo[..., 0] == 1).all()


def test_projection_is_the_null_space_of_the_error_vectors():
    torch.manual_seed(1)
    head = LTapNet(16, projection=True)
    support = torch.randn(12, 16)
    ids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 0, 0])
    names = torch.randn(5, 16)
    anchors, phi, present = head.anchors(support, ids, names)
    m = head.projection_matrix(phi, support, ids, present)
    from fewshot_ner.prototypes import prototypes

    errors = head.error_vectors(phi, prototypes(support, ids, 5)[0])
    assert m.shape == (16, 16 - 5)
    assert torch.allclose(errors @ m, torch.zeros(5, 11), atol=1e-5)
    assert torch.allclose(m.T @ m, torch.eye(11), atol=1e-5)
    assert null_space(torch.zeros(0, 4)).shape == (4, 4)


def test_absent_labels_fall_back_to_their_label_vector():
    head = LTapNet(4, r=0.5, prototype_weight=0.3)
    names = torch.eye(3, 4)
    support = torch.ones(2, 4)
    anchors, phi, present = head.anchors(support, torch.tensor([0, 0]), names)
    assert present.tolist() == [True, False, False]
    assert torch.allclose(anchors[1:], phi[1:])
    assert torch.allclose(anchors[0], 0.3 * support[0] + 0.7 * phi[0])


def test_label_names_and_config_errors():
    assert [label_name(x) for x in ("O", "B-PER", "I-LOC", "B-OTHER")] == [
        "ordinary",
        "begin person",
        "inner location",
        "begin other",
    ]
    assert make_config(input="text").mode == "off" and make_config(denoiser="fixed").mode == "fixed"
    with pytest.raises(ValueError, match="unknown MFNER profile"):
        make_config(profile="turbo")
    with pytest.raises(TypeError, match="unknown MFNER options"):
        make_config(learning_rate=1)


# --- a synthetic world where the image text carries what the tweet does not -----------------

NOISE = list("qwxzjkv")


def synthetic_domain(name: str, n: int, seed: int, text_tells: bool, noisy_half: bool) -> Domain:
    """Tweets 'new <ENTITY>' tagged PER or LOC, captioned 'people' or 'stage'.

    With ``text_tells`` the entity word itself says the type ('aa' or 'bb'); otherwise it is always
    'zq' and only the caption does. With ``noisy_half`` every other pair's caption is noise.
    """
    rng = random.Random(seed)
    sents = []
    for i in range(n):
        etype = "PER" if i % 2 == 0 else "LOC"
        word = ("aa" if etype == "PER" else "bb") if text_tells else "zq"
        caption = "people" if etype == "PER" else "stage"
        if noisy_half and (i // 2) % 2 == 1:
            caption = " ".join(rng.choice(NOISE) for _ in range(12))
        sents.append(Sentence(f"{name}:train:{i}", ("new", word), ("O", f"B-{etype}"), str(i), caption))
    spec = DatasetSpec(name=name, short=name, types=("PER", "LOC"), caption_file=None)
    return Domain(spec, tuple(sents), {"train": LoadReport()}, f"synthetic-{name}-{seed}-{text_tells}-{noisy_half}")


def train_and_score(model_dir, source: Domain, target: Domain, **options) -> tuple[float, MFNER]:
    torch.manual_seed(0)
    options = {"profile": "frozen", "passes": 3, "min_steps": 0} | options
    method = MFNER(RunContext(encoder=str(model_dir), progress=False), **options)
    train = sample_episodes(source, 1, 0, None, "train").materialize(source)
    method.fit([SourceTask(source, train)])
    method.prepare(target)
    test = sample_episodes(target, 1, 0, 40).materialize(target)
    f1 = sum(episode_f1([s.tags for s in ep.query], method.predict(ep)) for ep in test) / len(test)
    return f1, method


@pytest.fixture(scope="module")
def registered():
    """The synthetic specs must be resolvable by name while the method runs."""
    yield
    for n in list(DATASETS._items):
        if n.startswith("syn-"):
            del DATASETS._items[n]


def test_image_text_wins_where_only_the_image_tells(contextual_model_dir, registered):
    source = synthetic_domain("syn-src", 160, 1, text_tells=False, noisy_half=False)
    target = synthetic_domain("syn-tgt", 120, 2, text_tells=False, noisy_half=False)
    with_image, _ = train_and_score(contextual_model_dir, source, target)
    text_only, _ = train_and_score(contextual_model_dir, source, target, input="text")
    assert with_image > text_only + 20, (with_image, text_only)


def test_learned_denoiser_beats_fixed_and_distrusts_noise(contextual_model_dir, registered):
    source = synthetic_domain("syn-nsrc", 160, 3, text_tells=True, noisy_half=True)
    target = synthetic_domain("syn-ntgt", 120, 4, text_tells=True, noisy_half=True)
    learned, method = train_and_score(contextual_model_dir, source, target, denoiser="learned")
    fixed, _ = train_and_score(contextual_model_dir, source, target, denoiser="fixed")
    assert learned > fixed, (learned, fixed)
    sentences = list(target.sentences)
    with torch.no_grad():
        _, weights = method.model.fused(sentences)  # (B, W, 2)
    beta = weights[:, 1, 1]  # the entity word's beta in each tweet
    noisy = torch.tensor([set(s.image_text.split()) <= set(NOISE) for s in sentences])
    assert beta[noisy].mean() < beta[~noisy].mean(), (beta[noisy].mean(), beta[~noisy].mean())
    ep = sample_episodes(target, 1, 0, 40).materialize(target)[0]
    rows = method.trace(ep.for_prediction())
    assert len(rows) == sum(len(s.tokens) for s in ep.query)
    assert {"sentence", "word", "pred", "pred_no_image", "pred_fixed_denoiser", "alpha", "beta"} <= set(rows[0])


def test_meta_training_lowers_the_query_loss(tiny_model_dir, registered):
    source = synthetic_domain("syn-loss", 120, 5, text_tells=True, noisy_half=False)
    _, method = train_and_score(tiny_model_dir, source, source)
    losses = method.fit_report()["mean_query_nll_per_pass"]
    assert losses[-1] < losses[0] * 0.8, losses


def test_same_seed_same_predictions(tiny_model_dir, registered):
    source = synthetic_domain("syn-det", 80, 6, text_tells=True, noisy_half=False)
    a, _ = train_and_score(tiny_model_dir, source, source, passes=1)
    b, _ = train_and_score(tiny_model_dir, source, source, passes=1)
    assert a == b


def test_plan_passes_meets_the_step_floor_with_whole_passes():
    from fewshot_ner.trainer import plan_passes

    for n, per_step, passes, floor in [(824, 4, 2, 200), (167, 4, 2, 200), (84, 4, 2, 200), (5, 4, 1, 0), (9, 4, 3, 7)]:
        got = plan_passes(n, per_step, passes, floor)
        steps_per_pass = -(-n // per_step)
        brute = next(p for p in range(passes, 10_000) if p * steps_per_pass >= floor)  # the smallest that suffices
        assert got == brute, (n, per_step, passes, floor, got, brute)
    assert plan_passes(824, 4, 2, 200) == 2 and plan_passes(167, 4, 2, 200) == 5 and plan_passes(84, 4, 2, 200) == 10
    with pytest.raises(ValueError, match="need episodes"):
        plan_passes(0, 4, 2, 200)


def test_fit_reports_the_passes_and_steps_it_made(tiny_model_dir, registered):
    source = synthetic_domain("syn-steps", 40, 7, text_tells=True, noisy_half=False)
    _, method = train_and_score(tiny_model_dir, source, source, passes=1, min_steps=9)
    report = method.fit_report()
    per_pass = -(-report["train_episodes"] // 4)
    assert report["optimizer_steps"] == report["passes"] * per_pass >= 9
    assert len(report["mean_query_nll_per_pass"]) == report["passes"] > 1


def test_sparse_embedding_gradient_equals_the_dense_one(tiny_model_dir, registered):
    from fewshot_ner.trainer import densify_grads

    source = synthetic_domain("syn-sparse", 40, 8, text_tells=True, noisy_half=False)
    episode = sample_episodes(source, 1, 0, None, "train").materialize(source)[0]
    grads = {}
    for sparse in (False, True):
        torch.manual_seed(0)
        method = MFNER(RunContext(encoder=str(tiny_model_dir), progress=False), sparse_embedding_grad=sparse)
        opt = torch.optim.Adam(method._param_groups())
        method.model.features.add_domain(source)
        method.model.train()
        method.model.loss(episode).backward()
        weight = method.encoder.model.get_input_embeddings().weight
        assert weight.grad.is_sparse == sparse
        densify_grads([p for g in opt.param_groups for p in g["params"]])
        grads[sparse] = weight.grad.clone()
    assert grads[True].abs().sum() > 0
    torch.testing.assert_close(grads[True], grads[False], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("train_layers", [None, 1, 0])
def test_train_layers_updates_the_top_layers_only(tiny_model_dir, registered, train_layers):
    """Fine-tuning the top N layers changes them and leaves every parameter below bit-identical; the
    trained layers' gradients equal those of full fine-tuning on the same episode (the frozen part only
    stops the backward pass early, it does not change what flows through the layers above)."""
    source = synthetic_domain(f"syn-layers-{train_layers}", 40, 9, text_tells=True, noisy_half=False)
    torch.manual_seed(0)
    method = MFNER(
        RunContext(encoder=str(tiny_model_dir), progress=False), train_layers=train_layers, passes=1, min_steps=0
    )
    before = {n: p.detach().clone() for n, p in method.encoder.named_parameters()}
    method.fit([SourceTask(source, sample_episodes(source, 1, 0, None, "train").materialize(source))])
    changed = {n for n, p in method.encoder.named_parameters() if not torch.equal(p, before[n])}
    top = {n for n, _ in method.encoder.named_parameters() if n.startswith("model.encoder.layer.1.")}
    if train_layers is None:
        assert top < changed and any("embeddings" in n for n in changed)
    elif train_layers == 1:
        assert changed == top
    else:
        assert changed == set()


def test_train_layers_gradients_match_full_fine_tuning_above_the_cut(tiny_model_dir, registered):
    source = synthetic_domain("syn-layers-grad", 40, 10, text_tells=True, noisy_half=False)
    episode = sample_episodes(source, 1, 0, None, "train").materialize(source)[0]
    grads = {}
    for train_layers in (None, 1):
        torch.manual_seed(0)
        method = MFNER(RunContext(encoder=str(tiny_model_dir), progress=False), train_layers=train_layers)
        method._param_groups()
        method.model.features.add_domain(source)
        method.model.train()
        method.model.loss(episode).backward()
        grads[train_layers] = {
            n: p.grad.clone() for n, p in method.encoder.named_parameters() if n.startswith("model.encoder.layer.1.")
        }
        below = [p.grad for n, p in method.encoder.named_parameters() if not n.startswith("model.encoder.layer.1.")]
        assert all(g is None for g in below) == (train_layers == 1)
    for name, grad in grads[None].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="train_layers must be a number of layers >= 0"):
        MFNER.check_options({"train_layers": -1})


def test_all_layers_is_every_transformer_layer_without_the_embeddings(tiny_model_dir):
    """``train_layers="all"`` is the top N layers for an N-layer encoder, whatever N (the fast profile)."""
    from fewshot_ner.encoder import WordEncoder, transformer_layers

    enc = WordEncoder(str(tiny_model_dir))
    depth = len(transformer_layers(enc.model))
    by_name = [id(p) for p in enc.top_parameters("all")]
    assert by_name == [id(p) for p in enc.top_parameters(depth)]
    embeddings = {id(p) for p in enc.model.get_input_embeddings().parameters()}
    assert not embeddings & set(by_name) and embeddings <= {id(p) for p in enc.top_parameters(None)}
    with pytest.raises(ValueError, match="'every'"):
        enc.top_parameters("every")


def _real_episodes(domain: Domain, n: int):
    return sample_episodes(domain, 1, 0, None, "train").materialize(domain, n)


def test_joined_support_and_query_give_the_separate_forward(tiny_model_dir, t17):
    """One encoder call per view for support and query pads them together; what comes out is the
    same function of the words (real tweets of mixed lengths, so the padding does differ)."""
    torch.manual_seed(0)
    method = MFNER(RunContext(encoder=str(tiny_model_dir), progress=False))
    method.model.eval()
    for episode in _real_episodes(t17, 4):
        outs = {}
        for joined in (False, True):
            method.model.join_support_query = joined
            with torch.no_grad():
                outs[joined] = method.model(episode)
        a, b = outs[False], outs[True]
        assert a.emissions.shape == b.emissions.shape and torch.equal(a.mask, b.mask)
        torch.testing.assert_close(b.emissions, a.emissions, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(b.weights, a.weights, rtol=1e-4, atol=1e-5)


def _no_dropout(method: MFNER) -> None:
    for module in method.encoder.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def test_label_vectors_per_step_give_the_per_episode_gradients(tiny_model_dir, t17):
    """Sharing one label-name forward across a step's episodes: the same encoder gradients (dropout
    off, so both roads compute one function), one label forward instead of one per episode."""
    episodes = _real_episodes(t17, 4)
    grads, calls = {}, {}
    for shared in (False, True):
        torch.manual_seed(0)
        method = MFNER(RunContext(encoder=str(tiny_model_dir), progress=False), label_vectors_per_step=shared)
        method._param_groups()
        _no_dropout(method)
        method.model.train()
        names: list[str] = []

        def counting(sentences, view, names=names, original=method.encoder.tokenize):
            names.append(sentences[0].key)
            return original(sentences, view)

        method.encoder.tokenize = counting  # type: ignore[method-assign]
        for episode in episodes:
            (method.model.loss(episode) / 4).backward()
        method.model.before_step()
        calls[shared] = sum(k.startswith("label:") for k in names)
        grads[shared] = {n: p.grad.clone() for n, p in method.encoder.named_parameters() if p.grad is not None}
    assert calls == {False: 4, True: 1}
    assert grads[True].keys() == grads[False].keys() and grads[False]
    for name, grad in grads[False].items():
        torch.testing.assert_close(grads[True][name], grad, rtol=1e-4, atol=1e-6)


def test_label_vectors_per_step_with_nothing_to_train_in_the_encoder(tiny_model_dir, registered):
    """With every encoder layer frozen there is no label-name graph to send a gradient through: the
    step must not try (it raised 'element 0 of tensors does not require grad')."""
    source = synthetic_domain("syn-step-frozen", 24, 11, text_tells=True, noisy_half=False)
    _, method = train_and_score(
        tiny_model_dir, source, source, profile="finetune", train_layers=0, label_vectors_per_step=True, passes=1
    )
    report = method.fit_report()
    assert report["optimizer_steps"] == -(-report["train_episodes"] // 4) >= 1


def test_model_and_config_agree_on_the_similarity_default():
    import inspect

    from mfner.method import MFNERConfig
    from mfner.model import MFNERModel

    assert inspect.signature(MFNERModel).parameters["similarity"].default == MFNERConfig().similarity


@pytest.mark.parametrize("dropout", [False, True])
def test_encoder_dropout_reaches_the_encoder_while_meta_training(tiny_model_dir, registered, dropout):
    """MFNER's model does not hold the encoder as a submodule, so ``model.train()`` alone never reached it."""
    source = synthetic_domain("syn-dropout", 16, 11, text_tells=True, noisy_half=False)
    train = sample_episodes(source, 1, 0, None, "train").materialize(source)
    method = MFNER(
        RunContext(encoder=str(tiny_model_dir), progress=False), passes=1, min_steps=0, encoder_dropout=dropout
    )
    seen: set[bool] = set()
    for module in method.encoder.modules():
        if isinstance(module, torch.nn.Dropout):
            module.register_forward_hook(lambda m, _i, _o: seen.add(m.training))
    method.fit([SourceTask(source, train)])
    assert seen == {dropout}
    assert not method.encoder.training  # prediction runs without dropout either way


def test_linear_schedule_warms_up_then_decays_to_zero():
    from fewshot_ner.trainer import TrainerConfig, lr_factor

    total = 50
    factors = [lr_factor(s, total, "linear") for s in range(total)]
    warmup = 5  # 10% of 50
    assert factors[:warmup] == [(s + 1) / warmup for s in range(warmup)]
    assert factors[warmup - 1] == 1.0 and all(
        a > b for a, b in zip(factors[warmup - 1 : -1], factors[warmup:], strict=True)
    )
    assert factors[-1] == pytest.approx(1 / (total - warmup + 1))
    assert all(lr_factor(s, total, "constant") == 1.0 for s in range(total))
    with pytest.raises(ValueError, match="schedule must be one of"):
        TrainerConfig(schedule="cosine")


def test_label_vector_cls_is_the_first_position_and_the_anchor_mix_reaches_the_head(tiny_model_dir):
    from fewshot_ner.encoder import WordEncoder

    method = MFNER(RunContext(encoder=str(tiny_model_dir), progress=False), label_vector="cls", prototype_weight=1.0)
    assert method.model.tapnet.prototype_weight == 1.0
    method.model.eval()
    labels = ("O", "B-PER", "I-PER")
    with torch.no_grad():
        got = method.model.label_vectors(labels)  # (C, H)
        enc: WordEncoder = method.encoder
        names = [
            Sentence(f"label:{x}", tuple(label_name(x).split()), ("O",) * len(label_name(x).split()), "")
            for x in labels
        ]
        hidden = enc.model(**enc.tokenize(names, "text").inputs).last_hidden_state  # (C, S, H)
    torch.testing.assert_close(got, hidden[:, 0])
    with pytest.raises(ValueError, match="label_vector must be mean or cls"):
        make_config(label_vector="sep")

"""Suites are data: which methods (with options), domains, shots, seeds and episode caps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from fewshot_ner.defaults import DEFAULT_ENCODER
from fewshot_ner.registry import Registry

#: ``--quick``: test episodes scored per (target, K), and source episodes a domain by shots (a 5-shot source
#: episode costs about twice a 1-shot one: ProtoNet's quick fit on T17 took 75.7 s at 64 5-shot episodes and 35.7 s
#: at 64 1-shot ones, so half as many keep the budget). With each method's quick_options (one pass, one episode a
#: step) on T17 -> T15, 1 shot, the first 20 test episodes: MFNER 38.10, ProtoNet 28.64, BERT+CRF transfer (512
#: source sentences) 17.34, above the frozen floor's 3.59. Cost per cell: docs/cost.md.
QUICK_EPISODES = 20
QUICK_TRAIN_EPISODES = {1: 64, 5: 32}


def quick_train_episodes(k: int) -> int:
    """Source episodes a domain for a ``--quick`` cell of ``k`` shots (64 at 1 shot, 32 above)."""
    return QUICK_TRAIN_EPISODES[1] if k <= 1 else QUICK_TRAIN_EPISODES[5]


@dataclass(frozen=True)
class MethodSpec:
    """A row of a result table: a registered method with its options, under a label."""

    label: str
    method: str
    options: dict[str, Any] = field(default_factory=dict)


#: Row options the harness reads itself rather than the method: ``precision`` (the encoder's arithmetic,
#: fp32 | bf16) goes into the run context, so every method that runs the encoder takes it alike. Like the
#: encoder, it tags the row label (``MFNER (bf16)``, see ``bench.runner.row_label``), not the bracket of
#: method options, so a bf16 row keeps its suite row and pairs with its fp32 twin by the records' fields.
HARNESS_OPTIONS: tuple[str, ...] = ("precision",)


def with_options(spec: MethodSpec, overrides: dict[str, Any]) -> MethodSpec:
    """``spec`` with some options replaced, as a row of its own: ``label[key=value,...]`` (harness options
    such as ``precision`` change the options but not the label: the runner tags it)."""
    if not overrides:
        return spec
    tag = ",".join(
        f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in overrides.items() if k not in HARNESS_OPTIONS
    )
    return MethodSpec(f"{spec.label}[{tag}]" if tag else spec.label, spec.method, {**spec.options, **overrides})


def no_match(option: str, given: object, choices: object) -> ValueError:
    return ValueError(f"{option} {given} matches nothing in this suite; choices: {choices}")


def check_selection(
    suite: Suite,
    methods: tuple[str, ...] = (),
    shots: tuple[int, ...] | None = None,
    seeds: tuple[int, ...] | None = None,
    overrides: dict[str, Any] | None = None,
    episodes: int | None = None,
) -> None:
    """The selection options that need no data (``--method``, ``--k``, ``--seeds``, ``--episodes``) must match
    the suite: a typo fails here, naming the option and the choices, before torch or the data load."""
    labels = {s.label for s in suite.methods} | {s.method for s in suite.methods}
    for m in methods:
        if m not in labels and not any(m == with_options(s, overrides or {}).label for s in suite.methods):
            raise no_match("--method", repr(m), ", ".join(sorted(labels)))
    for k in shots or ():
        if k not in suite.shots:
            raise no_match("--k", k, ", ".join(map(str, suite.shots)))
    for s in seeds or ():
        if s not in suite.seeds:
            raise no_match("--seeds", s, ", ".join(map(str, suite.seeds)))
    if episodes is not None and episodes < 1:
        raise ValueError(f"--episodes must be at least 1, got {episodes}")


@dataclass(frozen=True)
class CellOptions:
    """Method options added to some cells of a suite's rows without making a row of their own: a configuration
    a grid took up part-way, for the (target, K) blocks it had not begun, so that every cell of a block runs
    alike and each record's ``config`` says how it ran. A row keeps its label; ``bench check`` reruns a cell
    with the options its block had."""

    options: dict[str, Any]
    methods: tuple[str, ...]  # the registered methods that take the options (other rows are left as they are)
    targets: tuple[str, ...] = ()  # () every target
    shots: tuple[int, ...] = ()  # () every K

    def applies(self, spec: MethodSpec, target: str, k: int) -> bool:
        return (
            spec.method in self.methods
            and (not self.targets or target in self.targets)
            and (not self.shots or k in self.shots)
        )


@dataclass(frozen=True)
class Cell:
    """One unit of work and one result record: a method on a target domain, K shots, a seed."""

    spec: MethodSpec
    target: str
    k: int
    seed: int


@dataclass(frozen=True)
class Suite:
    """A declared grid of leave-one-out runs (or a kernel benchmark)."""

    name: str
    description: str
    kind: Literal["fewshot", "kernels"] = "fewshot"
    methods: tuple[MethodSpec, ...] = ()
    domains: tuple[str, ...] = ("twitter2017", "twitter2015", "snap")
    shots: tuple[int, ...] = (1, 5)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    max_episodes: int = 200  # the paper's cap per target domain
    eval_episodes: int | None = None  # evaluate only the first N of them (quick suites)
    train_episodes: int | None = None  # source episodes per domain for training (None: all)
    trace_episodes: int = 2  # test episodes traced per cell by methods that trace (case studies)
    include: tuple[tuple[str, str], ...] = ()  # (suite, label) rows whose records the report shows too
    reference: str | None = None  # the row that the report compares every variant against, paired by seed
    pairs: tuple[tuple[str, str], ...] = ()  # (row A, row B) the report compares, A − B paired by seed
    # dev: a domain's train split -> episodes of its valid split (probes); fulldata: supervised, a domain's
    # train split (valid to pick the epoch) -> its whole test split, K = 0
    protocol: Literal["leave-one-out", "dev", "fulldata"] = "leave-one-out"
    encoder: str = DEFAULT_ENCODER  # the encoder a run uses unless --encoder names another
    cell_options: tuple[CellOptions, ...] = ()  # options of some (target, K) blocks, the rows' labels kept

    def cells(self, targets: tuple[str, ...]) -> Iterator[Cell]:
        for spec in self.methods:
            for k in self.shots:
                for target in targets:
                    cell_spec = self.cell_spec(spec, target, k)
                    for seed in self.seeds:
                        yield Cell(cell_spec, target, k, seed)

    def cell_spec(self, spec: MethodSpec, target: str, k: int) -> MethodSpec:
        """The row's spec with the options its (target, K) block adds (``cell_options``), under the same label."""
        extra = {key: v for c in self.cell_options if c.applies(spec, target, k) for key, v in c.options.items()}
        return MethodSpec(spec.label, spec.method, {**spec.options, **extra}) if extra else spec


SUITES: Registry[Suite] = Registry("suite")

SUITES.add(
    "smoke",
    Suite(
        name="smoke",
        description="Frozen nearest prototype on both Twitter targets, 1 and 5 shots, 20 episodes, seed 0.",
        methods=(MethodSpec("proto-frozen", "proto-frozen"),),
        domains=("twitter2017", "twitter2015"),
        seeds=(0,),
        eval_episodes=20,
    ),
)

SUITES.add(
    "ci",
    Suite(
        name="ci",
        description=(
            "The regression check CI runs: MFNER fine-tuning the bundled MiniLM for a few steps (32 source episodes, "
            "one pass) and scored on 10 test episodes, both directions, 1 shot, seed 0; a change that moves MFNER's F1 "
            "moves this cell (`bench check --suite ci`, one thread, as its record was made)."
        ),
        methods=(MethodSpec("MFNER", "mfner", {"max_train_episodes": 32, "passes": 1, "min_steps": 0}),),
        domains=("twitter2017", "twitter2015"),
        shots=(1,),
        seeds=(0,),
        eval_episodes=10,
    ),
)

SUITES.add(
    "table3",
    Suite(
        name="table3",
        description="Paper Table 3: every method, leave-one-out over T17/T15/SNAP, 1 and 5 shots, 5 seeds.",
        methods=(  # the paper's Table 3 order, then this project's rows: transfer, floors
            MethodSpec("BERT+CRF", "bert-crf"),
            MethodSpec("ITA", "ita"),
            MethodSpec("ProtoNet", "protonet"),
            MethodSpec("WPZ", "wpz"),
            MethodSpec("SpanNER", "spanner"),
            MethodSpec("MFNER", "mfner"),
            # steps 0: on the source-domain probe, 20 support steps after transfer moved F1 by -0.88
            # [-6.22, +4.32] (probes-finetune): no detectable help, at the cost of 200 adaptations a cell
            MethodSpec("BERT+CRF transfer", "bert-crf", {"protocol": "transfer", "steps": 0}),
            MethodSpec("ITA transfer", "ita", {"protocol": "transfer", "steps": 0}),
            # beyond the paper: the simple few-shot methods built on supervised transfer (Yang and Katiyar 2020)
            # NNShot's IO tags: +2.31 [+0.58, +4.30] over BIO on the source-domain probe (probes, NNShot io); StructShot's
            # not detectably different there (+0.05 [-2.37, +2.60]), so it keeps the paper's BIO
            MethodSpec("NNShot", "nnshot", {"tagging": "io"}),
            MethodSpec("StructShot", "structshot"),
            MethodSpec("CONTaiNER", "container"),  # Das et al. 2022: contrastive Gaussian embeddings, then NN
            MethodSpec("lookup", "lookup"),
            MethodSpec("proto-frozen", "proto-frozen"),
        ),
        pairs=(
            ("ITA", "BERT+CRF"),  # does the alignment of the two views add anything
            ("BERT+CRF transfer", "BERT+CRF"),  # the practitioner's protocol against the paper's
            ("ITA transfer", "ITA"),
            ("ITA transfer", "BERT+CRF transfer"),  # the alignment once both learn from the source
            ("MFNER", "BERT+CRF transfer"),  # the paper's model against plain supervised transfer, same encoder
            # the paper's claim: MFNER above every meta-trained baseline, on the same episodes
            ("MFNER", "ProtoNet"),
            ("MFNER", "WPZ"),
            ("MFNER", "SpanNER"),
            ("NNShot", "BERT+CRF transfer"),  # what nearest neighbours add to the source tagger
            ("StructShot", "BERT+CRF transfer"),
            ("StructShot", "NNShot"),  # what the abstract transitions are worth
            ("MFNER", "NNShot"),
            ("MFNER", "StructShot"),
            ("CONTaiNER", "BERT+CRF transfer"),
            ("CONTaiNER", "NNShot"),  # contrastive source training against the tagger's, both nearest neighbours
            ("MFNER", "CONTaiNER"),
        ),
    ),
)

SUITES.add(
    "table6",
    Suite(
        name="table6",
        description=(
            "Paper Table 6: ProtoNet, WPZ and SpanNER reading the tweet [SEP] its image text, 1 shot, each "
            "paired with its text-only row from table3 on the same episodes."
        ),
        methods=(
            MethodSpec("ProtoNet text+image", "protonet", {"input": "text+image"}),
            MethodSpec("WPZ text+image", "wpz", {"input": "text+image"}),
            MethodSpec("SpanNER text+image", "spanner", {"input": "text+image"}),
        ),
        shots=(1,),
        include=(("table3", "ProtoNet"), ("table3", "WPZ"), ("table3", "SpanNER")),
        pairs=(
            ("ProtoNet text+image", "ProtoNet"),
            ("WPZ text+image", "WPZ"),
            ("SpanNER text+image", "SpanNER"),
        ),
    ),
)

SUITES.add(
    "ablations",
    Suite(
        name="ablations",
        description=(
            "Paper Tables 4 and 5: MFNER without image text (E_f = E_t) and with a fixed denoiser "
            "(alpha = beta = 0.5), beside the full model from table3; plus the frozen-encoder profile and the "
            "cheaper fine-tuning of the top 4 of MiniLM's 6 layers (embeddings and the lower 2 frozen) or of all 6 "
            "with the word embeddings frozen, and the fast profile (embeddings frozen, support and query in one "
            "encoder call per view, one label-name forward per optimizer step)."
        ),
        methods=(
            MethodSpec("MFNER text only", "mfner", {"input": "text"}),
            MethodSpec("MFNER fixed denoiser", "mfner", {"denoiser": "fixed"}),
            MethodSpec("MFNER frozen", "mfner", {"profile": "frozen"}),
            MethodSpec("MFNER top 4 layers", "mfner", {"train_layers": 4}),
            MethodSpec("MFNER embeddings frozen", "mfner", {"train_layers": 6}),
            MethodSpec("MFNER fast", "mfner", {"profile": "fast"}),
        ),
        # table3's MFNER at every encoder; the base suite's MFNER fast at mpnet-base in bf16 (the precision issue's
        # pair: paired with MFNER@mpnet-base in fp32)
        include=(("table3", "MFNER"), ("base", "MFNER fast")),
        reference="MFNER",
    ),
)

SUITES.add(
    "probes",
    Suite(
        name="probes",
        description=(
            "Choices made on the source domain only: each method meta-trains on a domain's train split and is "
            "scored on episodes of its valid split (never a target's test episodes). Twitter-2015 is the source "
            "of the T15->T17 direction; 1 shot, seed 0, 100 dev episodes."
        ),
        methods=(
            MethodSpec("ProtoNet euclidean", "protonet", {"similarity": "euclidean", "tagging": "bio"}),
            MethodSpec("ProtoNet dot", "protonet", {"similarity": "dot", "tagging": "bio"}),
            MethodSpec("ProtoNet cosine", "protonet", {"similarity": "cosine", "tagging": "bio"}),
            MethodSpec(
                "ProtoNet euclidean, no dropout",
                "protonet",
                {"similarity": "euclidean", "tagging": "bio", "encoder_dropout": False},
            ),
            MethodSpec("ProtoNet euclidean, io", "protonet", {"similarity": "euclidean", "tagging": "io"}),
            MethodSpec("ProtoNet cosine, io", "protonet", {"similarity": "cosine", "tagging": "io"}),
            MethodSpec("WPZ", "wpz", {"tagging": "bio"}),
            MethodSpec("WPZ, io", "wpz", {"tagging": "io"}),
            MethodSpec("SpanNER type_mix=0.5", "spanner", {"type_mix": 0.5, "threshold": 0.5}),
            MethodSpec("SpanNER type_mix=1", "spanner", {"type_mix": 1.0, "threshold": 0.5}),
            MethodSpec("SpanNER type_mix=0", "spanner", {"type_mix": 0.0, "threshold": 0.5}),
            # the type mix was probed at threshold 0.5 (the default then); the threshold rows at type_mix 0.5:
            # 0.3 beat 0.5, 0.2 did not beat 0.3, so the default is 0.3 (baselines/spanner.py)
            MethodSpec("SpanNER threshold=0.2", "spanner", {"threshold": 0.2}),
            MethodSpec("SpanNER threshold=0.3", "spanner", {"threshold": 0.3}),
            MethodSpec("SpanNER threshold=0.7", "spanner", {"threshold": 0.7}),
            # NNShot's distance and StructShot's temperature (squared distances of word vectors run to the
            # hundreds: the softmax's temperature decides whether the transitions can outvote them)
            MethodSpec("NNShot", "nnshot"),
            MethodSpec("NNShot cosine", "nnshot", {"distance": "cosine"}),
            MethodSpec("StructShot temperature=1", "structshot", {"temperature": 1.0}),
            MethodSpec("StructShot temperature=10", "structshot", {"temperature": 10.0}),
            MethodSpec("StructShot temperature=100", "structshot", {"temperature": 100.0}),
            # IO tags (a type's B and I support words pooled, runs written as IOB2: Few-NERD's setting, and what
            # moved ProtoNet and WPZ above): in 1 shot an entity's inner words rarely have an I- support word
            MethodSpec("NNShot io", "nnshot", {"tagging": "io"}),
            MethodSpec("StructShot temperature=1, io", "structshot", {"temperature": 1.0, "tagging": "io"}),
            # CONTaiNER's open choices, each against the authors' run script (support steps until the loss rises,
            # nearest by unit hidden vectors, Viterbi at transition power 0.01); the rows share one source training
            MethodSpec("CONTaiNER", "container"),
            MethodSpec("CONTaiNER no support steps", "container", {"support_steps": 0}),
            MethodSpec("CONTaiNER word by word", "container", {"transition_power": 0.0}),
            MethodSpec("CONTaiNER gaussian", "container", {"decode": "gaussian"}),
        ),
        domains=("twitter2015",),
        shots=(1,),
        seeds=(0,),
        max_episodes=100,
        protocol="dev",
        pairs=(
            ("ProtoNet euclidean", "ProtoNet dot"),
            ("ProtoNet euclidean", "ProtoNet cosine"),
            ("ProtoNet euclidean, no dropout", "ProtoNet euclidean"),
            ("ProtoNet euclidean, io", "ProtoNet euclidean"),
            ("ProtoNet cosine, io", "ProtoNet cosine"),
            ("WPZ, io", "WPZ"),
            ("SpanNER type_mix=0.5", "SpanNER type_mix=1"),
            ("SpanNER type_mix=0.5", "SpanNER type_mix=0"),
            ("SpanNER type_mix=0.5", "SpanNER threshold=0.3"),
            ("SpanNER threshold=0.3", "SpanNER threshold=0.2"),
            ("SpanNER type_mix=0.5", "SpanNER threshold=0.7"),
            ("NNShot cosine", "NNShot"),
            ("StructShot temperature=1", "NNShot"),
            ("StructShot temperature=10", "NNShot"),
            ("StructShot temperature=100", "NNShot"),
            ("NNShot io", "NNShot"),
            ("StructShot temperature=1, io", "StructShot temperature=1"),
            ("CONTaiNER no support steps", "CONTaiNER"),
            ("CONTaiNER word by word", "CONTaiNER"),
            ("CONTaiNER gaussian", "CONTaiNER"),
        ),
    ),
)

SUITES.add(
    "fulldata",
    Suite(
        name="fulldata",
        description=(
            "Full-data reference (beyond the paper): BERT+CRF trained on a target's standard train split (the "
            "epoch picked on its valid split), scored with seqeval on its whole test split; the ceiling this encoder "
            "reaches with all the data. Published full-data F1 (T15 / T17): UMT 73.41 / 85.31, ITA 78.03 / 89.75, "
            "PGIM 79.33 / 91.43 (larger encoders)."
        ),
        methods=(
            MethodSpec("BERT+CRF full data, text", "bert-crf", {"protocol": "fulldata", "input": "text"}),
            MethodSpec("BERT+CRF full data, text+image", "bert-crf", {"protocol": "fulldata", "input": "text+image"}),
        ),
        domains=("twitter2017", "twitter2015"),
        shots=(0,),
        seeds=(0, 1, 2),
        protocol="fulldata",
        pairs=(("BERT+CRF full data, text+image", "BERT+CRF full data, text"),),
    ),
)

SUITES.add(
    "probes-finetune",
    Suite(
        name="probes-finetune",
        description=(
            "BERT+CRF's per-episode fine-tuning choices on the source domain only (Twitter-2015's train split -> "
            "its valid split, the first 30 of the probes' episodes): which encoder layers the support steps update "
            "(none: the head and CRF on word vectors computed once per episode; all: the paper's full fine-tuning "
            "at the paper's encoder rates 1e-4, 1e-5, 1e-6), the head rate, and whether transfer's support steps help."
        ),
        methods=(
            MethodSpec("BERT+CRF head only", "bert-crf", {"train_layers": 0, "head_lr": 1e-3}),
            MethodSpec("BERT+CRF head only lr 1e-2", "bert-crf", {"train_layers": 0, "head_lr": 1e-2}),
            MethodSpec(
                "BERT+CRF all layers 1e-4", "bert-crf", {"train_layers": None, "encoder_lr": 1e-4, "head_lr": 1e-3}
            ),
            MethodSpec(
                "BERT+CRF all layers 1e-5", "bert-crf", {"train_layers": None, "encoder_lr": 1e-5, "head_lr": 1e-3}
            ),
            MethodSpec(
                "BERT+CRF all layers 1e-6", "bert-crf", {"train_layers": None, "encoder_lr": 1e-6, "head_lr": 1e-3}
            ),
            MethodSpec(
                "BERT+CRF all layers 1e-4, head lr 1e-2",
                "bert-crf",
                {"train_layers": None, "encoder_lr": 1e-4, "head_lr": 1e-2},
            ),
            MethodSpec(
                "BERT+CRF top 2 layers 1e-4, head lr 1e-2",
                "bert-crf",
                {"train_layers": 2, "encoder_lr": 1e-4, "head_lr": 1e-2},
            ),
            # the two rows that chose the support steps ran before transfer_train_layers existed: every parameter
            MethodSpec(
                "BERT+CRF transfer, no support steps",
                "bert-crf",
                {"protocol": "transfer", "steps": 0, "transfer_train_layers": None},
            ),
            MethodSpec(
                "BERT+CRF transfer, 20 support steps",
                "bert-crf",
                {"protocol": "transfer", "steps": 20, "head_lr": 1e-3, "transfer_train_layers": None},
            ),
            MethodSpec(
                "BERT+CRF transfer, embeddings frozen",
                "bert-crf",
                {"protocol": "transfer", "steps": 0, "transfer_train_layers": 6},
            ),
            MethodSpec(
                "BERT+CRF transfer, top 3 layers",
                "bert-crf",
                {"protocol": "transfer", "steps": 0, "transfer_train_layers": 3},
            ),
        ),
        domains=("twitter2015",),
        shots=(1,),
        seeds=(0,),
        max_episodes=100,
        eval_episodes=30,
        protocol="dev",
        pairs=(
            ("BERT+CRF all layers 1e-5", "BERT+CRF head only"),
            ("BERT+CRF transfer, 20 support steps", "BERT+CRF transfer, no support steps"),
            ("BERT+CRF transfer, embeddings frozen", "BERT+CRF transfer, no support steps"),
            ("BERT+CRF transfer, top 3 layers", "BERT+CRF transfer, no support steps"),
        ),
    ),
)

#: MFNER's choices on the source domain (issue: the paper's claims at base size), in the configuration the
#: grids run (profile fast, bf16): each row changes one thing against "MFNER fast", on the same dev episodes.
_PROBE = {"profile": "fast", "precision": "bf16"}

SUITES.add(
    "probes-mfner",
    Suite(
        name="probes-mfner",
        description=(
            "MFNER's training choices made on the source domain only (Twitter-2015's train split -> 100 episodes "
            "of its valid split, never a target's test episodes), each paired with the configuration the grids run "
            "(profile fast, bf16): the encoder's dropout, its learning rate with and without warm-up and decay, "
            "twice the steps, one episode a step, the anchor mix and the label vector; 1 and 5 shots, seed 0."
        ),
        methods=(
            MethodSpec("MFNER fast", "mfner", _PROBE),
            MethodSpec("dropout", "mfner", _PROBE | {"encoder_dropout": True}),
            MethodSpec("encoder lr 1e-5", "mfner", _PROBE | {"encoder_lr": 1e-5}),
            MethodSpec("encoder lr 2e-5", "mfner", _PROBE | {"encoder_lr": 2e-5}),
            MethodSpec("encoder lr 1e-4", "mfner", _PROBE | {"encoder_lr": 1e-4}),
            MethodSpec("warm-up and decay", "mfner", _PROBE | {"schedule": "linear"}),
            MethodSpec(
                "encoder lr 1e-4, warm-up and decay", "mfner", _PROBE | {"encoder_lr": 1e-4, "schedule": "linear"}
            ),
            MethodSpec("twice the steps", "mfner", _PROBE | {"passes": 4, "min_steps": 400}),
            MethodSpec("one episode a step", "mfner", _PROBE | {"episodes_per_step": 1}),
            MethodSpec("prototype weight 0.5", "mfner", _PROBE | {"prototype_weight": 0.5}),
            MethodSpec("prototype weight 1", "mfner", _PROBE | {"prototype_weight": 1.0}),
            MethodSpec("label vector cls", "mfner", _PROBE | {"label_vector": "cls"}),
        ),
        domains=("twitter2015",),
        seeds=(0,),
        max_episodes=100,
        protocol="dev",
        reference="MFNER fast",
    ),
)

#: The base-size configuration, the same for every method that runs the encoder: bfloat16 autocast on the
#: encoder, and the word embeddings frozen (every transformer layer trained). Chosen by the precision issue's
#: paired F1 checks and one-process timings (docs/cost.md; reports/ablations.md, Precision).
BASE = {"precision": "bf16"}
BASE_META = BASE | {"train_layers": "all"}
#: The encoder's calls a meta-training step makes: one per view on the step's sentences, length-sorted, at most this
#: many padded sub-tokens a call (``step_tokens``; chosen on one-process timings at mpnet-base, T17 training episodes).
STEP_TOKENS = 1024
BASE_MFNER = BASE | {"profile": "fast"}  # train_layers "all", support and query in one call, one label forward a step

SUITES.add(
    "base",
    Suite(
        name="base",
        description=(
            "The paper's claims at the paper's encoder size: all-mpnet-base-v2 (12 layers, 768 wide, as BERT-base), "
            "every method in the base configuration (bf16 encoder, word embeddings frozen); Table 3's learned rows, "
            "MFNER's ablations (Tables 4 and 5) and Table 6, leave-one-out over T17/T15, paired as in those suites. "
            "T15 at 5 shots and T15 -> T17 run the meta-trained rows with a step's sentences encoded once "
            "(step_tokens, docs/cost.md); T15 at 1 shot ran one encoder call per request."
        ),
        methods=(
            MethodSpec("BERT+CRF", "bert-crf", BASE),  # the paper's order, then transfer and the ablations
            MethodSpec("ProtoNet", "protonet", BASE_META),
            MethodSpec("WPZ", "wpz", BASE_META),
            MethodSpec("SpanNER", "spanner", BASE_META),
            MethodSpec("MFNER fast", "mfner", BASE_MFNER),
            MethodSpec(
                "BERT+CRF transfer",
                "bert-crf",
                BASE | {"protocol": "transfer", "steps": 0, "transfer_train_layers": "all"},
            ),
            MethodSpec("MFNER fast text only", "mfner", BASE_MFNER | {"input": "text"}),
            MethodSpec("MFNER fast fixed denoiser", "mfner", BASE_MFNER | {"denoiser": "fixed"}),
            MethodSpec("ProtoNet text+image", "protonet", BASE_META | {"input": "text+image"}),
            MethodSpec("WPZ text+image", "wpz", BASE_META | {"input": "text+image"}),
            MethodSpec("SpanNER text+image", "spanner", BASE_META | {"input": "text+image"}),
            # beyond the paper (the few-shot peers): on the transfer row's source tagger (its cached weights), so a
            # cell costs only its test episodes. StructShot: the best of the three on the source-domain probe
            # (probes, T15 train -> valid, 1 shot); NNShot beside it, for what the transitions are worth.
            MethodSpec("NNShot", "nnshot", BASE | {"transfer_train_layers": "all", "tagging": "io"}),  # as in table3
            MethodSpec("StructShot", "structshot", BASE | {"transfer_train_layers": "all"}),
        ),
        domains=("twitter2017", "twitter2015"),
        encoder="mpnet-base",
        include=(("table3", "MFNER"),),  # MFNER@mpnet-base in fp32 and its default profile: what bf16 + fast cost
        # The blocks begun after the encoder's step sharing landed: T15 at 5 shots and T15 -> T17 at both, a step's
        # sentences encoded once in length-sorted calls (the T15 1-shot cells ran one encoder call per request;
        # results/step-tokens-speedup.json, docs/cost.md).
        cell_options=tuple(
            CellOptions({"step_tokens": STEP_TOKENS}, ("protonet", "wpz", "spanner", "mfner"), targets, shots)
            for targets, shots in ((("twitter2015",), (5,)), (("twitter2017",), ()))
        ),
        pairs=(
            ("MFNER fast", "MFNER"),  # the base configuration against MFNER's own fp32 cells at mpnet-base
            ("MFNER fast", "BERT+CRF transfer"),
            ("MFNER fast", "ProtoNet"),
            ("MFNER fast", "WPZ"),
            ("MFNER fast", "SpanNER"),
            ("MFNER fast", "BERT+CRF"),
            ("MFNER fast", "MFNER fast text only"),  # Table 4: image text
            ("MFNER fast", "MFNER fast fixed denoiser"),  # Table 5: the learned denoiser
            ("ProtoNet text+image", "ProtoNet"),  # Table 6
            ("WPZ text+image", "WPZ"),
            ("SpanNER text+image", "SpanNER"),
            ("StructShot", "BERT+CRF transfer"),  # the few-shot peers against plain transfer, as in table3
            ("NNShot", "BERT+CRF transfer"),
            ("StructShot", "NNShot"),
            ("MFNER fast", "StructShot"),
        ),
    ),
)

SUITES.add(
    "fulldata-base",
    Suite(
        name="fulldata-base",
        description=(
            "The full-data ceiling at the paper's encoder size (beyond the paper): BERT+CRF on Twitter-2015's "
            "standard train split (the epoch picked on its valid split), scored on its whole test split, with "
            "all-mpnet-base-v2 in the base configuration (bf16, word embeddings frozen, every layer trained): what "
            "the few-shot rows of `base` on T15 stand below. The same protocol as `fulldata` at MiniLM."
        ),
        methods=(
            MethodSpec(
                "BERT+CRF full data, text",
                "bert-crf",
                BASE | {"protocol": "fulldata", "input": "text", "transfer_train_layers": "all"},
            ),
        ),
        domains=("twitter2015",),
        shots=(0,),
        seeds=(0, 1, 2),
        protocol="fulldata",
        encoder="mpnet-base",
    ),
)

SUITES.add(
    "probes-mfner-base",
    Suite(
        name="probes-mfner-base",
        description=(
            "MFNER's strongest candidate change from its MiniLM probes (probes-mfner), the encoder's dropout, probed "
            "again at the paper's encoder size in the base configuration: Twitter-2015's train split -> episodes of "
            "its valid split (never a target's test episodes), paired with the configuration the base grid runs; "
            "1 shot, seed 0."
        ),
        methods=(
            MethodSpec("MFNER fast", "mfner", BASE_MFNER),
            MethodSpec("dropout", "mfner", BASE_MFNER | {"encoder_dropout": True}),
        ),
        domains=("twitter2015",),
        shots=(1,),
        seeds=(0,),
        max_episodes=100,
        protocol="dev",
        encoder="mpnet-base",
        reference="MFNER fast",
    ),
)

SUITES.add(
    "kernels",
    Suite(
        name="kernels",
        description="CRF/Viterbi kernel timings against pytorch-crf on cpu or cuda (issue: CRF kernels).",
        kind="kernels",
    ),
)

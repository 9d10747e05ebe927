"""Time a method's training under variants of its options, in one process, as ratios to its default.

Each variant trains a fresh method (seed 0) on the same data: a meta-trained method (MFNER by
default, or ``--method protonet|wpz|spanner``) on the first ``--episodes`` Twitter-2017 training
episodes of ``--k`` shots, one pass and no step floor (the T17 -> T15 direction); ``--method bert-crf`` its source
training (``protocol=transfer``) on the first ``--sentences`` Twitter-2017 sentences, its cache of
trained weights bypassed. The variants take turns, ``--repeats`` rounds, and each keeps its fastest
round (the least disturbed by whatever else the machine runs). The ratio is base seconds / variant
seconds from the same process and encoder, so load that slows every variant alike cancels.

A variant is ``key=value[,key=value]``: the method's options, ``precision=bf16`` (the run context's
precision, as ``bench run --set precision=bf16``), ``token_cache=false`` (the encoder's
tokenisation cache off, the code as it was before the cache) and ``cast_cache=false`` (in bf16,
autocast casts every linear weight in every call, as before ``WordEncoder.linear_casts``) and
``grad_sum=false`` (in bf16, autograd casts and sums each call's gradient parts, as before ``GradSum``).
``--encoder`` may repeat: every variant runs on each. Writes a JSON list (``--out``), one entry per
(encoder, variant): ``encoder``, ``variant``, ``seconds`` (the best round), ``ratio_vs_default``, the
rounds, the same for the process's CPU seconds (``cpu_seconds``, ``cpu_ratio_vs_default``: on a machine
that other work shares, the CPU time a fit took is steadier than its wall time), ``same_weights_as_base``
(whether the trained weights equal the base's to the last bit, in every round), and the command, git
commit and environment that produced them. Usage (the precision issue's figures):
    OMP_NUM_THREADS=1 python scripts/time_mfner.py --encoder minilm --encoder mpnet-base --episodes 12 \\
        --repeats 3 --variant profile=fast --variant profile=fast,precision=bf16 --variant precision=bf16 \\
        --out results/precision-speedup.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from bench.allocator import keep_freed_memory
from bench.methods import METHODS
from bench.records import provenance, write_text_atomic
from bench.runner import split_options
from fewshot_ner.datasets import Domain, load_domain
from fewshot_ner.episodes import Episode, cached_episodes
from fewshot_ner.method import RunContext, SourceTask
from fewshot_ner.paths import cache_dir


def parse_variant(text: str) -> dict[str, Any]:
    """``key=value[,key=value]`` -> options; values read as JSON where they parse (``4``, ``true``)."""
    options: dict[str, Any] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise SystemExit(f"--variant {text!r}: expected key=value")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


ENCODER_OPTIONS = ("token_cache", "cast_cache", "grad_sum")  # set on the WordEncoder, not method options


def method_options(options: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A variant's method options (without those set on the encoder or the run context) and its precision."""
    return split_options({k: v for k, v in options.items() if k not in ENCODER_OPTIONS})


def weights_digest(method: object) -> str:
    """A hash of every tensor in the method's modules' state (its trained weights), to the last bit."""
    digest = hashlib.sha256()
    modules = sorted((k, v) for k, v in vars(method).items() if isinstance(v, torch.nn.Module))
    for attr, module in modules:
        for key, tensor in module.state_dict().items():
            digest.update(f"{attr}.{key}".encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def fit_seconds(
    name: str, encoder: str, domain: Domain, episodes: list[Episode], options: dict[str, Any], budget: dict[str, Any]
) -> tuple[float, float, str]:
    """Wall and CPU seconds of one ``fit`` (building the method not counted) and its trained weights' digest;
    a transfer cache file it wrote is removed."""
    torch.manual_seed(0)
    chosen, precision = method_options(options)
    ctx = RunContext(seed=0, progress=False, encoder=encoder, precision=precision)
    method = METHODS.get(name)(ctx, **(budget | chosen))
    for key in ENCODER_OPTIONS:
        if key in options:
            if not hasattr(method.encoder, key):  # an older checkout's encoder: the variant would time nothing
                raise SystemExit(f"{key}: the encoder of {name} has no such switch in this code")
            setattr(method.encoder, key, bool(options[key]))
    cached = cache_dir() / "transfer"
    before = set(cached.glob("*.pt")) if cached.is_dir() else set()
    t0, cpu0 = time.perf_counter(), time.process_time()
    method.fit([SourceTask(domain, episodes)])
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if (method.fit_report() or {}).get("loaded_from_cache"):
        raise RuntimeError("source training came from the cache: nothing was timed")
    for path in (set(cached.glob("*.pt")) if cached.is_dir() else set()) - before:
        path.unlink(missing_ok=True)  # the next round trains again
    return seconds, cpu, weights_digest(method)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="mfner", help="a registered method (default mfner)")
    parser.add_argument("--encoder", action="append", help="encoder name or folder, repeatable (default minilm)")
    parser.add_argument("--episodes", type=int, default=24, help="training episodes (6 optimizer steps per 24)")
    parser.add_argument("--k", type=int, default=1, help="shots of the training episodes (1 or 5)")
    parser.add_argument("--sentences", type=int, default=256, help="bert-crf: source sentences of source training")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; each variant keeps its fastest")
    parser.add_argument("--passes", type=int, default=1, help="passes over the episodes (a cell makes 2 or more)")
    parser.add_argument("--base", default="", help="key=value[,key=value]: the options the ratios divide by")
    parser.add_argument("--variant", action="append", default=[], help="key=value[,key=value] options")
    parser.add_argument("--out", type=Path, default=Path("results/mfner-fit-speed.json"))
    args = parser.parse_args()
    keep_freed_memory()  # the allocator every cell of the harness runs with (bench.cell.run_cell)
    if args.method not in METHODS:
        raise SystemExit(f"--method {args.method!r}: not one of {', '.join(METHODS)}")
    cls = METHODS.get(args.method)
    t17 = load_domain("twitter2017")
    if args.method == "bert-crf":
        budget: dict[str, Any] = {"protocol": "transfer", "steps": 0, "transfer_max_sentences": args.sentences}
        episodes: list[Episode] = []
    else:
        budget = {"passes": args.passes, "min_steps": 0}
        episodes = cached_episodes(t17, args.k, 0, None, "train").materialize(t17, args.episodes)
    base = args.base or "default"
    variants = {base: parse_variant(args.base) if args.base else {}} | {v: parse_variant(v) for v in args.variant}
    for options in variants.values():
        cls.check_options(budget | method_options(options)[0])
    encoders = args.encoder or ["minilm"]
    rows = []
    for encoder in encoders:
        times: dict[str, list[float]] = {name: [] for name in variants}
        cpu_times: dict[str, list[float]] = {name: [] for name in variants}
        digests: dict[str, set[str]] = {name: set() for name in variants}
        for round_ in range(args.repeats):
            for name, options in variants.items():
                seconds, cpu, digest = fit_seconds(args.method, encoder, t17, episodes, options, budget)
                times[name].append(seconds)
                cpu_times[name].append(cpu)
                digests[name].add(digest)
                print(f"{encoder} round {round_ + 1}: {name}: {seconds:.1f} s ({cpu:.1f} s CPU)", flush=True)
        base_s, base_cpu = min(times[base]), min(cpu_times[base])
        for name, ts in times.items():
            row = {"encoder": encoder, "variant": name, "seconds": round(min(ts), 2)}
            row |= {"ratio_vs_default": round(base_s / min(ts), 3), "rounds_s": [round(t, 2) for t in ts]}
            cpu = cpu_times[name]
            row |= {"cpu_seconds": round(min(cpu), 2), "cpu_ratio_vs_default": round(base_cpu / min(cpu), 3)}
            row |= {"cpu_rounds_s": [round(t, 2) for t in cpu]}
            row |= {"same_weights_as_base": digests[name] == digests[base] and len(digests[base]) == 1}
            rows.append(row | {"method": args.method, "options": variants[name]})
            same = "same weights" if row["same_weights_as_base"] else "other weights"
            line = f"{encoder:12s} {name:40s} {row['seconds']:7.1f} s  {row['ratio_vs_default']:.2f}x"
            print(f"{line}  CPU {row['cpu_ratio_vs_default']:.2f}x  {same}", flush=True)
    meta = provenance(["python", "scripts/time_mfner.py", *sys.argv[1:]])
    shared = (
        {"episodes": len(episodes), "k": args.k, "passes": args.passes} if episodes else {"sentences": args.sentences}
    )
    context = {"command": meta["command"], "git_commit": meta["git"]["commit"], "date": meta["date"]}
    context |= {"threads": torch.get_num_threads(), "platform": meta["env"].get("platform")} | shared
    out = [row | context for row in rows]
    previous = json.loads(args.out.read_text()) if args.out.exists() else []
    if isinstance(previous, list):  # other methods' (and shots') rows in the same file stay; these are replaced
        k = args.k if episodes else None
        replaced = {(args.method, e, k) for e in encoders}
        out = [r for r in previous if (r.get("method"), r.get("encoder"), r.get("k")) not in replaced] + out
    write_text_atomic(args.out, json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

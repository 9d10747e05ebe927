"""Time MFNER's meta-training under variants of its options, in one process, as ratios to the default.

Each variant meta-trains a fresh MFNER (seed 0) on the same first N Twitter-2017 training episodes
(the T17 -> T15 direction, ``--passes`` passes as a cell makes, no step floor); the variants take
turns, ``--repeats`` rounds,
and each keeps its fastest round (the least disturbed by whatever else the machine runs). The
ratio is default seconds / variant seconds from the same process, so load that slows every
variant alike cancels. ``--base`` sets the options the ratios divide by (default: MFNER's
defaults); ``token_cache=false`` there or in a variant turns off the encoder's tokenisation cache,
which is the code as it was before the cache (the cache leaves every result bit-identical).
Writes ``results/mfner-fit-speed.json`` (or ``--out``) with the command, git commit and environment. Usage:
    OMP_NUM_THREADS=1 python scripts/time_mfner.py --episodes 24 --repeats 3 --base token_cache=false \\
        --variant token_cache=true --variant profile=fast
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from bench.records import provenance, write_text_atomic
from fewshot_ner.datasets import load_domain
from fewshot_ner.episodes import Episode, cached_episodes
from fewshot_ner.method import RunContext, SourceTask
from mfner.method import MFNER


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


ENCODER_OPTIONS = ("token_cache",)  # set on the WordEncoder, not MFNER options


def mfner_options(options: dict[str, Any]) -> dict[str, Any]:
    """A variant's options without those set on the encoder."""
    return {k: v for k, v in options.items() if k not in ENCODER_OPTIONS}


def fit_seconds(domain: Any, episodes: list[Episode], options: dict[str, Any], passes: int) -> float:
    torch.manual_seed(0)
    method = MFNER(RunContext(seed=0, progress=False), passes=passes, min_steps=0, **mfner_options(options))
    for key in ENCODER_OPTIONS:
        if key in options:
            setattr(method.encoder, key, bool(options[key]))
    t0 = time.perf_counter()
    method.fit([SourceTask(domain, episodes)])
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=24, help="training episodes (6 optimizer steps per 24)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; each variant keeps its fastest")
    parser.add_argument("--passes", type=int, default=2, help="passes over the episodes (a cell makes 2 or more)")
    parser.add_argument("--base", default="", help="key=value[,key=value]: the options the ratios divide by")
    parser.add_argument("--variant", action="append", default=[], help="key=value[,key=value] MFNER options")
    parser.add_argument("--out", type=Path, default=Path("results/mfner-fit-speed.json"))
    args = parser.parse_args()
    t17 = load_domain("twitter2017")
    episodes = cached_episodes(t17, 1, 0, None, "train").materialize(t17, args.episodes)
    base = args.base or "default"
    variants = {base: parse_variant(args.base) if args.base else {}} | {v: parse_variant(v) for v in args.variant}
    for options in variants.values():
        MFNER.check_options(mfner_options(options))
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(args.repeats):
        for name, options in variants.items():
            times[name].append(fit_seconds(t17, episodes, options, args.passes))
            print(f"round {round_ + 1}: {name}: {times[name][-1]:.1f} s", flush=True)
    base_s = min(times[base])
    rows = {
        name: {"options": variants[name], "seconds": ts, "best_s": min(ts), "speedup": round(base_s / min(ts), 3)}
        for name, ts in times.items()
    }
    for name, row in rows.items():
        print(f"{name:40s} {row['best_s']:7.1f} s  {row['speedup']:.2f}x")
    meta = provenance(["python", "scripts/time_mfner.py", *sys.argv[1:]])
    summary = {"episodes": args.episodes, "passes": args.passes, "base": base, "variants": rows}
    write_text_atomic(args.out, json.dumps(meta | summary, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

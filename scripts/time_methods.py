"""Seconds of meta-training per source episode of MFNER and the meta-trained baselines, in one process.

A cell's cost is almost all meta-training (the Cost sections: fit is 85-99% of a cell's wall time),
and cells run on different hosts and beside different load, so their wall times compare poorly
across rows. Here every method (each with the options its table3 row runs: MFNER reads two views,
ProtoNet, WPZ and SpanNER the text view) meta-trains from scratch (seed 0) on the same first N
Twitter-2017 training episodes at K shots (the T17 -> T15 direction), one pass, no step floor; the
methods take turns for ``--repeats`` rounds and each keeps its fastest round. The ratio
method seconds / MFNER seconds comes from the same process, so load that slows every method alike
cancels. Writes ``results/meta-training-speed-k{K}.json`` (or ``--out``) with the command, git commit
and environment. Usage:
    OMP_NUM_THREADS=1 python scripts/time_methods.py --k 5 --episodes 8 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from bench.methods import METHODS
from bench.records import provenance, write_text_atomic
from fewshot_ner.datasets import Domain, load_domain
from fewshot_ner.episodes import Episode, cached_episodes
from fewshot_ner.method import RunContext, SourceTask

DEFAULT_METHODS = ("mfner", "protonet", "wpz", "spanner")


def fit_seconds(name: str, domain: Domain, episodes: list[Episode]) -> float:
    """Wall seconds of one method's ``fit`` on the episodes (one pass; building the method not counted)."""
    torch.manual_seed(0)
    method = METHODS.get(name)(RunContext(seed=0, progress=False), passes=1, min_steps=0)
    t0 = time.perf_counter()
    method.fit([SourceTask(domain, episodes)])
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=1, help="shots of the training episodes")
    parser.add_argument("--episodes", type=int, default=8, help="training episodes (one optimizer step per 4)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds; each method keeps its fastest")
    parser.add_argument("--method", action="append", help=f"registered method names (default: {DEFAULT_METHODS})")
    parser.add_argument("--out", type=Path, help="default: results/meta-training-speed-k{K}.json")
    args = parser.parse_args()
    names = args.method or list(DEFAULT_METHODS)
    unknown = [n for n in names if n not in METHODS]
    if unknown or "mfner" not in names:
        raise SystemExit(f"--method: unknown {unknown}" if unknown else "--method: mfner is the yardstick")
    t17 = load_domain("twitter2017")
    episodes = cached_episodes(t17, args.k, 0, None, "train").materialize(t17, args.episodes)
    times: dict[str, list[float]] = {n: [] for n in names}
    for round_ in range(args.repeats):
        for name in names:
            times[name].append(fit_seconds(name, t17, episodes))
            print(f"round {round_ + 1}: {name}: {times[name][-1]:.1f} s", flush=True)
    base = min(times["mfner"])
    rows = {
        n: {
            "seconds": [round(t, 2) for t in ts],
            "best_s": round(min(ts), 2),
            "s_per_episode": round(min(ts) / len(episodes), 3),
            "of_mfner": round(min(ts) / base, 3),
        }
        for n, ts in times.items()
    }
    for name, row in rows.items():
        print(
            f"{name:10s} {row['best_s']:7.1f} s  {row['s_per_episode']:6.2f} s/episode  {row['of_mfner']:.2f} of MFNER"
        )
    out = args.out or Path(f"results/meta-training-speed-k{args.k}.json")
    meta = provenance(["python", "scripts/time_methods.py", *sys.argv[1:]])
    write_text_atomic(out, json.dumps(meta | {"k": args.k, "episodes": len(episodes), "methods": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

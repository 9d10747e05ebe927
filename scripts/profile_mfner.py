"""Where an MFNER 1-shot cell's time goes, on one thread: tokenisation, encoder, CRF, optimizer, the rest.

Meta-trains the default MFNER on the first N Twitter-2017 training episodes (the T17 -> T15
direction) under cProfile and sums the cumulative time of the functions that stand for each part.
The parts overlap where one calls another (the encoder's backward is inside the step's backward),
so each share is of the whole fit, not a partition. ``--encoder``, ``--precision`` and ``--option
key=value`` set the run (``--option profile=fast``); ``--ops`` adds torch.profiler's operators by
their own time, after a warm-up fit (where a bf16 fit waits: dtype casts, attention backward). Usage:
    OMP_NUM_THREADS=1 python scripts/profile_mfner.py --episodes 24
    OMP_NUM_THREADS=1 python scripts/profile_mfner.py --episodes 16 --option profile=fast --precision bf16 --ops
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time

import torch

from bench.allocator import keep_freed_memory
from fewshot_ner.datasets import load_domain
from fewshot_ner.episodes import cached_episodes
from fewshot_ner.method import RunContext, SourceTask
from mfner.method import MFNER

PARTS = {
    "tokenisation (WordEncoder.tokenize)": ("encoder.py", "tokenize"),
    "encoder forward (WordEncoder.forward)": ("encoder.py", "forward"),
    "backward (Tensor.backward, all of it)": ("_tensor.py", "backward"),
    "CRF log-likelihood (crf.nll)": ("crf.py", "nll"),
    "optimizer step (Adam.step)": ("adam.py", "step"),
    "gradient clipping": ("clip_grad.py", "clip_grad_value_"),
    "L-TapNet head (LTapNet.forward)": ("tapnet.py", "forward"),
    "label-name vectors (label_vectors)": ("model.py", "label_vectors"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=24, help="training episodes (6 optimizer steps per 24)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="an MFNER option")
    parser.add_argument("--ops", action="store_true", help="torch.profiler's top operators by self time")
    args = parser.parse_args()
    keep_freed_memory()  # the allocator every cell of the harness runs with (bench.cell.run_cell)
    torch.set_num_threads(args.threads)
    t17 = load_domain("twitter2017")
    episodes = cached_episodes(t17, 1, 0, None, "train").materialize(t17, args.episodes)
    options = {}
    for text in args.option:
        key, _, value = text.partition("=")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value

    def fresh() -> MFNER:
        torch.manual_seed(0)
        ctx = RunContext(seed=0, progress=False, encoder=args.encoder, precision=args.precision)
        return MFNER(ctx, passes=1, min_steps=0, **options)

    if args.ops:
        fresh().fit([SourceTask(t17, episodes)])  # warm-up: first-call allocations and kernel choices
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            fresh().fit([SourceTask(t17, episodes)])
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    method = fresh()
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    method.fit([SourceTask(t17, episodes)])
    profiler.disable()
    total = time.perf_counter() - t0
    stats = pstats.Stats(profiler).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    print(f"fit on {args.episodes} episodes, {torch.get_num_threads()} thread(s): {total:.1f} s")
    for part, (file, name) in PARTS.items():
        cum = max((v[3] for (f, _, n), v in stats.items() if f.endswith(file) and n == name), default=0.0)
        print(f"  {part:42s} {cum:7.2f} s  {100 * cum / total:5.1f}%")


if __name__ == "__main__":
    main()

"""Where an MFNER 1-shot cell's time goes, on one thread: tokenisation, encoder, CRF, optimizer, the rest.

Meta-trains the default MFNER on the first N Twitter-2017 training episodes (the T17 -> T15
direction) under cProfile and sums the cumulative time of the functions that stand for each part.
The parts overlap where one calls another (the encoder's backward is inside the step's backward),
so each share is of the whole fit, not a partition. Usage:
    OMP_NUM_THREADS=1 python scripts/profile_mfner.py --episodes 24
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import torch

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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t17 = load_domain("twitter2017")
    episodes = cached_episodes(t17, 1, 0, None, "train").materialize(t17, args.episodes)
    method = MFNER(RunContext(seed=0, progress=False), passes=1, min_steps=0)
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

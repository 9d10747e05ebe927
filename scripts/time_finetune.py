"""Seconds per test episode of BERT+CRF's per-episode fine-tuning, by which encoder layers the steps update.

All variants run in one process on the same Twitter-2015 test episodes, so their ratios hold even
when other work shares the machine; the absolute seconds don't. Usage:
    OMP_NUM_THREADS=1 python scripts/time_finetune.py --episodes 3
"""

from __future__ import annotations

import argparse
import time

from baselines.bert_crf import BertCRF
from fewshot_ner.datasets import load_domain
from fewshot_ner.episodes import cached_episodes
from fewshot_ner.method import RunContext

VARIANTS = {
    "all layers (the paper)": {"train_layers": None},
    "top 1 layer": {"train_layers": 1},
    "head and CRF only (default)": {"train_layers": 0},
    "no steps": {"steps": 0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--k", type=int, default=1)
    args = parser.parse_args()
    domain = load_domain("twitter2015")
    episodes = cached_episodes(domain, args.k, 0, 200, "test").materialize(domain, args.episodes)
    seconds = {}
    for name, options in VARIANTS.items():
        method = BertCRF(RunContext(progress=False), **options)
        method.prepare(domain)
        t0 = time.perf_counter()
        for episode in episodes:
            method.predict(episode.for_prediction())
        seconds[name] = (time.perf_counter() - t0) / len(episodes)
    base = seconds["all layers (the paper)"]
    for name, s in seconds.items():
        print(f"{name:30s} {s:7.2f} s/episode  {base / s:6.1f}x faster than all layers")


if __name__ == "__main__":
    main()

"""Time MFNER fine-tuning steps with the dense and the sparse word-embedding gradient.

Both paths run in one process on the same T17 1-shot source episodes (twice each, alternating),
then the embedding weights after the last step are compared. Usage:
    python scripts/probe_sparse_embedding.py [n_episodes]
"""

from __future__ import annotations

import sys
import time

import torch

from fewshot_ner.datasets import load_domain
from fewshot_ner.episodes import cached_episodes
from fewshot_ner.method import RunContext
from fewshot_ner.trainer import densify_grads
from mfner.method import MFNER


def fit_seconds(domain, episodes, sparse: bool) -> tuple[float, torch.Tensor]:
    torch.manual_seed(0)
    method = MFNER(RunContext(seed=0, progress=False), sparse_embedding_grad=sparse)
    opt = torch.optim.Adam(method._param_groups())
    params = [p for g in opt.param_groups for p in g["params"]]
    method.model.features.add_domain(domain)
    method.model.train()
    t0 = time.perf_counter()
    for i, episode in enumerate(episodes):
        (method.model.loss(episode) / 4).backward()
        if (i + 1) % 4 == 0:
            densify_grads(params)
            torch.nn.utils.clip_grad_value_(params, 5.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0, method.encoder.model.get_input_embeddings().weight.detach().clone()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 24
    domain = load_domain("twitter2017")
    episodes = cached_episodes(domain, 1, 0, None, "train").materialize(domain, n)
    times: dict[bool, list[float]] = {False: [], True: []}
    weights = {}
    for _ in range(2):
        for sparse in (False, True):
            seconds, weights[sparse] = fit_seconds(domain, episodes, sparse)
            times[sparse].append(seconds)
    dense, sparse = min(times[False]), min(times[True])
    print(
        f"{n} episodes, {torch.get_num_threads()} thread(s): dense {dense:.1f} s, sparse {sparse:.1f} s ({dense / sparse:.2f}x)"
    )
    print(f"max |w_dense - w_sparse| after {n // 4} steps: {float((weights[False] - weights[True]).abs().max()):.2e}")


if __name__ == "__main__":
    main()

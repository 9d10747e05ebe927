"""The one episodic trainer (the paper's Algorithm 1 loop), shared by MFNER and the meta-trained baselines.

A method brings its loss (one source episode in, a scalar out) and its parameter groups with
their learning rates; the trainer owns the loop: whole passes over the source episodes in an
order shuffled per pass from a named seed, ``episodes_per_step`` episodes per Adam step (the
loss of each divided by it), gradients clipped by value, more passes while under
``min_steps`` optimizer steps. No model selection on test data: the loop runs its planned steps.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from fewshot_ner.episodes import Episode
from fewshot_ner.registry import check_choice

SCHEDULES = ("constant", "linear")
WARMUP_SHARE = 0.1  # "linear": the first 10% of the steps warm up from 0, the rest decay linearly to 0


@dataclass(frozen=True)
class TrainerConfig:
    passes: int = 2
    min_steps: int = 200
    episodes_per_step: int = 4
    grad_clip_value: float = 5.0
    schedule: str = "constant"  # constant | linear (warm-up, then linear decay, as the L-TapNet+CDT reference)

    def __post_init__(self) -> None:
        check_choice("schedule", self.schedule, SCHEDULES)


def lr_factor(step: int, total: int, schedule: str) -> float:
    """The learning rate's multiplier at optimizer step ``step`` (0-based) of ``total``."""
    if schedule == "constant":
        return 1.0
    warmup = max(1, round(WARMUP_SHARE * total))
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / (total - warmup + 1))


def plan_passes(n_episodes: int, episodes_per_step: int, passes: int, min_steps: int) -> int:
    """Whole passes over the source episodes: ``passes``, or more until ``min_steps`` optimizer steps.

    A K-shot source pool holds fewer, larger episodes as K grows (Twitter-2015: 824 one-shot, 167
    five-shot), so a fixed number of passes alone gives 5-shot training a fifth of the steps.
    """
    if n_episodes < 1 or episodes_per_step < 1 or passes < 1:
        raise ValueError(
            f"need episodes, episodes_per_step and passes >= 1, got {n_episodes}, {episodes_per_step}, {passes}"
        )
    steps_per_pass = math.ceil(n_episodes / episodes_per_step)
    return max(passes, math.ceil(min_steps / steps_per_pass))


def densify_grads(params: Sequence[torch.nn.Parameter]) -> None:
    """Sparse gradients (a sparse embedding's) become dense, for clipping and Adam."""
    for p in params:
        if p.grad is not None and p.grad.is_sparse:
            p.grad = p.grad.coalesce().to_dense()


def train_episodic(
    loss_fn: Callable[[Episode], Tensor],
    episodes: Sequence[Episode],
    param_groups: list[dict[str, Any]],
    cfg: TrainerConfig,
    shuffle_seed: str,
    progress: bool = False,
    before_step: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run the loop; return what it measured (episodes, passes, steps, mean loss per pass, seconds).

    ``param_groups`` are Adam's (``{"params": [...], "lr": ...}``); ``shuffle_seed`` names the
    stream of episode orders (``random.Random(shuffle_seed)``), so two methods with one seed see
    their episodes in orders of their own. ``before_step`` runs after the step's last backward,
    before clipping (a method that shares part of its graph across a step's episodes ends it there).
    """
    if not episodes:
        raise ValueError("no source episodes to meta-train on")
    t0 = time.perf_counter()
    rng = random.Random(shuffle_seed)
    opt = torch.optim.Adam(param_groups)
    params = [p for g in opt.param_groups for p in g["params"]]
    step_every = cfg.episodes_per_step
    n_passes = plan_passes(len(episodes), step_every, cfg.passes, cfg.min_steps)
    total_steps = n_passes * math.ceil(len(episodes) / step_every)
    base_lrs = [g["lr"] for g in opt.param_groups]
    pass_losses = []
    steps = 0
    for epoch in range(n_passes):
        order = list(episodes)
        rng.shuffle(order)
        total = 0.0
        bar = tqdm(order, desc=f"meta-train pass {epoch + 1}/{n_passes}", disable=not progress, unit="ep", leave=False)
        for i, episode in enumerate(bar):
            loss = loss_fn(episode)
            (loss / step_every).backward()
            total += float(loss.detach())
            if (i + 1) % step_every == 0 or i + 1 == len(order):
                if before_step is not None:
                    before_step()
                densify_grads(params)
                torch.nn.utils.clip_grad_value_(params, cfg.grad_clip_value)
                if cfg.schedule != "constant":
                    for group, lr in zip(opt.param_groups, base_lrs, strict=True):
                        group["lr"] = lr * lr_factor(steps, total_steps, cfg.schedule)
                opt.step()
                opt.zero_grad(set_to_none=True)
                steps += 1
            if i % 20 == 0:
                bar.set_postfix(loss=f"{total / (i + 1):.3f}")
        pass_losses.append(total / len(order))
    return {
        "train_episodes": len(episodes),
        "passes": n_passes,
        "optimizer_steps": steps,
        "mean_query_nll_per_pass": [round(x, 4) for x in pass_losses],
        "fit_s": round(time.perf_counter() - t0, 1),
    }


def snapshot(module: torch.nn.Module) -> dict[str, Tensor]:
    """A copy of every parameter and buffer, for methods that fine-tune per test episode."""
    return {k: v.detach().clone() for k, v in module.state_dict(keep_vars=True).items()}


@torch.no_grad()
def restore(module: torch.nn.Module, saved: dict[str, Tensor]) -> None:
    """Put back what ``snapshot`` took, bit for bit, in place (optimizers built later see the same tensors)."""
    state = module.state_dict(keep_vars=True)
    for k, v in saved.items():
        state[k].copy_(v)

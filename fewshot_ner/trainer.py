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
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from fewshot_ner.episodes import Episode
from fewshot_ner.paths import atomic_path
from fewshot_ner.registry import check_choice

SCHEDULES = ("constant", "linear")
CHECKPOINT_EVERY_S = 300.0  # a loop with a checkpoint file saves to it at most this often
CHECKPOINT_VERSION = 1
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
    checkpoint: Path | None = None,
    save_every_s: float | None = None,
    start_step: Callable[[Sequence[Episode]], None] | None = None,
) -> dict[str, Any]:
    """Run the loop; return what it measured (episodes, passes, steps, mean loss per pass, seconds).

    ``param_groups`` are Adam's (``{"params": [...], "lr": ...}``); ``shuffle_seed`` names the
    stream of episode orders (``random.Random(shuffle_seed)``), so two methods with one seed see
    their episodes in orders of their own. ``before_step`` runs after the step's last backward,
    before clipping (a method that shares part of its graph across a step's episodes ends it there);
    ``start_step`` runs with the step's episodes before the first of them (where such a method begins it).

    ``checkpoint``: a file the loop saves to after an optimizer step once ``save_every_s`` seconds (default
    ``CHECKPOINT_EVERY_S``) have passed since its last save, and once more at the end; a loop that finds it
    resumes there (the trained parameters, Adam's state, the random states and the place in the pass), so a
    run cut short goes on to the same weights, bit for bit, as one never stopped. The caller removes the file
    when its work is safe.
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
    pass_losses: list[float] = []
    steps = 0
    first_epoch, first_i, total = 0, 0, 0.0
    # (source episodes, planned steps): a checkpoint of another loop is refused
    saver = LoopCheckpoint(checkpoint, params, opt, (len(episodes), total_steps), save_every_s) if checkpoint else None
    resumed = saver.resume() if saver else None
    if resumed is not None:
        first_epoch, first_i, steps, total = resumed["epoch"], resumed["next_i"], resumed["steps"], resumed["total"]
        pass_losses = list(resumed["pass_losses"])
        rng.setstate(resumed["rng_before_pass"])

    def save(epoch: int, next_i: int, total: float, rng_before_pass: Any) -> None:
        """The loop's place (the pass, its next episode, the order's random state before the pass) and the rest."""
        assert saver is not None
        state = {"epoch": epoch, "next_i": next_i, "steps": steps, "total": total, "pass_losses": pass_losses}
        saver.save(state | {"rng_before_pass": rng_before_pass})

    for epoch in range(first_epoch, n_passes):
        rng_before_pass = rng.getstate()
        order = list(episodes)
        rng.shuffle(order)
        if epoch != first_epoch or resumed is None:
            total = 0.0
        start = first_i if epoch == first_epoch else 0
        bar = tqdm(
            order,
            desc=f"meta-train pass {epoch + 1}/{n_passes}",
            disable=not progress,
            unit="ep",
            leave=False,
            initial=start,
        )
        for i, episode in enumerate(order[start:], start):
            if start_step is not None and i % step_every == 0:  # (a resumed pass starts at a step's first)
                start_step(order[i : i + step_every])
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
                if saver is not None and saver.due():
                    save(epoch, i + 1, total, rng_before_pass)
            bar.update()
            if i % 20 == 0:
                bar.set_postfix(loss=f"{total / (i + 1):.3f}")
        bar.close()
        pass_losses.append(total / len(order))
    if saver is not None and saver.whole_fit_worth_saving():  # the whole fit, should the rest fail
        save(n_passes, 0, 0.0, rng.getstate())
    report = {
        "train_episodes": len(episodes),
        "passes": n_passes,
        "optimizer_steps": steps,
        "mean_query_nll_per_pass": [round(x, 4) for x in pass_losses],
        "fit_s": round(time.perf_counter() - t0, 1),
    }
    if saver is not None:
        report |= saver.resumed_report()
    return report


class LoopCheckpoint:
    """Save and resume for a training loop: after an optimizer step once ``every_s`` seconds (default
    ``CHECKPOINT_EVERY_S``) have passed since the last save, the trained parameters, Adam's state, the global
    random state and the loop's own ``state`` (its place, its random streams: what it needs to go on) are written
    to ``path``; ``resume`` puts them back. ``shape`` names the loop (a checkpoint of another is refused). The
    caller removes the file when its work is safe. The episodic trainer and BERT+CRF's supervised passes use it.
    """

    def __init__(
        self,
        path: Path,
        params: list[torch.nn.Parameter],
        opt: torch.optim.Optimizer,
        shape: tuple[int, int],
        every_s: float | None = None,
    ) -> None:
        self.path, self.params, self.opt, self.shape = path, params, opt, shape
        self.every_s = CHECKPOINT_EVERY_S if every_s is None else every_s
        self.t0, self.cpu0 = time.perf_counter(), time.process_time()
        self.last_save = self.t0
        # training seconds of earlier processes, up to their last save (None: a checkpoint saved before they were kept)
        self.earlier: dict[str, float] | None = {"wall_s": 0.0, "cpu_s": 0.0}
        self.resumed_at: int | None = None

    def resume(self) -> dict | None:
        """The saved ``state`` (the parameters, Adam and the global random state put back), or None: no file, or one
        that can't be read or belongs to another loop (a warning says so; it is removed, the loop starts afresh)."""
        saved = _load_checkpoint(self.path, self.params, self.opt, self.shape)
        if saved is not None:
            self.earlier = saved.get("elapsed")
            self.resumed_at = int(saved["steps"])
        return saved

    def due(self) -> bool:
        """Whether ``every_s`` seconds have passed since the last save (or the loop's start)."""
        return time.perf_counter() - self.last_save >= self.every_s

    def whole_fit_worth_saving(self) -> bool:
        """Whether the loop ran long enough (``every_s``) for its end to be saved, so a process that dies before
        its work is safe trains nothing again."""
        return time.perf_counter() - self.t0 >= self.every_s

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` (it holds ``steps``, the optimizer steps done) with the loop's tensors and seconds."""
        _save_checkpoint(self.path, self.params, self.opt, self.shape, state | {"elapsed": self._elapsed()})
        self.last_save = time.perf_counter()

    def resumed_report(self) -> dict[str, Any]:
        """For a fit report: the step it resumed at and the earlier processes' training seconds; {} if fresh."""
        if self.resumed_at is None:
            return {}
        report: dict[str, Any] = {"resumed_at_step": self.resumed_at}
        if self.earlier is not None:
            report["earlier_train_s"] = round(self.earlier["wall_s"], 1)
            report["earlier_train_cpu_s"] = round(self.earlier["cpu_s"], 1)
        return report

    def _elapsed(self) -> dict[str, float] | None:
        """Training seconds so far, wall and CPU, this process's added to the earlier ones' (None if unknown)."""
        if self.earlier is None:
            return None
        return {
            "wall_s": self.earlier["wall_s"] + time.perf_counter() - self.t0,
            "cpu_s": self.earlier["cpu_s"] + time.process_time() - self.cpu0,
        }


def _save_checkpoint(
    path: Path, params: list[torch.nn.Parameter], opt: torch.optim.Optimizer, shape: tuple[int, int], state: dict
) -> None:
    """The loop's whole state after an optimizer step, written atomically (a reader sees all of it or none)."""
    saved = state | {
        "version": CHECKPOINT_VERSION,
        "shape": list(shape),  # (source episodes, planned steps)
        "params": [p.detach().clone() for p in params],
        "optimizer": opt.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }
    with atomic_path(path) as tmp:
        torch.save(saved, tmp)


def _load_checkpoint(
    path: Path, params: list[torch.nn.Parameter], opt: torch.optim.Optimizer, shape: tuple[int, int]
) -> dict | None:
    """Put a saved loop's state back (parameters, Adam, random states) and return its place; None if there is no
    file, or one that can't be read or belongs to another loop (a warning says so, the file is removed and the
    loop starts afresh: a checkpoint is a cache, never a reason for a cell to fail)."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, weights_only=True)
        if saved.get("version") != CHECKPOINT_VERSION or tuple(saved["shape"]) != shape:
            raise ValueError(f"of another training loop ({saved.get('shape')} against {list(shape)})")
        if [tuple(p.shape) for p in saved["params"]] != [tuple(p.shape) for p in params]:
            raise ValueError("of another model (its parameters differ)")
    except Exception as err:  # noqa: BLE001 - whatever is wrong with the file, the loop can start afresh
        warnings.warn(f"{path}: checkpoint {err}; ignored and removed, training starts afresh", stacklevel=2)
        path.unlink(missing_ok=True)
        return None
    with torch.no_grad():
        for p, v in zip(params, saved["params"], strict=True):
            p.copy_(v)
    opt.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["torch_rng"])
    if saved["cuda_rng"]:
        torch.cuda.set_rng_state_all(saved["cuda_rng"])
    return saved


def snapshot(module: torch.nn.Module) -> dict[str, Tensor]:
    """A copy of every parameter and buffer, for methods that fine-tune per test episode."""
    return {k: v.detach().clone() for k, v in module.state_dict(keep_vars=True).items()}


@torch.no_grad()
def restore(module: torch.nn.Module, saved: dict[str, Tensor]) -> None:
    """Put back what ``snapshot`` took, bit for bit, in place (optimizers built later see the same tensors)."""
    state = module.state_dict(keep_vars=True)
    for k, v in saved.items():
        state[k].copy_(v)

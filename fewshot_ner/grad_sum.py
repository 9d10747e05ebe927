"""A trained weight's bfloat16 gradient parts summed into its float32 ``.grad``, as autograd sums them.

In ``bf16`` every encoder call hands back each trained linear weight's gradient in bfloat16. Autograd
casts each part to float32 (a new float32 tensor per call), sums a backward pass's parts in the order
they arrive (``g1 + g2 + ...``), then adds that sum to ``.grad`` (``.grad + (g1 + g2)``): three passes
over float32 memory per part, and at mpnet-base's 85M trained weights a step's 9 calls make that the
largest single cost of a base-size MFNER step. ``GradSum`` keeps the bfloat16 parts as they arrive and,
once the backward pass ends, writes ``.grad`` in one pass over them: the same additions in the same
order, so the same float32 values to the last bit (bfloat16 to float32 is exact), with a third of
the memory traffic.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

try:
    from numba import njit
except ImportError:  # pragma: no cover - exercised only where numba is missing
    njit = None


def _sum_parts(out: np.ndarray, has_grad: bool, parts: tuple[np.ndarray, ...]) -> None:
    """``out = out + (p0 + p1 + ...)`` (or ``out = p0 + p1 + ...``), elementwise, in float32.

    ``parts`` are bfloat16 bit patterns as int16 arrays; a bfloat16 is the upper half of the float32
    of the same value, so widening is a shift. The additions are grouped and ordered as autograd's.
    """
    for i in range(out.size):
        acc = np.uint32(np.uint32(np.uint16(parts[0][i])) << np.uint32(16)).view(np.float32)
        for j in range(1, len(parts)):
            acc += np.uint32(np.uint32(np.uint16(parts[j][i])) << np.uint32(16)).view(np.float32)
        out[i] = out[i] + acc if has_grad else acc


_sum_parts_compiled = njit(cache=True)(_sum_parts) if njit is not None else None


def accumulate(param: nn.Parameter, parts: list[Tensor]) -> None:
    """Add one backward pass's bfloat16 gradient parts of ``param`` to its float32 ``.grad``, autograd's way.

    The compiled loop where numba is present and the tensors are plain contiguous ones; otherwise torch's
    own casts and additions in the same order (the same values, more memory traffic).
    """
    grad = param.grad
    fast = (
        _sum_parts_compiled is not None
        and param.device.type == "cpu"
        and all(p.dtype == torch.bfloat16 and p.is_contiguous() and p.shape == param.shape for p in parts)
        and (grad is None or (grad.dtype == torch.float32 and grad.is_contiguous() and not grad.is_sparse))
    )
    if fast:
        out = grad if grad is not None else torch.empty(param.shape, dtype=torch.float32)
        arrays = tuple(p.view(torch.int16).reshape(-1).numpy() for p in parts)
        _sum_parts_compiled(out.view(-1).numpy(), grad is not None, arrays)
        if grad is None:
            param.grad = out
        return
    total = parts[0].to(torch.float32)
    for part in parts[1:]:
        total = total + part.to(torch.float32)
    if grad is None:
        param.grad = total
    else:
        grad.add_(total)


class GradSum:
    """Collects the bfloat16 gradient parts of a backward pass per parameter and writes ``.grad`` at its end.

    ``add`` is called from inside a backward pass (``CastBack``); the pass's first call queues ``flush``
    with the autograd engine, which runs it when the pass has finished, before ``backward()`` returns.
    Parts left by a pass that failed before its end are dropped when the next pass begins, as autograd
    drops a failed pass's buffers. A parameter handled here gets its gradient only in ``.grad`` (so
    ``torch.autograd.grad`` cannot ask for it), and every part of it must come through here, or the
    order of the sums would change.
    """

    def __init__(self) -> None:
        self._parts: dict[int, tuple[nn.Parameter, list[Tensor]]] = {}
        self._task = -1  # the backward pass the parts belong to (autograd's graph task id)

    def add(self, param: nn.Parameter, part: Tensor) -> None:
        task = torch._C._current_graph_task_id()
        if task != self._task:
            self._parts, self._task = {}, task
            torch.autograd.Variable._execution_engine.queue_callback(self.flush)  # type: ignore[attr-defined]
        self._parts.setdefault(id(param), (param, []))[1].append(part)

    def flush(self) -> None:
        parts, self._parts, self._task = self._parts, {}, -1
        with torch.no_grad():
            for param, grads in parts.values():
                accumulate(param, grads)

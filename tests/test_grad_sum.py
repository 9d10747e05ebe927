"""GradSum: a backward pass's bfloat16 gradient parts summed into float32 ``.grad`` as autograd sums them."""

import pytest
import torch

from fewshot_ner import grad_sum
from fewshot_ner.encoder import CastBack
from fewshot_ner.grad_sum import GradSum, accumulate


def _autograds_sum(prev: torch.Tensor | None, parts: list[torch.Tensor]) -> torch.Tensor:
    """What autograd computes: each part cast to float32, summed in arrival order, then added to ``.grad``."""
    total = parts[0].to(torch.float32)
    for part in parts[1:]:
        total = total + part.to(torch.float32)
    return total if prev is None else prev + total


@pytest.mark.parametrize("n_parts", [1, 2, 3])
@pytest.mark.parametrize("has_grad", [False, True])
@pytest.mark.parametrize("compiled", [True, False])
def test_the_sum_equals_autograds_to_the_last_bit(n_parts, has_grad, compiled, monkeypatch):
    if not compiled:
        monkeypatch.setattr(grad_sum, "_sum_parts_compiled", None)
    elif grad_sum._sum_parts_compiled is None:
        pytest.skip("numba is not installed")
    gen = torch.Generator().manual_seed(n_parts)
    param = torch.nn.Parameter(torch.randn(37, 29, generator=gen))
    # parts over many magnitudes, so that the order of the additions shows in the last bits
    parts = [(torch.randn(37, 29, generator=gen) * 10.0 ** (4 * i - 4)).bfloat16() for i in range(n_parts)]
    prev = torch.randn(37, 29, generator=gen) if has_grad else None
    param.grad = prev.clone() if prev is not None else None
    accumulate(param, parts)
    want = _autograds_sum(prev, parts)
    assert param.grad.dtype == torch.float32 and torch.equal(param.grad, want)
    # the grouping is what the test can see: adding the parts to .grad one by one, or the last two first
    if has_grad and n_parts > 1:
        one_by_one = prev.clone()
        for part in parts:
            one_by_one = one_by_one + part.to(torch.float32)
        assert not torch.equal(one_by_one, want)
    if not has_grad and n_parts == 3:
        last_two_first = parts[0].float() + (parts[1].float() + parts[2].float())
        assert not torch.equal(last_two_first, want)


def test_a_part_that_is_not_contiguous_takes_torchs_path_to_the_same_sum():
    gen = torch.Generator().manual_seed(0)
    param = torch.nn.Parameter(torch.randn(8, 6, generator=gen))
    parts = [torch.randn(6, 8, generator=gen).bfloat16().t(), torch.randn(8, 6, generator=gen).bfloat16()]
    param.grad = torch.randn(8, 6, generator=gen)
    want = _autograds_sum(param.grad.clone(), parts)
    accumulate(param, parts)
    assert torch.equal(param.grad, want)


class _FailsInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("this backward pass fails")


def test_a_backward_pass_through_castback_writes_grad_once_it_ends_and_a_failed_pass_leaves_nothing():
    gen = torch.Generator().manual_seed(3)
    param = torch.nn.Parameter(torch.randn(5, 4, generator=gen))
    copy = param.detach().bfloat16()
    x = torch.randn(3, 4, generator=gen).bfloat16()
    sink = GradSum()

    def loss_of(calls: int) -> torch.Tensor:
        return sum((x @ CastBack.apply(param, copy, sink).t()).float().pow(2).sum() * (i + 1) for i in range(calls))

    # autograd's own sums, from the plain cast (CastBack without a sink), as the peer
    reference = torch.nn.Parameter(param.detach().clone())

    def reference_loss(calls: int) -> torch.Tensor:
        return sum((x @ CastBack.apply(reference, copy, None).t()).float().pow(2).sum() * (i + 1) for i in range(calls))

    gate = torch.ones((), requires_grad=True)
    failing = _FailsInBackward.apply(gate)  # made first, so its backward runs after CastBack's
    with pytest.raises(RuntimeError, match="this backward pass fails"):
        (loss_of(2) * failing).backward()
    assert param.grad is None  # the failed pass wrote nothing
    loss_of(3).backward()
    loss_of(1).backward()
    reference_loss(3).backward()
    reference_loss(1).backward()
    assert torch.equal(param.grad, reference.grad)  # the failed pass's parts were dropped, not added

"""``nn.BatchNorm2d``'s training step in three parts, for layers that keep BN's input ``x`` and
recompute its output in the backward (CPU, plain ``nn.BatchNorm2d`` only; other norms take the
general path in ``lean_autograd``):

- ``batch_norm_forward``: ``bn(x)`` as ``nn.BatchNorm2d.forward`` computes it (same kernel, same
  running-statistics update) and the batch statistics ``(mean, invstd)`` its backward uses;
- ``batch_norm_output``: the same ``y`` again from ``x`` and those statistics, bit for bit, without
  a second statistics pass: PyTorch's CPU kernel computes ``y = x * alpha + beta`` with
  ``alpha = invstd * weight``, ``beta = bias - mean * alpha`` in both modes, taking ``invstd``
  from the batch in training and ``1 / sqrt(running_var + eps)`` in eval. An eval-mode call with
  ``running_var + eps == 1`` and ``weight = invstd * weight`` gets the same ``alpha`` and ``beta``,
  so the same ``y``, for the price of one elementwise pass. Where the running PyTorch does not
  behave so (checked once per dtype) the training-mode kernel runs again instead;
- ``batch_norm_backward``: ``native_batch_norm_backward``, what autograd calls.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from .time import SeqToANN

_NEIGHBOURS = 4  # floats tried on each side of the estimated running_var


def plain_batch_norm(norm: nn.Module, x: torch.Tensor) -> nn.BatchNorm2d | None:
    """The ``nn.BatchNorm2d`` inside a time-merged norm when these parts apply to it, else None."""
    bn = norm.module if isinstance(norm, SeqToANN) else None
    if type(bn) is nn.BatchNorm2d and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        return bn
    return None


def batch_norm_forward(bn: nn.BatchNorm2d, x: torch.Tensor):
    """``(bn(x), (mean, invstd, batch_stats))``, with ``bn``'s buffers updated as its forward does."""
    momentum = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:
            momentum = 1.0 / float(bn.num_batches_tracked)
    batch_stats = bn.training or (bn.running_mean is None and bn.running_var is None)
    keep = not bn.training or bn.track_running_stats
    y, mean, invstd = torch.ops.aten.native_batch_norm(
        x, bn.weight, bn.bias, bn.running_mean if keep else None, bn.running_var if keep else None,
        batch_stats, momentum, bn.eps)
    return y, (mean, invstd, batch_stats)


@functools.lru_cache(maxsize=None)
def unit_running_var(eps: float, dtype: torch.dtype) -> float | None:
    """A ``running_var`` with ``running_var + eps`` exactly 1 in ``dtype`` (so ``1/sqrt`` is 1), or None."""
    eps_t = torch.tensor(eps, dtype=dtype)
    v = torch.tensor(1.0 - eps, dtype=dtype)
    for toward in (-float("inf"), float("inf")):
        candidate = v
        for _ in range(_NEIGHBOURS + 1):
            if float(candidate + eps_t) == 1.0:
                return float(candidate)
            candidate = torch.nextafter(candidate, torch.tensor(toward, dtype=dtype))
    return None


def _eval_args(bn: nn.BatchNorm2d, invstd: torch.Tensor, dtype: torch.dtype):
    """``(weight, running_var)`` that make the eval kernel's ``alpha`` the training ``invstd * weight``."""
    v = unit_running_var(bn.eps, dtype)
    if v is None:
        return None
    alpha = invstd if bn.weight is None else invstd * bn.weight.detach()
    return alpha, torch.full_like(invstd, v)


@functools.lru_cache(maxsize=None)
def eval_kernel_reproduces_training(dtype: torch.dtype) -> bool:
    """Whether this PyTorch's CPU kernel behaves as the module docstring says (one probe per dtype)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, 7, 3, generator=gen, dtype=dtype) * 3 + 1
    bn = nn.BatchNorm2d(5, dtype=dtype)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(5, generator=gen, dtype=dtype) + 0.5)
        bn.bias.copy_(torch.randn(5, generator=gen, dtype=dtype))
        y, mean, invstd = torch.ops.aten.native_batch_norm(x, bn.weight, bn.bias, None, None, True, 0.0, bn.eps)
        args = _eval_args(bn, invstd, dtype)
        if args is None:
            return False
        again = torch.ops.aten.native_batch_norm(x, args[0], bn.bias, mean, args[1], False, 0.0, bn.eps)[0]
    return torch.equal(y, again)


def batch_norm_output(bn: nn.BatchNorm2d, x: torch.Tensor, stats: tuple) -> torch.Tensor:
    """``batch_norm_forward``'s ``y`` again, bit for bit (module docstring), buffers untouched."""
    mean, invstd, batch_stats = stats
    if not batch_stats:
        return torch.ops.aten.native_batch_norm(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, False,
                                                0.0, bn.eps)[0]
    args = _eval_args(bn, invstd, x.dtype) if eval_kernel_reproduces_training(x.dtype) else None
    if args is None:
        return torch.ops.aten.native_batch_norm(x, bn.weight, bn.bias, None, None, True, 0.0, bn.eps)[0]
    return torch.ops.aten.native_batch_norm(x, args[0], bn.bias, mean, args[1], False, 0.0, bn.eps)[0]


def batch_norm_backward(bn: nn.BatchNorm2d, grad_y: torch.Tensor, x: torch.Tensor, stats: tuple,
                        needs: tuple[bool, bool, bool]):
    """``(dL/dx, dL/dweight, dL/dbias)`` (None where not needed) as autograd computes them."""
    mean, invstd, batch_stats = stats
    needs = (needs[0], needs[1] and bn.weight is not None, needs[2] and bn.bias is not None)
    grads = torch.ops.aten.native_batch_norm_backward(grad_y, x, bn.weight, bn.running_mean, bn.running_var, mean,
                                                      invstd, batch_stats, bn.eps, list(needs))
    return tuple(g if need else None for g, need in zip(grads, needs))

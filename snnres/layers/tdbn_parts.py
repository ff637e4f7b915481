"""The authors' tdBN (``ThresholdScaledBatchNorm2d`` with ``eps_placement="outside"``) in the three
parts ``batch_norm_parts`` gives for ``nn.BatchNorm2d``: the forward keeping its statistics, the
output again from them (the layer's own ``outside_output``: bit for bit), and the backward.

With ``d = sqrt(var) + eps``, ``xhat = (x - mean) / d`` and ``y = k xhat + beta`` (``k = s lambda``,
``s = alpha V_th``; ``k = gamma`` for ``scale_param="gamma"``; ``k = s`` without affine), per
channel over ``N`` values, the batch statistics give::

    dL/dx = (k / d) g - k mean(g) / d - xhat k mean(g xhat) / sqrt(var)

(the usual BatchNorm backward, but ``d / sqrt(var) != 1`` since ``eps`` sits outside the root),
``dL/dbeta = sum(g)``, ``dL/dlambda = s sum(g xhat)``. With running statistics ``dL/dx = k g / d``.
"""

from __future__ import annotations

import torch
from torch import nn

from .norm import ThresholdScaledBatchNorm2d
from .time import SeqToANN

_DIMS = [0, 2, 3]


def outside_tdbn(norm: nn.Module, x: torch.Tensor) -> ThresholdScaledBatchNorm2d | None:
    """The authors' tdBN inside a time-merged norm when these parts apply to it, else None."""
    bn = norm.module if isinstance(norm, SeqToANN) else None
    if isinstance(bn, ThresholdScaledBatchNorm2d) and bn.eps_placement == "outside" and \
            x.dtype in (torch.float32, torch.float64):
        return bn
    return None


def tdbn_forward(bn: ThresholdScaledBatchNorm2d, x: torch.Tensor):
    """``(bn(x), (mean, std, batch_stats))``, buffers updated as the layer's forward does."""
    batch_stats = bn.training or bn.running_mean is None
    y, mean, std = bn.forward_with_statistics(x)
    return y, (mean, std, batch_stats)


def tdbn_output(bn: ThresholdScaledBatchNorm2d, x: torch.Tensor, stats: tuple) -> torch.Tensor:
    return bn.outside_output(x, stats[0], stats[1])


def _gain(bn: ThresholdScaledBatchNorm2d) -> tuple[float, torch.Tensor | float]:
    """``(a, k)``: ``dy/dweight = a xhat`` and ``dy/dxhat = k``."""
    a = bn.scale if (not bn.affine or bn.scale_param == "lambda") else 1.0
    k = a * bn.weight.detach()[None, :, None, None] if bn.affine else a
    return a, k


def tdbn_backward(bn: ThresholdScaledBatchNorm2d, grad_y: torch.Tensor, x: torch.Tensor, stats: tuple,
                  needs: tuple[bool, bool, bool]):
    """``(dL/dx, dL/dweight, dL/dbias)`` (None where not needed), the module docstring's formulas."""
    mean, std, batch_stats = stats
    need_x, need_w, need_b = needs[0], needs[1] and bn.affine, needs[2] and bn.affine
    a, k = _gain(bn)
    d = std + bn.eps
    xhat = (x - mean) / d
    sum_g = grad_y.sum(_DIMS, keepdim=True) if (need_b or (need_x and batch_stats)) else None
    sum_gx = (grad_y * xhat).sum(_DIMS, keepdim=True) if (need_w or (need_x and batch_stats)) else None
    grad_x = None
    if need_x:
        grad_x = grad_y * (k / d)
        if batch_stats:
            n = x.numel() // x.shape[1]
            grad_x = torch.addcmul(grad_x - k * sum_g / (n * d), xhat, k * sum_gx / (n * std), value=-1.0)
    grad_w = (sum_gx * a).flatten() if need_w else None
    grad_b = sum_g.flatten() if need_b else None
    return grad_x, grad_w, grad_b

"""BatchNorm folding: ``BN(W * x + b) = W' * x + b'`` for a conv or linear layer in eval mode.

With BN's running statistics ``mu``, ``var``, affine ``gamma``, ``beta`` and ``eps``::

    s  = gamma / sqrt(var + eps)           (one scale per output channel; a tdBN's own
                                            placement of eps and alpha * V_th: layers.eval_scale_shift)
    W' = W * s                             (s broadcast over the output-channel axis)
    b' = b * s + (beta - mu * s)          (b = 0 when the layer has no bias)

The arithmetic runs in float64 and is rounded once to float32.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import eval_scale_shift

BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def bn_scale_shift(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """``(s, beta - mu * s)`` in float64: BN in eval mode is ``x * s + shift`` per channel."""
    if not isinstance(bn, BATCHNORMS):
        raise TypeError(f"expected a BatchNorm1d/2d, got {type(bn).__name__}")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(
            f"{type(bn).__name__} has no running statistics (track_running_stats=False); "
            "the simulator needs eval-mode statistics to fold it"
        )
    return eval_scale_shift(bn)


def fold_batchnorm(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Folded ``(W', b')`` in float32 for a layer with weight ``[C_out, ...]`` followed by ``bn``."""
    scale, shift = bn_scale_shift(bn)
    if scale.numel() != weight.shape[0]:
        raise ValueError(
            f"BatchNorm has {scale.numel()} channels but the layer before it has {weight.shape[0]} outputs"
        )
    w = weight.detach().double() * scale.view(-1, *([1] * (weight.ndim - 1)))
    b = bias.detach().double() if bias is not None else torch.zeros_like(scale)
    return w.float(), (b * scale + shift).float()

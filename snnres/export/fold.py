"""BatchNorm folding: NIR has no normalisation node, so BN becomes part of the layer before it.

In eval mode ``BN(y) = y * s + b`` per channel with ``s = gamma / sqrt(var + eps)`` and
``b = beta - mean * s`` (a tdBN's own eps placement, ``alpha * V_th`` and parametrisation:
``layers.eval_scale_shift``). Folded into a convolution or affine map ``y = W x + c``, this is
``W' = W * s`` (per output channel) and ``c' = c * s + b``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..layers import eval_scale_shift
from .errors import ExportError


def batchnorm_scale_shift(bn: nn.modules.batchnorm._BatchNorm, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(scale, shift)`` of an eval-mode BatchNorm, in float64."""
    if bn.running_mean is None or bn.running_var is None:
        raise ExportError(
            f"layer {name!r} ({type(bn).__name__}) has no running statistics "
            "(track_running_stats=False), so it normalises with batch statistics and cannot be "
            "folded into a fixed affine map; retrain with track_running_stats=True"
        )
    var = bn.running_var.detach().double().cpu().numpy()
    if not np.all(var + bn.eps > 0):
        raise ExportError(f"layer {name!r} ({type(bn).__name__}): running_var + eps is not positive "
                          f"(min {float(np.min(var + bn.eps)):g}); its statistics are corrupt")
    scale, shift = eval_scale_shift(bn)
    return scale.cpu().numpy(), shift.cpu().numpy()


def fold_into(weight: np.ndarray, bias: np.ndarray, scale: np.ndarray, shift: np.ndarray):
    """``(W * s, c * s + b)`` with ``s`` broadcast over each output channel (axis 0 of ``W``)."""
    dtype = weight.dtype
    s = scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    new_weight = (weight.astype(np.float64) * s).astype(dtype)
    new_bias = (bias.astype(np.float64) * scale + shift).astype(dtype)
    return new_weight, new_bias


def to_numpy(t: torch.Tensor | None, like: np.ndarray | None = None, size: int | None = None) -> np.ndarray:
    """A parameter as a numpy array; ``None`` becomes zeros of ``size`` (a missing bias)."""
    if t is None:
        return np.zeros(size, dtype=like.dtype if like is not None else np.float32)
    return t.detach().cpu().numpy().copy()

"""BatchNorm folding (eval mode): the one fold the event simulator and the NIR exporter use.

In eval mode ``BN(y) = y * s + b`` per channel (``norm.eval_scale_shift``: for a plain BatchNorm
``s = gamma / sqrt(var + eps)``, ``b = beta - mean * s``; a tdBN's own placement of eps, its
``alpha * V_th`` and its parametrisation included). Folded into the convolution or affine map
``y = W x + c`` before it: ``W' = W * s`` (per output channel) and ``c' = c * s + b``, computed in
float64 and rounded once to the weight's dtype.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .norm import eval_scale_shift

BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _float64(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def batchnorm_scale_shift(bn: nn.Module, name: str = "", error: type[Exception] = ValueError
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(s, b)`` of an eval-mode BatchNorm in float64; ``error`` (naming the layer
    ``name``) if it has no running statistics."""
    if not isinstance(bn, BATCHNORMS):
        raise TypeError(f"expected a BatchNorm1d/2d, got {type(bn).__name__}")
    if bn.running_mean is None or bn.running_var is None:
        raise error(
            f"layer {name or '<model>'!r} ({type(bn).__name__}) has no running statistics "
            "(track_running_stats=False), so it normalises with batch statistics and cannot be "
            "folded into a fixed affine map; retrain with track_running_stats=True"
        )
    var = _float64(bn.running_var)
    if not np.all(var + bn.eps > 0):
        raise error(f"layer {name or '<model>'!r} ({type(bn).__name__}): running_var + eps is not positive "
                    f"(min {float(np.min(var + bn.eps)):g}); its statistics are corrupt")
    scale, shift = eval_scale_shift(bn)
    return _float64(scale), _float64(shift)


def fold_into(weight: np.ndarray, bias: np.ndarray | None, scale: np.ndarray, shift: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """``(W * s, c * s + b)`` with ``s`` per output channel (axis 0 of ``W``), in ``W``'s dtype; a
    missing bias ``c`` is 0."""
    if scale.size != weight.shape[0]:
        raise ValueError(f"BatchNorm has {scale.size} channels but the layer before it has {weight.shape[0]} outputs")
    s = scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    c = np.zeros_like(scale) if bias is None else bias.astype(np.float64)
    return (weight.astype(np.float64) * s).astype(weight.dtype), (c * scale + shift).astype(weight.dtype)


def fold_batchnorm(weight: torch.Tensor | np.ndarray, bias: torch.Tensor | np.ndarray | None, bn: nn.Module,
                   name: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Folded ``(W', c')`` (numpy, ``W``'s dtype) of a layer with ``weight [C_out, ...]`` followed by ``bn``."""
    as_array = lambda t: t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)  # noqa: E731
    return fold_into(as_array(weight), None if bias is None else as_array(bias), *batchnorm_scale_shift(bn, name))

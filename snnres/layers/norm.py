"""Threshold-dependent BatchNorm (tdBN, Zheng et al., AAAI 2021), as DS-ResNet uses it.

The authors' layer (langfengQ/MLF-DSResNet, ``tdBatchNorm``) normalises to ``alpha * V_th`` and
then applies a learnable scale ``lambda`` (initialised to 1) and shift ``beta``::

    y = alpha * V_th * (x - mean) / sigma * lambda + beta

Here the layer is an ordinary ``BatchNorm2d`` whose ``weight`` is the *effective* scale
``gamma = alpha * V_th * lambda`` (so eval-mode folding, export and the event simulator read it
like any BatchNorm), and whose gradient is multiplied by ``(alpha * V_th)^2`` in the backward
pass. With that, SGD with momentum and weight decay takes exactly the steps on ``gamma`` that it
takes on ``lambda`` in the authors' code (``d gamma = s * d lambda`` and ``dL/d lambda =
s * dL/d gamma`` with ``s = alpha * V_th``). The statistics span (T, B, H, W) per channel when the
layer is wrapped in ``SeqToANN``. (The authors divide by ``sqrt(var) + eps`` rather than
``sqrt(var + eps)``: the difference is below float precision for ordinary variances.)
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ThresholdScaledBatchNorm2d(nn.BatchNorm2d):
    """tdBN: ``BatchNorm2d`` with ``weight`` initialised to ``alpha * v_threshold`` and its gradient
    scaled by ``(alpha * v_threshold) ** 2`` (see the module docstring)."""

    def __init__(self, num_features: int, v_threshold: float, alpha: float = 1.0, affine: bool = True, **kwargs):
        self.scale = float(alpha) * float(v_threshold)
        if not self.scale > 0:
            raise ValueError(f"tdBN needs alpha * v_threshold > 0, got alpha={alpha}, v_threshold={v_threshold}")
        super().__init__(num_features, affine=affine, **kwargs)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.affine:
            nn.init.constant_(self.weight, self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.affine:  # no learnable scale: normalise straight to alpha * V_th
            return super().forward(x) * self.scale
        self._check_input_dim(x)
        g = self.scale * self.scale
        # value: weight; gradient: g * dL/dweight (the authors' parametrisation, see above)
        weight = self.weight * g + (self.weight * (1.0 - g)).detach()
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:  # as nn.BatchNorm2d.forward
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        use_batch_stats = self.training or self.running_mean is None
        keep_stats = not self.training or self.track_running_stats
        return F.batch_norm(x, self.running_mean if keep_stats else None, self.running_var if keep_stats else None,
                            weight, self.bias, use_batch_stats, momentum, self.eps)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale=alpha*V_th={self.scale:g}"

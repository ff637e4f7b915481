"""Threshold-dependent BatchNorm (tdBN, Zheng et al., AAAI 2021), as DS-ResNet uses it.

With ``s = alpha * V_th``, per channel over (T, B, H, W) when wrapped in ``SeqToANN``::

    eps_placement="outside":  y = s (x - mean) / (sqrt(var) + eps) * lambda + beta   (the authors')
    eps_placement="inside":   y = s (x - mean) / sqrt(var + eps) * lambda + beta     (PyTorch's BN)

The authors' layer (langfengQ/MLF-DSResNet, ``tdBatchNorm``) puts ``eps`` outside the root. The two
differ by ``eps / (2 sqrt(var))`` relative for large variances, ~42 float32 ulps at ``var = 1``
(``eps = 1e-5``), and by a factor ``sqrt(var + eps) / (sqrt(var) + eps)``, 3.3x, at ``var = 1e-6``:
a channel that barely varies is amplified far more by the authors' layer. "outside" is computed
in the authors' order of operations (so outputs equal theirs bit for bit), "inside" by
``F.batch_norm``.

``scale_param`` says what the learnable ``weight`` is:

- ``"lambda"``: the authors' ``lambda`` (initialised to 1; the effective scale is ``s * lambda``).
- ``"gamma"``: the effective scale ``gamma = s * lambda`` itself (initialised to ``s``), as
  SpikingJelly's ``ThresholdDependentBatchNorm2d`` stores it.

The forward pass is the same; the optimiser is not. SGD with weight decay takes the same steps in
effective scale either way only if the gradient on ``gamma`` is ``s^2`` times smaller; plain
``gamma`` gets ``1/s`` times the authors' steps (1.67x at ``s = 0.6``). Under Adam/AdamW the step is
about ``lr`` per parameter whatever its gradient's scale, so ``gamma`` moves ``lr`` per step,
``1/s`` times the authors' ``s * lr``, and no gradient scaling can undo that. ``lambda`` is the
authors' exactly under every optimiser and keeps the learnable scale at 1 like every other BN
weight, so it is the default; ``gamma`` reproduces SpikingJelly. ``eval_scale_shift`` gives the
per-channel affine map of any eval-mode BN (plain or tdBN), which BN folding uses.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

EPS_PLACEMENTS = ("outside", "inside")
SCALE_PARAMS = ("lambda", "gamma")


def _check_choice(name: str, value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r}: expected one of {list(choices)} ({what})")


class ThresholdScaledBatchNorm2d(nn.BatchNorm2d):
    """tdBN: normalise, scale by ``alpha * v_threshold``, then the learnable affine map. Defaults are
    the authors' (``eps_placement="outside"``, ``scale_param="lambda"``); SpikingJelly's layer is
    ``eps_placement="inside", scale_param="gamma"`` (module docstring)."""

    def __init__(self, num_features: int, v_threshold: float, alpha: float = 1.0, affine: bool = True,
                 eps_placement: str = "outside", scale_param: str = "lambda", **kwargs):
        self.scale = float(alpha) * float(v_threshold)
        if not self.scale > 0:
            raise ValueError(f"tdBN needs alpha * v_threshold > 0, got alpha={alpha}, v_threshold={v_threshold}")
        _check_choice("eps_placement", eps_placement, EPS_PLACEMENTS,
                      "outside: sqrt(var) + eps, the authors'; inside: sqrt(var + eps), PyTorch's")
        _check_choice("scale_param", scale_param, SCALE_PARAMS,
                      "lambda: weight is the authors' lambda; gamma: weight is alpha * V_th * lambda")
        self.eps_placement, self.scale_param = eps_placement, scale_param
        super().__init__(num_features, affine=affine, **kwargs)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.affine:
            nn.init.constant_(self.weight, 1.0 if self.scale_param == "lambda" else self.scale)

    def effective_weight(self) -> torch.Tensor | None:
        """``alpha * V_th * lambda`` (the scale after normalising), or None without affine."""
        if not self.affine:
            return None
        return self.weight * self.scale if self.scale_param == "lambda" else self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_statistics(x)[0]

    def _momentum_step(self) -> tuple[bool, float]:
        """``(batch statistics?, running-average factor)``, counting the batch as nn.BatchNorm2d does."""
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:  # as nn.BatchNorm2d.forward
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
        return self.training or self.running_mean is None, factor

    def forward_with_statistics(self, x: torch.Tensor):
        """``(y, mean, sqrt(var))``: the forward, and for ``eps_placement="outside"`` the statistics it
        normalised with (None otherwise), from which ``outside_output`` gives ``y`` again."""
        self._check_input_dim(x)
        batch_stats, factor = self._momentum_step()
        if self.eps_placement == "outside":
            return self._forward_outside(x, batch_stats, factor)
        keep = not self.training or self.track_running_stats
        y = F.batch_norm(x, self.running_mean if keep else None, self.running_var if keep else None,
                         self.effective_weight(), self.bias, batch_stats, factor, self.eps)
        return (y if self.affine else y * self.scale), None, None

    def _forward_outside(self, x: torch.Tensor, batch_stats: bool, factor: float):
        """The authors' ``tdBatchNorm.forward``, operation for operation (in float32 for half inputs,
        as ``F.batch_norm`` runs under autocast)."""
        if x.dtype in (torch.float16, torch.bfloat16):
            with torch.autocast(x.device.type, enabled=False):
                y, mean, std = self._forward_outside(x.float(), batch_stats, factor)
                return y.to(x.dtype), mean, std
        if batch_stats:
            mean = x.mean([0, 2, 3], keepdim=True)
            var = x.var([0, 2, 3], keepdim=True, unbiased=False)
            if self.track_running_stats and self.training:
                n = x.numel() / x.size(1)
                with torch.no_grad():  # the running variance is unbiased, as in nn.BatchNorm2d
                    self.running_mean.copy_(factor * mean[0, :, 0, 0] + (1 - factor) * self.running_mean)
                    self.running_var.copy_(factor * var[0, :, 0, 0] * n / (n - 1) + (1 - factor) * self.running_var)
        else:
            mean = self.running_mean[None, :, None, None]
            var = self.running_var[None, :, None, None]
        std = torch.sqrt(var)
        return self.outside_output(x, mean, std), mean, std

    def outside_output(self, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """``eps_placement="outside"``'s output from ``mean`` and ``std = sqrt(var)`` (``[1, C, 1, 1]``),
        in the forward's operations: from saved statistics it is the forward's ``y`` bit for bit."""
        if not self.affine or self.scale_param == "lambda":
            y = self.scale * (x - mean) / (std + self.eps)
        else:
            y = (x - mean) / (std + self.eps)
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, scale=alpha*V_th={self.scale:g}, eps_placement={self.eps_placement}, "
                f"scale_param={self.scale_param}")


def sync_batchnorm(model: nn.Module) -> nn.Module:
    """``nn.SyncBatchNorm.convert_sync_batchnorm``, refusing models with tdBN: PyTorch would turn each
    ``ThresholdScaledBatchNorm2d`` into a plain SyncBatchNorm, dropping its ``alpha * V_th`` scale
    (with ``lambda``, a 0.6x smaller output) and its ``eps`` placement without a word."""
    tdbn = [name for name, m in model.named_modules() if isinstance(m, ThresholdScaledBatchNorm2d)]
    if tdbn:
        raise ValueError(f"--sync-bn: the model has {len(tdbn)} tdBN layers (e.g. {tdbn[0]!r}), which SyncBatchNorm "
                         "cannot stand in for; train it without --sync-bn (as the DS-ResNet authors do)")
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def eval_scale_shift(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(scale, shift)`` in float64 with ``bn(x) = x * scale + shift`` in eval mode,
    for a plain BatchNorm and a tdBN alike (its ``alpha * V_th``, ``scale_param`` and
    ``eps_placement`` included). The running statistics must exist (the caller says what to do)."""
    var = bn.running_var.detach().double()
    mean = bn.running_mean.detach().double()
    if isinstance(bn, ThresholdScaledBatchNorm2d):
        std = var.sqrt() + bn.eps if bn.eps_placement == "outside" else (var + bn.eps).sqrt()
        if not bn.affine:
            gain = torch.full_like(var, bn.scale)
        else:
            gain = bn.weight.detach().double() * (bn.scale if bn.scale_param == "lambda" else 1.0)
    else:
        std = (var + bn.eps).sqrt()
        gain = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(var)
    scale = gain / std
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(var)
    return scale, beta - mean * scale

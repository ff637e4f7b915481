"""Time-merged layers: an ANN layer applied to every time step of a ``[T, B, ...]`` tensor.

Merging time into the batch (``[T*B, ...]``) runs one convolution for all steps, and makes
BatchNorm's statistics span (T, B, H, W) per channel: the threshold-dependent BN (tdBN) of the
MS-ResNet and DS-ResNet papers.
"""

from __future__ import annotations

import torch
from torch import nn

from .norm import ThresholdScaledBatchNorm2d


class SeqToANN(nn.Module):
    """``[T, B, ...] -> module([T*B, ...]) -> [T, B, ...]``."""

    def __init__(self, *modules: nn.Module):
        super().__init__()
        self.module = modules[0] if len(modules) == 1 else nn.Sequential(*modules)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        T, B = x_seq.shape[0], x_seq.shape[1]
        y = self.module(x_seq.flatten(0, 1))
        return y.view(T, B, *y.shape[1:])


def seq_conv(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
             bias: bool = False) -> SeqToANN:
    """A time-merged ``kernel_size`` convolution with 'same' padding for odd kernels."""
    return SeqToANN(nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=bias))


def seq_bn(channels: int, weight_init: float = 1.0) -> SeqToANN:
    """Time-merged BatchNorm2d with its weight initialised to ``weight_init`` (0: a block starts as identity)."""
    bn = nn.BatchNorm2d(channels)
    nn.init.constant_(bn.weight, weight_init)
    return SeqToANN(bn)


def seq_tdbn(channels: int, v_threshold: float, alpha: float = 1.0, affine: bool = True,
             eps_placement: str = "outside", scale_param: str = "lambda") -> SeqToANN:
    """Time-merged threshold-scaled BatchNorm (tdBN; see ``norm.ThresholdScaledBatchNorm2d``)."""
    return SeqToANN(ThresholdScaledBatchNorm2d(channels, v_threshold, alpha, affine=affine,
                                               eps_placement=eps_placement, scale_param=scale_param))


def check_input(x: torch.Tensor, in_channels: int) -> None:
    """Raise ``ValueError`` (what was expected, what came) unless ``x`` is a floating-point
    ``[B, in_channels, H, W]`` image batch or ``[B, T, in_channels, H, W]`` event-frame batch."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor input, got {type(x).__name__}")
    expected = f"[B, {in_channels}, H, W] images or [B, T, {in_channels}, H, W] event frames"
    if not x.is_floating_point():
        raise ValueError(f"expected a floating point input (e.g. float32) of {expected}, got {x.dtype} "
                         f"of shape {tuple(x.shape)}; convert it with .float()")
    if x.ndim not in (4, 5):
        raise ValueError(f"expected {expected}, got a {x.ndim}-d tensor of shape {tuple(x.shape)}")
    channels = x.shape[1] if x.ndim == 4 else x.shape[2]
    if channels != in_channels:
        raise ValueError(f"expected {expected}, got {tuple(x.shape)}: {channels} channels, but the model was "
                         f"built with in_channels={in_channels}")


def encode_input(x: torch.Tensor, T: int, in_channels: int) -> torch.Tensor:
    """A model's input as a time-first sequence ``[T, B, C, H, W]``.

    ``[B, C, H, W]`` (a static image: direct encoding, the same input at each of the ``T`` steps)
    or ``[B, T', C, H, W]`` (event frames, as Tonic's ``ToFrame`` + ``PadTensors(batch_first=True)``
    give; their own ``T'`` steps are used). Anything else raises ``ValueError`` (``check_input``).
    """
    check_input(x, in_channels)
    if x.ndim == 4:
        return x.unsqueeze(0).expand(T, *x.shape)
    return x.transpose(0, 1)

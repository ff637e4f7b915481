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


def check_input(x: torch.Tensor, in_channels: int, T: int | None = None, dtype: torch.dtype | None = None) -> None:
    """Raise ``ValueError`` (what was expected, what came, what to do) unless ``x`` is a
    floating-point ``[B, in_channels, H, W]`` image batch or ``[B, T, in_channels, H, W]`` event-frame
    batch, of the model's ``dtype``.

    Layouts: models take batch-first input (``[B, T, C, H, W]``, as Tonic's ``ToFrame`` plus
    ``PadTensors(batch_first=True)`` give); inside the network and in the neurons, sequences are
    time-first (``[T, B, ...]``). A 5-d input whose second axis is not the model's ``T`` but whose
    first one is looks time-first and is refused; the caller says which it is with ``time_first=True``
    (transposed) or ``False`` (batch-first frames of another length, taken as they are).
    """
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
    if T is not None and x.ndim == 5 and x.shape[1] != T and x.shape[0] == T:
        raise ValueError(f"got {tuple(x.shape)} for a model with T={T}: this looks time-first [T, B, C, H, W], "
                         f"but models take batch-first event frames [B, T, C, H, W]; pass x.transpose(0, 1), "
                         "or model(x, time_first=True); model(x, time_first=False) if these are B samples of "
                         f"{x.shape[1]} frames")
    if dtype is not None and x.dtype != dtype and not _autocasting(x):
        convert = {torch.float32: ".float()", torch.float64: ".double()", torch.float16: ".half()",
                   torch.bfloat16: ".bfloat16()"}.get(dtype, f".to({dtype})")
        raise ValueError(f"the input is {x.dtype} but the model's weights are {dtype}: convert the input with "
                         f"x{convert} (or the model with model.to({x.dtype}); on CUDA, mixed precision is "
                         "torch.autocast)")


def _autocasting(x: torch.Tensor) -> bool:
    try:
        return torch.is_autocast_enabled(x.device.type)
    except TypeError:  # PyTorch before 2.4: no device argument
        return torch.is_autocast_enabled()


def encode_input(x: torch.Tensor, T: int, in_channels: int, time_first: bool | None = None,
                 dtype: torch.dtype | None = None) -> torch.Tensor:
    """A model's input as a time-first sequence ``[T, B, C, H, W]``.

    ``[B, C, H, W]`` (a static image: direct encoding, the same input at each of the ``T`` steps)
    or ``[B, T', C, H, W]`` (event frames, as Tonic's ``ToFrame`` + ``PadTensors(batch_first=True)``
    give; their own ``T'`` steps are used), or ``[T', B, C, H, W]`` with ``time_first=True``;
    ``time_first=None`` refuses a batch-first input that looks time-first (``check_input``).
    Anything else raises ``ValueError`` (``check_input``).
    """
    if time_first and x.ndim == 5:
        x = x.transpose(0, 1)
    check_input(x, in_channels, T if time_first is None else None, dtype)
    if x.ndim == 4:
        return x.unsqueeze(0).expand(T, *x.shape)
    return x.transpose(0, 1)

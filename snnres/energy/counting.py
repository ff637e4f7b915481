"""Exact operation counts from the real forward pass.

A synaptic layer (``Conv1d/2d``, ``Linear``) costs, for every input element ``x`` at position
``p``, ``fan_out(p)`` operations: the number of (output channel, output position) pairs whose
receptive field holds ``p``. With padding and stride ``fan_out`` varies over positions (edges feed
fewer outputs); ``fan_out_map`` computes it exactly with a transposed convolution of ones.

- Input of spikes (every value a non-negative integer: 0/1, or an MLF level count / event count
  k meaning k spikes): ``SOPs = sum_p x(p) * fan_out(p)``, one accumulate per spike and target.
- Real-valued input (the encoding layer, MS-ResNet's real-valued membrane shortcut stream,
  the classifier on time-averaged features): ``MACs = sum_p fan_out(p)``, dense.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SYNAPTIC = (nn.Conv1d, nn.Conv2d, nn.Linear)


def fan_out_map(layer: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    """Targets reached by one input element, per input position (``[H, W]`` / ``[L]`` / scalar)."""
    if isinstance(layer, nn.Linear):
        return torch.tensor(float(layer.out_features))
    per_channel = layer.out_channels // layer.groups
    spatial = input_shape[-2:] if isinstance(layer, nn.Conv2d) else input_shape[-1:]
    if isinstance(layer, nn.Conv2d):
        out = F.conv2d(torch.zeros(1, 1, *spatial), torch.zeros(1, 1, *layer.kernel_size),
                       stride=layer.stride, padding=layer.padding, dilation=layer.dilation)
        hits = F.conv_transpose2d(torch.ones_like(out), torch.ones(1, 1, *layer.kernel_size), stride=layer.stride,
                                  padding=layer.padding, dilation=layer.dilation,
                                  output_padding=_output_padding(spatial, out.shape[-2:], layer))
    else:
        out = F.conv1d(torch.zeros(1, 1, *spatial), torch.zeros(1, 1, *layer.kernel_size),
                       stride=layer.stride, padding=layer.padding, dilation=layer.dilation)
        hits = F.conv_transpose1d(torch.ones_like(out), torch.ones(1, 1, *layer.kernel_size), stride=layer.stride,
                                  padding=layer.padding, dilation=layer.dilation,
                                  output_padding=_output_padding(spatial, out.shape[-1:], layer))
    return hits[0, 0] * per_channel


def _output_padding(spatial, out_spatial, layer) -> tuple[int, ...]:
    """The output_padding that makes the transposed convolution give back the input's size."""
    pads = []
    for i, size in enumerate(spatial):
        k, s, p, d = layer.kernel_size[i], layer.stride[i], _pair(layer.padding, i), layer.dilation[i]
        pads.append(size - ((out_spatial[i] - 1) * s - 2 * p + d * (k - 1) + 1))
    return tuple(pads)


def _pair(padding, i: int) -> int:
    if isinstance(padding, str):
        raise ValueError(f"padding={padding!r} is not supported by the energy counter; use integers")
    return padding[i]


def is_spike_tensor(x: torch.Tensor) -> bool:
    """Every element a non-negative integer (binary spikes, or counts of spikes)."""
    return bool((x >= 0).all() and (x == torch.round(x)).all())


def count_layer(layer: nn.Module, x: torch.Tensor) -> tuple[float, float, bool, float]:
    """``(sops, macs, fed_by_spikes, dense_macs_per_row)`` for one call of ``layer`` on ``x``.

    A row is one sample at one time step (``x`` is ``[T*B, ...]`` inside a time-merged layer,
    ``[B, ...]`` after averaging over time); ``dense_macs_per_row`` is what the same layer costs
    an ANN for one sample.
    """
    x = x.detach().float()
    fan = fan_out_map(layer, tuple(x.shape)).to(x.device)
    per_row = layer.in_features if isinstance(layer, nn.Linear) else x[0].numel() if x.ndim > 1 else x.numel()
    rows = max(1, x.numel() // per_row)
    if isinstance(layer, nn.Linear):
        dense = float(x.numel() * fan)
    else:  # x is [N, C, *spatial]; fan is [*spatial], the same for every channel and sample
        dense = float(fan.sum()) * (x.numel() / fan.numel())
    if is_spike_tensor(x):
        if isinstance(layer, nn.Linear):
            sops = float(x.sum() * fan)
        else:
            sops = float((x.sum(dim=tuple(range(x.ndim - fan.ndim))) * fan).sum())
        return sops, 0.0, True, dense / rows
    return 0.0, dense, False, dense / rows

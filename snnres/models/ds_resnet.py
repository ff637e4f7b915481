"""DS-ResNet with multi-level firing neurons (Feng et al., IJCAI 2022; langfengQ/MLF-DSResNet).

Block: ``MLF(BN(conv3x3(MLF(BN(conv3x3(x)))))) + shortcut(x)``: the activation comes before the
addition, so the residual stream carries spike counts (0..3 per branch). Shortcut: the identity on
spike counts, or ``MLF(BN(conv1x1/stride(x)))``. Every BN is threshold-scaled (tdBN, scale
``alpha * V_th`` = 0.6). Stem ``MLF(BN(conv3x3))``; head: global average pool -> FC -> mean over T.
Convs and the FC start He-normal (``kaiming_normal_``), as in the authors' code.
``convention="official"`` (the default) is the authors' code: MLF levels fire on ``u > V_th``, and
tdBN divides by ``sqrt(var) + eps`` and learns ``lambda``; ``"spikingjelly"`` fires on ``u >= V_th``
and uses SpikingJelly's tdBN (``sqrt(var + eps)``, learns ``gamma``; ``layers.norm``).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..layers import (SeqToANN, SpikingSequential, ThresholdScaledBatchNorm2d, conv_norm_neuron, seq_conv, seq_tdbn,
                      spike_count_bound)
from .common import (SpikingHead, SpikingNet, build_stages, convention_options, kaiming_init, mlf_neuron,
                     preset_neuron, with_backend, zero_init_last_bn)
from .registry import cifar_blocks, register_family

V_TH = 0.6  # tdBN scale alpha * V_th, alpha = 1 and the first level's threshold (authors' Vth)


class DualSpikeBlock(nn.Module):
    """``neuron2(last_bn(conv2(neuron1(bn1(conv1(x)))))) + shortcut(x)`` on spike counts."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, neuron: Callable[[], nn.Module],
                 v_threshold: float = V_TH, tdbn: dict | None = None):
        super().__init__()
        tdbn = tdbn or {}  # eps_placement, scale_param (layers.norm)
        self.conv1 = seq_conv(in_channels, out_channels, 3, stride)
        self.bn1 = seq_tdbn(out_channels, v_threshold, **tdbn)
        self.neuron1 = neuron()
        self.conv2 = seq_conv(out_channels, out_channels, 3)
        self.last_bn = seq_tdbn(out_channels, v_threshold, **tdbn)
        self.neuron2 = neuron()
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = SpikingSequential(seq_conv(in_channels, out_channels, 1, stride),
                                              seq_tdbn(out_channels, v_threshold, **tdbn), neuron())
        self.memory = "default"  # what the backward keeps: snnres.layers.memory_plan
        self.in_max_count: int | None = None  # the input's spike-count bound, set by SpikingNet

    def count_bound(self, in_max_count: int | None) -> int | None:
        """Record the input's spike-count bound; return the output's (branch + shortcut counts)."""
        self.in_max_count = in_max_count
        if isinstance(self.shortcut, SpikingSequential):
            self.shortcut.in_max_count = in_max_count
            shortcut = self.shortcut.out_max_count
        else:
            shortcut = in_max_count
        branch = spike_count_bound(self.neuron2)
        return None if branch is None or shortcut is None else branch + shortcut

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        r = conv_norm_neuron(x_seq, self.conv1, self.bn1, self.neuron1, memory=self.memory,
                             max_count=self.in_max_count)
        r = conv_norm_neuron(r, self.conv2, self.last_bn, self.neuron2, memory=self.memory,
                             max_count=spike_count_bound(self.neuron1))
        return r + self.shortcut(x_seq)


@register_family("ds-resnet", cifar_blocks, examples=(8, 14, 20, 32, 44, 56, 68))
def ds_resnet(num_classes: int = 10, T: int = 4, in_channels: int = 3, blocks=(3, 3, 3),
              widths=(64, 128, 256), first_stride: int = 1, input_norm: bool = False,
              zero_init_residual: bool = False, backend: str | None = None,
              neuron: Callable[..., nn.Module] | None = None, convention: str = "official") -> SpikingNet:
    """The 6n+2 family. The paper's widths: 64/128/256 (CIFAR-10, the default), 16/32/64
    (DVS-Gesture, with ``input_norm=True``: the authors' non-affine tdBN on the event frames),
    32/64/128 (CIFAR10-DVS, ``ds-resnet14``). ``convention``: "official" (the authors' MLF and
    tdBN) or "spikingjelly" (module docstring). ``neuron`` replaces the MLF (e.g. ``partial(MLF,
    levels=2)``; ``convention`` then sets only the tdBN); ``zero_init_residual`` zeroes each
    branch's last BN (not in the paper)."""
    tdbn = convention_options(convention)["tdbn"]
    neuron = with_backend(neuron or preset_neuron(mlf_neuron, convention), backend)
    w0 = widths[0]
    stem = [seq_conv(in_channels, w0, 3, 1), seq_tdbn(w0, V_TH, **tdbn), neuron()]
    if input_norm:  # DVS-Gesture: tdBatchNorm(BatchNorm2d(2, affine=False)) on the input frames
        stem.insert(0, SeqToANN(ThresholdScaledBatchNorm2d(in_channels, V_TH, affine=False, **tdbn)))
    stages, channels = build_stages(widths, blocks, (first_stride, 2, 2), w0,
                                    lambda i, o, s: DualSpikeBlock(i, o, s, neuron, tdbn=tdbn))
    model = SpikingNet(SpikingSequential(*stem), stages, SpikingHead(channels, num_classes, None), T, in_channels)
    kaiming_init(model, mode="fan_in", linear=True)
    for block in model.blocks():
        zero_init_last_bn(block, zero_init_residual)
    return model

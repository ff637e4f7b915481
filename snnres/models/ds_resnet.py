"""DS-ResNet with multi-level firing neurons (Feng et al., IJCAI 2022; langfengQ/MLF-DSResNet).

Block: ``MLF(BN(conv3x3(MLF(BN(conv3x3(x)))))) + shortcut(x)``: the activation comes before the
addition, so the residual stream carries spike counts (0..3 per branch). Shortcut: the identity on
spike counts, or ``MLF(BN(conv1x1/stride(x)))``. BN is threshold-scaled (tdBN): its weight starts at
``alpha * V_th`` = 0.6.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..layers import seq_bn, seq_conv
from .common import SpikingHead, SpikingNet, mlf_neuron, with_backend
from .ms_resnet import build_stages
from .registry import cifar_blocks, register_family

TDBN_INIT = 0.6  # alpha * V_th with alpha = 1 and the first level's threshold


class DualSpikeBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, neuron: Callable[[], nn.Module]):
        super().__init__()
        self.conv1 = seq_conv(in_channels, out_channels, 3, stride)
        self.bn1 = seq_bn(out_channels, TDBN_INIT)
        self.neuron1 = neuron()
        self.conv2 = seq_conv(out_channels, out_channels, 3)
        self.last_bn = seq_bn(out_channels, TDBN_INIT)
        self.neuron2 = neuron()
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(seq_conv(in_channels, out_channels, 1, stride),
                                          seq_bn(out_channels, TDBN_INIT), neuron())

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        r = self.neuron1(self.bn1(self.conv1(x_seq)))
        r = self.neuron2(self.last_bn(self.conv2(r)))
        return r + self.shortcut(x_seq)


@register_family("ds-resnet", cifar_blocks, examples=(14, 20, 32, 44, 56, 68))
def ds_resnet(num_classes: int = 10, T: int = 4, in_channels: int = 3, blocks=(3, 3, 3),
              widths=(64, 128, 256), first_stride: int = 1, backend: str | None = None,
              neuron: Callable[..., nn.Module] | None = None) -> SpikingNet:
    """The 6n+2 family; the paper's widths: 64/128/256 (CIFAR-10), 16/32/64 (DVS-Gesture),
    32/64/128 (CIFAR10-DVS, ds-resnet14)."""
    neuron = with_backend(neuron or mlf_neuron, backend)
    w0 = widths[0]
    stem = nn.Sequential(seq_conv(in_channels, w0, 3, 1), seq_bn(w0, TDBN_INIT), neuron())
    stages, channels = build_stages(widths, blocks, (first_stride, 2, 2), w0,
                                    lambda i, o, s: DualSpikeBlock(i, o, s, neuron))
    return SpikingNet(stem, stages, SpikingHead(channels, num_classes, None), T, in_channels)

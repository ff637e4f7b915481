"""MS-ResNet: membrane shortcuts (Hu et al., TNNLS 2024; the authors' Ariande1/MS-ResNet code).

Block: ``r = BN(conv3x3(SN(BN(conv3x3(SN(x))))))``, output ``r + shortcut(x)`` with no neuron
after the addition: the residual stream carries real-valued membrane input; spikes flow only
inside the branch. Shortcut: identity, ``BN(conv1x1/stride(x))`` (18/34, CIFAR) or
``BN(conv1x1(AvgPool2(x)))`` (104). BN weights start at the threshold 0.5, the branch's last
BN at 0 (a block starts as the identity). ``convention="official"`` (the default) is the authors'
neuron exactly, spiking on ``u > 0.5``; ``"spikingjelly"`` spikes on ``u >= 0.5`` like SpikingJelly.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..layers import SeqToANN, SpikingSequential, conv_norm_neuron, seq_bn, seq_conv, spike_count_bound
from .common import (SpikingHead, SpikingNet, build_stages, ms_neuron, preset_neuron, with_backend,
                     zero_init_last_bn)
from .registry import cifar_blocks, register, register_family

BN_INIT = 0.5  # = the threshold, as the authors initialise their tdBN


class MembraneShortcutBlock(nn.Module):
    """``last_bn(conv2(neuron2(bn1(conv1(neuron1(x)))))) + shortcut(x)``, no neuron after the sum."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, neuron: Callable[[], nn.Module],
                 shortcut: str = "conv", zero_init_residual: bool = True):
        super().__init__()
        self.neuron1 = neuron()
        self.conv1 = seq_conv(in_channels, out_channels, 3, stride)
        self.bn1 = seq_bn(out_channels, BN_INIT)
        self.neuron2 = neuron()
        self.conv2 = seq_conv(out_channels, out_channels, 3)
        self.last_bn = seq_bn(out_channels, BN_INIT)
        zero_init_last_bn(self, zero_init_residual)
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        elif shortcut == "avgpool-conv":
            pool = nn.AvgPool2d(stride, stride) if stride > 1 else nn.Identity()
            self.shortcut = SpikingSequential(SeqToANN(pool, nn.Conv2d(in_channels, out_channels, 1, bias=False)),
                                              seq_bn(out_channels, BN_INIT))
        else:
            self.shortcut = SpikingSequential(seq_conv(in_channels, out_channels, 1, stride),
                                              seq_bn(out_channels, BN_INIT))
        self.memory = "default"  # what the backward keeps: snnres.layers.memory_plan

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        s = self.neuron1(x_seq)
        r = conv_norm_neuron(s, self.conv1, self.bn1, self.neuron2, memory=self.memory,
                             max_count=spike_count_bound(self.neuron1))
        r = conv_norm_neuron(r, self.conv2, self.last_bn, memory=self.memory, max_count=spike_count_bound(self.neuron2))
        return r + self.shortcut(x_seq)


def ms_resnet(num_classes: int = 1000, T: int = 4, in_channels: int = 3, blocks=(2, 2, 2, 2),
              widths=(64, 128, 256, 512), strides=(2, 2, 2, 2), stem: str = "conv7", shortcut: str = "conv",
              dropout: float = 0.0, zero_init_residual: bool = True, backend: str | None = None,
              neuron: Callable[..., nn.Module] | None = None, convention: str = "official") -> SpikingNet:
    """An MS-ResNet of any layout (the registered names fix the papers' layouts).

    ``zero_init_residual`` (default True, as the authors' ``batch_norm_2d1``) zeroes the last BN
    of each branch; weights otherwise keep PyTorch's default initialisation, as in their code.
    ``convention``: "official" (the MS neuron fires on ``u > V_th``, as the authors' code) or
    "spikingjelly" (on ``u >= V_th``). ``neuron`` replaces the MS neuron (a callable returning a
    module, e.g. ``partial(LIF, ...)``); ``convention`` then does not touch it.
    """
    neuron = with_backend(neuron or preset_neuron(ms_neuron, convention), backend)
    w0 = widths[0]
    if stem == "conv7":  # ImageNet 18/34: conv7x7/2 + BN, no max-pool
        stem_module = SpikingSequential(seq_conv(in_channels, w0, 7, 2), seq_bn(w0, BN_INIT))
    elif stem == "conv3x3-3":  # ImageNet 104: three conv3x3 with bias (the first stride 2) + one BN
        stem_module = SpikingSequential(SeqToANN(nn.Conv2d(in_channels, w0, 3, 2, 1), nn.Conv2d(w0, w0, 3, 1, 1),
                                                 nn.Conv2d(w0, w0, 3, 1, 1)), seq_bn(w0, BN_INIT))
    elif stem == "conv3":  # CIFAR: conv3x3 + BN
        stem_module = SpikingSequential(seq_conv(in_channels, w0, 3, 1), seq_bn(w0, BN_INIT))
    else:
        raise ValueError(f"unknown stem {stem!r}: expected conv7, conv3x3-3 or conv3")
    stages, channels = build_stages(widths, blocks, strides, w0, lambda i, o, s: MembraneShortcutBlock(
        i, o, s, neuron, shortcut, zero_init_residual))
    return SpikingNet(stem_module, stages, SpikingHead(channels, num_classes, neuron, dropout), T, in_channels)


@register("ms-resnet18")
def ms_resnet18(**kw):
    return ms_resnet(blocks=(2, 2, 2, 2), **kw)


@register("ms-resnet34")
def ms_resnet34(**kw):
    return ms_resnet(blocks=(3, 4, 6, 3), **kw)


@register("ms-resnet104")
def ms_resnet104(**kw):
    kw.setdefault("dropout", 0.2)
    return ms_resnet(blocks=(3, 8, 32, 8), stem="conv3x3-3", shortcut="avgpool-conv", **kw)


@register_family("ms-resnet-cifar", cifar_blocks, examples=(8, 20, 32, 44, 56, 110, 482))
def ms_resnet_cifar(blocks, first_stride: int = 1, widths=(16, 32, 64), **kw):
    """CIFAR 6n+2 family, 16/32/64 channels; ``first_stride=2`` for CIFAR10-DVS (128x128 input)."""
    return ms_resnet(blocks=blocks, widths=widths, strides=(first_stride, 2, 2), stem="conv3", **kw)

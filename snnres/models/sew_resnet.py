"""SEW-ResNet (Fang et al., NeurIPS 2021) and the plain spiking ResNet (no shortcuts) beside it.

SEW block: ``A = SN(BN(conv(SN(BN(conv(S))))))``, shortcut ``S`` or ``SN(BN(conv1x1(S)))``, output
``g(A, shortcut)`` with ADD ``A + S``, AND ``A * S`` or IAND ``(1 - A) * S``. The plain network
(``spiking-resnet{N}``, ``plain.py``) is the same block with ``connect=None``: ``A`` alone.
ImageNet layouts (18/34/50) follow torchvision's ResNet with spiking neurons (conv7/2 + BN + SN +
max-pool stem); any other 6n+2 depth is the CIFAR layout (16/32/64 channels). Initialisation as
the authors' (torchvision's): He-normal ``fan_out`` convs, BN weight 1 and bias 0;
``zero_init_residual`` zeroes each branch's last BN (and sets its bias to 1 for AND).
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch
from torch import nn

from ..layers import SeqToANN, SpikingSequential, seq_bn, seq_conv
from .common import (SpikingHead, SpikingNet, build_stages, if_neuron, kaiming_init, mlf_neuron, ms_neuron,
                     with_backend, zero_init_last_bn)
from .registry import cifar_blocks, register_family
from ..neurons import LIF

CONNECT = {
    "ADD": lambda a, s: a + s,
    "AND": lambda a, s: a * s,
    "IAND": lambda a, s: (1.0 - a) * s,
}
NEURONS = {
    "if": if_neuron,
    "plif": partial(LIF, tau=2.0, learn_tau=True, decay_input=True, v_threshold=1.0, detach_reset=True,
                    surrogate="atan", alpha=2.0),
    "ms": ms_neuron,
    "mlf": mlf_neuron,
}
IMAGENET = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}


def _branch(in_ch: int, out_ch: int, stride: int, kind: str, neuron) -> tuple[list[nn.Module], int]:
    if kind == "basic":
        return [seq_conv(in_ch, out_ch, 3, stride), seq_bn(out_ch), neuron(),
                seq_conv(out_ch, out_ch, 3), seq_bn(out_ch), neuron()], out_ch
    mid, out = out_ch, out_ch * 4
    return [seq_conv(in_ch, mid, 1), seq_bn(mid), neuron(), seq_conv(mid, mid, 3, stride), seq_bn(mid), neuron(),
            seq_conv(mid, out, 1), seq_bn(out), neuron()], out


class SpikeElementWiseBlock(nn.Module):
    """A SEW block (``connect`` ADD/AND/IAND), or a plain block when ``connect`` is None."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, kind: str, neuron, connect: str | None):
        super().__init__()
        layers, self.out_channels = _branch(in_ch, out_ch, stride, kind, neuron)
        self.branch = SpikingSequential(*layers)
        self.connect = connect
        if connect is None:
            self.shortcut = None
        elif stride == 1 and in_ch == self.out_channels:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = SpikingSequential(seq_conv(in_ch, self.out_channels, 1, stride),
                                              seq_bn(self.out_channels), neuron())

    def count_bound(self, in_max_count: int | None) -> int | None:
        """Record the input's spike-count bound; return the output's (``None``: not whole numbers >= 0)."""
        self.branch.in_max_count = in_max_count
        a = self.branch.out_max_count
        if self.shortcut is None:
            return a
        if isinstance(self.shortcut, SpikingSequential):
            self.shortcut.in_max_count = in_max_count
            s = self.shortcut.out_max_count
        else:
            s = in_max_count
        if a is None or s is None:
            return None
        if self.connect == "ADD":
            return a + s
        if self.connect == "AND":
            return a * s
        return s if a <= 1 else None  # IAND: (1 - A) S is negative where A > 1

    @property
    def last_bn(self) -> nn.Module:
        """The last BN of the residual branch (before its last neuron)."""
        return self.branch[-2]

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        a = self.branch(s)
        if self.shortcut is None:
            return a
        return CONNECT[self.connect](a, self.shortcut(s))


def sew_style_resnet(num_classes: int, T: int, in_channels: int, layout: str, blocks, kind: str = "basic",
                     connect: str | None = "ADD", neuron: str | Callable = "if", backend: str | None = None,
                     widths=None, first_stride: int = 1, zero_init_residual: bool = False) -> SpikingNet:
    """The SEW / plain network of ``layout`` "imagenet" or "cifar"; ``neuron`` a name in
    ``NEURONS`` or a callable returning a neuron module."""
    if connect is not None and connect not in CONNECT:
        raise ValueError(f"unknown connect function {connect!r}: expected one of {sorted(CONNECT)}")
    if isinstance(neuron, str) and neuron not in NEURONS:
        raise ValueError(f"unknown neuron {neuron!r}: expected one of {sorted(NEURONS)} or a callable")
    make = NEURONS[neuron] if isinstance(neuron, str) else neuron
    neuron_fn = with_backend(make, backend)
    if layout == "imagenet":
        widths = widths or (64, 128, 256, 512)
        strides = (1, 2, 2, 2)
        stem = SpikingSequential(seq_conv(in_channels, widths[0], 7, 2), seq_bn(widths[0]), neuron_fn(),
                                 SeqToANN(nn.MaxPool2d(3, 2, 1)))
    else:
        widths = widths or (16, 32, 64)
        strides = (first_stride, 2, 2)
        stem = SpikingSequential(seq_conv(in_channels, widths[0], 3), seq_bn(widths[0]), neuron_fn())
    stages, channels = build_stages(widths, blocks, strides, widths[0], lambda i, o, s: SpikeElementWiseBlock(
        i, o, s, kind, neuron_fn, connect))
    model = SpikingNet(stem, stages, SpikingHead(channels, num_classes, None), T, in_channels)
    kaiming_init(model, mode="fan_out")
    for block in model.blocks():
        zero_init_last_bn(block, zero_init_residual)
        if zero_init_residual and connect == "AND":  # A = SN(1) = 1 at the start: out = S
            nn.init.ones_(block.last_bn.module.bias)
    return model


def sew_depth(depth: int) -> dict:
    """18/34/50: torchvision's ImageNet layouts; any other 6n+2 depth: the CIFAR layout."""
    if depth in IMAGENET:
        kind, blocks = IMAGENET[depth]
        return {"layout": "imagenet", "kind": kind, "blocks": blocks}
    return {"layout": "cifar", "kind": "basic", **cifar_blocks(depth)}


@register_family("sew-resnet", sew_depth, examples=(8, 18, 20, 32, 34, 50, 56, 110))
def sew_resnet(**kw):
    """SEW-ResNet; ``connect`` ADD (default), AND or IAND; ``neuron`` if (default), plif, ms, mlf."""
    return sew_style_resnet(**kw)


"""A small plain convolutional SNN: the baseline for quick runs, the event simulator and NIR export.

``conv3x3 -> (BN) -> SN -> avgpool2 -> conv3x3 -> (BN) -> SN -> avgpool2 -> SN-free readout``.
``norm=False`` drops BatchNorm (a network whose multi-process training equals the single-process one).
"""

from __future__ import annotations

from torch import nn

from ..layers import SeqToANN, seq_bn
from .common import SpikingHead, SpikingNet, with_backend
from .registry import register
from .sew_resnet import NEURONS


class ConvSpikeBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, neuron, norm: bool, pool: bool):
        super().__init__()
        self.conv = SeqToANN(nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=not norm))
        self.bn = seq_bn(out_ch) if norm else nn.Identity()
        self.neuron = neuron()
        self.pool = SeqToANN(nn.AvgPool2d(2)) if pool else nn.Identity()

    def forward(self, x_seq):
        return self.pool(self.neuron(self.bn(self.conv(x_seq))))


@register("spiking-cnn")
def spiking_cnn(num_classes: int = 10, T: int = 4, in_channels: int = 3, widths=(16, 32), norm: bool = True,
                neuron: str = "ms", backend: str | None = None) -> SpikingNet:
    neuron_fn = with_backend(NEURONS[neuron], backend)
    blocks, channels = [], in_channels
    for width in widths:
        blocks.append(ConvSpikeBlock(channels, width, neuron_fn, norm, pool=True))
        channels = width
    return SpikingNet(nn.Identity(), nn.Sequential(nn.Sequential(*blocks)), SpikingHead(channels, num_classes, None),
                      T, in_channels)

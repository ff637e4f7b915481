"""Pieces every spiking architecture shares: neuron presets, the readout head, the model shell."""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch
from torch import nn

from ..layers import SeqToANN, encode_input
from ..neurons import LIF, MLF

#: MS-ResNet's neuron (Hu et al.): u = 0.25 u (1 - s) + x, s = u > 0.5, hard reset, detached,
#: box surrogate of height 1 on |u - 0.5| < 0.5.
ms_neuron = partial(LIF, tau=4 / 3, decay_input=False, v_threshold=0.5, v_reset=0.0, detach_reset=True,
                    surrogate="rectangle", alpha=1.0, fire="gt")
#: DS-ResNet's multi-level neuron (Feng et al.): thresholds 0.6/1.6/2.6, leak 0.25, reset kept in the
#: graph, s = u > V_th per level.
mlf_neuron = partial(MLF, levels=3, tau=4 / 3, v_threshold=0.6, spacing=1.0, decay_input=False,
                     detach_reset=False, surrogate="rectangle", alpha=1.0, fire="gt")

#: What ``convention`` changes in the MS-ResNet and DS-ResNet presets. "official": the authors' code
#: (a tie u == V_th does not fire; tdBN divides by sqrt(var) + eps and learns lambda);
#: "spikingjelly": SpikingJelly's Heaviside (u >= V_th) and ThresholdDependentBatchNorm2d
#: (sqrt(var + eps), learns gamma = alpha V_th lambda).
CONVENTIONS = {
    "official": {"fire": "gt", "tdbn": {"eps_placement": "outside", "scale_param": "lambda"}},
    "spikingjelly": {"fire": "ge", "tdbn": {"eps_placement": "inside", "scale_param": "gamma"}},
}


def convention_options(convention: str) -> dict:
    """``CONVENTIONS[convention]``, or an error naming the choices."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention={convention!r}: expected one of {sorted(CONVENTIONS)} "
                         "(official: the authors' code; spikingjelly: SpikingJelly's neuron and tdBN)")
    return CONVENTIONS[convention]


def preset_neuron(preset: Callable[..., nn.Module], convention: str) -> Callable[..., nn.Module]:
    """A neuron preset (``ms_neuron``, ``mlf_neuron``) with the ``fire`` test of ``convention``."""
    return partial(preset, fire=convention_options(convention)["fire"])
#: SEW-ResNet's ImageNet neuron: integrate-and-fire (no leak), threshold 1, detached hard reset, ATan.
if_neuron = partial(LIF, tau=float("inf"), decay_input=False, v_threshold=1.0, v_reset=0.0, detach_reset=True,
                    surrogate="atan", alpha=2.0)


def with_backend(neuron: Callable[..., nn.Module], backend: str | None) -> Callable[..., nn.Module]:
    return neuron if backend is None else partial(neuron, backend=backend)


class SpikingHead(nn.Module):
    """Readout: (neuron) -> global average pool -> mean over T -> dropout -> FC; ``[T, B, C, H, W] -> [B, K]``."""

    def __init__(self, channels: int, num_classes: int, neuron: Callable[..., nn.Module] | None,
                 dropout: float = 0.0):
        super().__init__()
        self.neuron = neuron() if neuron is not None else nn.Identity()
        self.pool = SeqToANN(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        features = self.pool(self.neuron(x_seq)).mean(0)
        return self.fc(self.dropout(features))


class SpikingNet(nn.Module):
    """``stem -> stages -> head`` over a time-first sequence; takes ``[B,C,H,W]`` or ``[B,T,C,H,W]``."""

    def __init__(self, stem: nn.Module, stages: nn.Sequential, head: nn.Module, T: int, in_channels: int):
        super().__init__()
        self.T, self.in_channels = T, in_channels
        self.stem, self.stages, self.head = stem, stages, head
        # Each block learns the spike-count bound of its input (the memory plans store spike
        # tensors as bits or bytes by it); blocks whose output is real-valued return None.
        count = getattr(stem, "out_max_count", None)
        for block in self.blocks():
            count = block.count_bound(count) if hasattr(block, "count_bound") else None

    def blocks(self) -> list[nn.Module]:
        """The residual (or plain) blocks, input to output."""
        return [block for stage in self.stages for block in stage]

    def forward(self, x: torch.Tensor, time_first: bool | None = None) -> torch.Tensor:
        """``x``: ``[B, C, H, W]`` or ``[B, T, C, H, W]``; ``[T, B, C, H, W]`` with ``time_first=True``
        (``None`` refuses a 5-d input that looks time-first, ``False`` takes it as batch-first)."""
        weight = next(self.parameters(), None)
        x_seq = encode_input(x, self.T, self.in_channels, time_first, weight.dtype if weight is not None else None)
        return self.head(self.stages(self.stem(x_seq)))


def build_stages(widths, blocks, strides, in_channels: int, make_block) -> tuple[nn.Sequential, int]:
    """``len(widths)`` stages of ``make_block(in, width, stride)`` blocks (the stride on each stage's
    first block); returns the stages and the output channels (``block.out_channels`` if it has one,
    e.g. 4 x width for a bottleneck)."""
    stages, channels = [], in_channels
    for width, count, stride in zip(widths, blocks, strides):
        stage = []
        for i in range(count):
            block = make_block(channels, width, stride if i == 0 else 1)
            stage.append(block)
            channels = getattr(block, "out_channels", width)
        stages.append(nn.Sequential(*stage))
    return nn.Sequential(*stages), channels


def zero_init_last_bn(block: nn.Module, enabled: bool) -> None:
    """Zero the weight of ``block.last_bn`` (the last BN of the residual branch): the block starts
    as its shortcut (Goyal et al. 2017; MS-ResNet does it always, torchvision as an option)."""
    if enabled and getattr(block, "last_bn", None) is not None:
        nn.init.zeros_(block.last_bn.module.weight)


def kaiming_init(model: nn.Module, mode: str = "fan_in", linear: bool = False) -> None:
    """He-normal weights for every Conv2d (and Linear when ``linear``), as the authors' code does
    (DS-ResNet: ``kaiming_normal_`` on convs and the FC; SEW / torchvision: ``mode="fan_out"``)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d) or (linear and isinstance(m, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")

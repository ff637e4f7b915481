"""Small hand-built SNNs for the export tests (independent of snnres.models), plus helpers.

Layers run time-merged on ``[T*B, C, H, W]``, neurons on ``[T, B, ...]``, as in the snnres models.
``TinyMSResNet`` follows MS-ResNet's block (neuron -> conv -> BN -> neuron -> conv -> BN, added to
a real-valued membrane shortcut, 1x1 conv + BN shortcut when downsampling); with ``mlf=True`` the
neurons are MLF (DS-ResNet).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from snnres.neurons import LIF, MLF

MS_NEURON = partial(LIF, tau=4 / 3, decay_input=False, v_threshold=0.5, v_reset=0.0, detach_reset=True,
                    surrogate="rectangle", alpha=1.0)


def time_merged(layer, x_seq):
    y = layer(x_seq.flatten(0, 1))
    return y.view(x_seq.shape[0], x_seq.shape[1], *y.shape[1:])


def randomize_batchnorm(model: nn.Module, seed: int = 0, weight_gain: float = 3.0) -> nn.Module:
    """Non-trivial running statistics so that folding is really tested; larger weights so that
    the deeper layers of these untrained nets still spike."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.weight.data.mul_(weight_gain)
        if isinstance(m, nn.Linear):
            m.bias.data.copy_(torch.rand(m.out_features, generator=g) + 0.5)
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(n, generator=g) + 0.75)
                m.bias.data.copy_(torch.rand(n, generator=g) * 0.4)
    return model.eval()


class PlainSNN(nn.Module):
    """conv-BN-LIF, sum pool, conv-LIF, flatten, linear(-LIF); static input, mean over time."""

    def __init__(self, T=4, in_channels=2, num_classes=5, size=8, neuron=partial(LIF, tau=2.0),
                 spiking_output=False, pool=None):
        super().__init__()
        self.T = T
        self.conv1 = nn.Conv2d(in_channels, 6, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(6)
        self.lif1 = neuron()
        self.pool = pool if pool is not None else nn.LPPool2d(1, 2)  # norm 1 = sum pool
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.lif2 = neuron()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(8 * (size // 2) ** 2, num_classes)
        self.lif3 = neuron() if spiking_output else None

    def forward(self, x):
        x_seq = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        y = self.lif1(time_merged(lambda z: self.bn1(self.conv1(z)), x_seq))
        y = self.lif2(time_merged(lambda z: self.conv2(self.pool(z)), y))
        y = time_merged(lambda z: self.fc(self.flatten(z)), y)
        if self.lif3 is not None:
            y = self.lif3(y)
        return y.mean(0)


class MSBlock(nn.Module):
    def __init__(self, c_in, c_out, stride, neuron):
        super().__init__()
        self.neuron1 = neuron()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.neuron2 = neuron()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x_seq):
        out = time_merged(lambda z: self.bn1(self.conv1(z)), self.neuron1(x_seq))
        out = time_merged(lambda z: self.bn2(self.conv2(z)), self.neuron2(out))
        shortcut = x_seq if self.downsample is None else time_merged(self.downsample, x_seq)
        return out + shortcut


class TinyMSResNet(nn.Module):
    """Stem, identity block, downsampling block, identity block, neuron, global avg pool, fc."""

    def __init__(self, T=3, in_channels=2, num_classes=5, width=4, mlf=False):
        super().__init__()
        self.T = T
        neuron = partial(MLF, levels=3) if mlf else MS_NEURON
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width))
        self.blocks = nn.Sequential(MSBlock(width, width, 1, neuron), MSBlock(width, 2 * width, 2, neuron),
                                    MSBlock(2 * width, 2 * width, 1, neuron))
        self.head_neuron = neuron()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x_seq = time_merged(self.stem, x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1))
        x_seq = self.head_neuron(self.blocks(x_seq))
        return time_merged(lambda z: self.fc(self.pool(z).flatten(1)), x_seq).mean(0)


def record_spikes(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(model(x), {neuron path: spikes [T, B, ...]})`` (MLF: the summed level spikes)."""
    from snnres.neurons import SpikingNeuron

    spikes, handles = {}, []
    for path, m in model.named_modules():
        if isinstance(m, SpikingNeuron):
            handles.append(m.register_forward_hook(lambda mod, a, out, path=path: spikes.__setitem__(path, out)))
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    return out, spikes

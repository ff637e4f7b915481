"""Graph corner cases: x + x, BatchNorm that cannot be folded, summed outputs, reuse after folding.

Each graph is checked against the nirtorch oracle of ``test_export_nir`` (through the file).
"""

from __future__ import annotations

import nir
import pytest
import torch
from nir_testnets import MS_NEURON, randomize_batchnorm, record_spikes, time_merged
from test_export_nir import DT, check_types, run_nirtorch
from torch import nn

from snnres.export import ExportError, from_nir, to_nir


class Cases(nn.Module):
    """conv -> BN (folded); x + x (Scale 2); depthwise conv; BN after an add (1x1 conv); output = a + b."""

    def __init__(self, T=3):
        super().__init__()
        self.T = T
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.lif = MS_NEURON()
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1, groups=3)  # exported as a dense conv
        self.bn_after_add = nn.BatchNorm2d(3)
        self.lif2 = MS_NEURON()
        self.fc_a, self.fc_b = nn.Linear(48, 4), nn.Linear(48, 4)

    def forward(self, x):
        x_seq = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        y = time_merged(lambda z: self.bn(self.conv(z)), x_seq)
        y = y + y
        s = self.lif(y)
        z = time_merged(self.conv2, s) + y
        s2 = self.lif2(time_merged(self.bn_after_add, z))
        flat = s2.flatten(2)
        return (self.fc_a(flat) + self.fc_b(flat)).mean(0)


def test_corner_cases_match_nirtorch(tmp_path):
    torch.manual_seed(0)
    model = randomize_batchnorm(Cases().double())
    graph = to_nir(model, (2, 4, 4), dt=DT)
    check_types(graph)
    kinds = {k: type(n).__name__ for k, n in graph.nodes.items()}
    assert kinds["conv_times2"] == "Scale" and kinds["bn_after_add"] == "Conv2d" and kinds["output_sum"] == "Scale"
    assert graph.nodes["bn_after_add"].weight.shape == (3, 3, 1, 1) and "bn" not in kinds
    nir.write(tmp_path / "c.nir", graph)
    read = nir.read(tmp_path / "c.nir")
    x = torch.rand(3, 2, 4, 4, dtype=torch.float64) * 3
    expected, spikes = record_spikes(model, x)
    outputs, nir_spikes = run_nirtorch(read, x.unsqueeze(0).expand(model.T, *x.shape), DT)
    for layer, s in spikes.items():
        assert s.sum() > 0 and torch.equal(nir_spikes[layer], s), layer
    torch.testing.assert_close(outputs.mean(0), expected, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(from_nir(read)(x), expected, rtol=1e-9, atol=1e-9)


def test_pre_batchnorm_tensor_used_after_folding_is_an_error():
    class Reuse(nn.Module):
        def __init__(self):
            super().__init__()
            self.T, self.conv, self.bn, self.lif = 2, nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2), MS_NEURON()

        def forward(self, x):
            pre = self.conv(x)
            post = self.bn(pre)
            return self.lif((post + pre).unsqueeze(0).repeat(2, 1, 1, 1, 1)).mean(0)

    with pytest.raises(ExportError, match="'conv'.*folded"):
        to_nir(Reuse(), (2, 3, 3))


def test_unsupported_operations_are_named():
    class Constant(nn.Module):
        def __init__(self):
            super().__init__()
            self.T, self.lif = 2, MS_NEURON()

        def forward(self, x):
            return self.lif(x.unsqueeze(0).repeat(2, 1, 1) + torch.ones(x.shape[1:])).mean(0)

    with pytest.raises(ExportError, match="adds a constant"):
        to_nir(Constant(), (5,))

    class MixesTime(nn.Module):
        def __init__(self):
            super().__init__()
            self.T, self.lif = 2, MS_NEURON()

        def forward(self, x):
            return self.lif(x.unsqueeze(0).repeat(2, 1, 1)).reshape(-1)

    with pytest.raises(ExportError, match="mixes the time/batch"):
        to_nir(MixesTime(), (5,))

    class MergedTime(nn.Module):
        def __init__(self):
            super().__init__()
            self.T, self.lif = 2, MS_NEURON()

        def forward(self, x):
            return self.lif(x.unsqueeze(0).repeat(2, 1, 1).flatten(0, 1))

    with pytest.raises(ExportError, match="neuron 'lif'.*time first"):
        to_nir(MergedTime(), (5,))

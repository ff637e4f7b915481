"""Energy counts against hand-worked cases and brute force."""

import json

import pytest
import torch
from torch import nn

from snnres.energy import EnergyModel, energy_report, fan_out_map
from snnres.neurons import LIF, MLF


@pytest.mark.parametrize("kernel,stride,padding,size", [(3, 1, 1, 5), (3, 2, 1, 6), (5, 2, 2, 7), (1, 1, 0, 4), (3, 2, 0, 7)])
def test_conv_fan_out_equals_brute_force(kernel, stride, padding, size):
    conv = nn.Conv2d(2, 3, kernel, stride=stride, padding=padding, bias=False)
    nn.init.constant_(conv.weight, 1.0)
    fan = fan_out_map(conv, (1, 2, size, size))
    for h in range(size):
        for w in range(size):
            x = torch.zeros(1, 2, size, size)
            x[0, 1, h, w] = 1.0  # one spike at (h, w): count the outputs it reaches
            reached = (conv(x) != 0).sum().item()
            assert fan[h, w].item() == reached, (h, w)


class TwoLayer(nn.Module):
    """conv(1->1, 3x3, pad 1) -> LIF -> flatten -> linear(9->2) -> mean over T, on a 3x3 image."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
        self.neuron = LIF(tau=2.0, v_threshold=1.0, backend="torch")
        self.fc = nn.Linear(9, 2, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, 0, 1, 1] = 4.0  # each pixel drives its own neuron only
            self.fc.weight.fill_(1.0)

    def forward(self, x):                      # x: [B, 1, 3, 3], repeated over T=2
        T, B = 2, x.shape[0]
        cur = self.conv(x.repeat(T, 1, 1, 1))  # [T*B, 1, 3, 3]
        spikes = self.neuron(cur.view(T, B, 9))
        return self.fc(spikes).mean(0)


def test_hand_counted_two_layer_network():
    # Pixels 1.0 at (0,0) and (1,1), 0.2 elsewhere. Conv input is real-valued: MACs, dense.
    # conv MACs per step = sum over positions of fan-out = 3x3 kernel hits: corner 4, edge 6, centre 9
    # -> 4*4 + 4*6 + 9 = 49 per step, 2 steps -> 98.
    # Currents 4.0 and 0.8 ; LIF tau 2: H = V + (X - V)/2. Bright pixels: t0 H=2 spike; t1 H=2 spike
    # -> 2 neurons x 2 spikes = 4 spikes. Dim pixels: t0 H=0.4, t1 H=0.6: no spike.
    # fc fed by spikes: each spike reaches 2 outputs -> SOPs = 4 * 2 = 8.
    # ANN (T=1): conv 49 MACs + fc 9*2 = 18 MACs = 67.
    x = torch.full((1, 1, 3, 3), 0.2)
    x[0, 0, 0, 0] = x[0, 0, 1, 1] = 1.0
    report = energy_report(TwoLayer(), [(x, torch.zeros(1))], energy=EnergyModel(0.9, 4.6))
    rows = {r["name"]: r for r in report.layers}
    assert rows["conv"]["macs"] == 98 and rows["conv"]["sops"] == 0
    assert rows["neuron"]["spikes"] == 4 and rows["neuron"]["neurons"] == 9
    assert rows["neuron"]["spikes_per_neuron"] == pytest.approx(4 / 9)
    assert rows["neuron"]["firing_rate"] == pytest.approx(4 / 18)
    assert rows["fc"]["sops"] == 8 and rows["fc"]["macs"] == 0
    t = report.total
    assert t["ann_macs"] == 67
    assert t["energy_pj"] == pytest.approx(8 * 0.9 + 98 * 4.6)
    assert t["ann_energy_pj"] == pytest.approx(67 * 4.6)


def test_mlf_counts_each_level_spike():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.neuron = MLF(backend="torch")
            self.fc = nn.Linear(1, 3, bias=False)

        def forward(self, x):
            return self.fc(self.neuron(x.view(1, 1, 1))).mean(0)

    report = energy_report(Net(), [(torch.tensor([[1.7]]), torch.zeros(1))])
    rows = {r["name"]: r for r in report.layers}
    assert rows["neuron"]["spikes"] == 2        # levels 0.6 and 1.6 fire
    assert rows["fc"]["sops"] == 2 * 3          # two spikes, three targets each


def test_bad_inputs_give_clear_errors_and_no_nan(tmp_path):
    model = TwoLayer()
    with pytest.raises(ValueError, match="max_batches must be >= 1"):
        energy_report(model, [(torch.ones(1, 1, 3, 3), torch.zeros(1))], max_batches=0)
    with pytest.raises(ValueError, match="no batches"):
        energy_report(model, [])
    ann = nn.Sequential(nn.Flatten(), nn.Linear(9, 2))
    report = energy_report(ann, [(torch.ones(1, 1, 3, 3), torch.zeros(1))])
    assert any("no spiking layers" in n for n in report.notes)
    assert report.total["spikes_per_neuron"] is None
    data = json.loads(report.to_json(tmp_path / "r.json").read_text())
    assert data["total"]["ann_macs"] == 18

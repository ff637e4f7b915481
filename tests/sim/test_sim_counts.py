"""SOP counts equal a brute-force count: spikes in x fan-out at each position, per layer."""

import numpy as np
import pytest
import torch
from torch import nn

from sim_testnets import dense_run, frames_of, random_conv_net, random_events
from snnres.energy import energy_report, fan_out_map
from snnres.sim import EventSimulator


def brute_force_sops(layer: nn.Module, spikes: torch.Tensor) -> float:
    """Sum over steps and positions of (input count) x (outputs that position reaches)."""
    if isinstance(layer, nn.Linear):
        return float(spikes.sum()) * layer.out_features
    fan = fan_out_map(layer, tuple(spikes.shape[1:]))
    return float((spikes.sum(dim=(0, 1)) * fan).sum())


@pytest.mark.parametrize("variant", [0, 2, 4, 9, 14])
def test_sops_equal_brute_force(variant, strategy):
    rng = np.random.default_rng(100 + variant)
    sensor, T = (15, 13, 2), 5
    net = random_conv_net(rng, sensor, variant)
    events = random_events(rng, sensor, 900)
    frames = frames_of(events, sensor, T)
    _, spikes = dense_run(net, frames)
    out = EventSimulator(net, strategy=strategy).run(events, sensor, T)
    # layer i's input: the input frames for conv "0", the neuron right before otherwise
    assert out.sops["0"] == brute_force_sops(net[0], frames)
    assert out.sops["3"] == brute_force_sops(net[3], spikes["2"])
    if "7" in out.sops:  # the 1x1 conv after a max pool (spikes); after an avg pool it is MACs
        pooled = net[6](spikes["5"])
        assert out.sops["7"] == brute_force_sops(net[7], pooled)
    else:
        pooled = net[6](spikes["5"])
        assert out.macs["7"] == float((pooled != 0).sum()) * 8


def test_sops_agree_with_energy_report(strategy):
    rng = np.random.default_rng(3)
    sensor, T = (16, 16, 2), 4
    net = random_conv_net(rng, sensor, 1)  # max pooling: every synaptic layer is fed by spikes
    events = random_events(rng, sensor, 700)
    out = EventSimulator(net, strategy=strategy).run(events, sensor, T)
    report = energy_report(net, [(frames_of(events, sensor, T)[None], torch.zeros(1))])
    rows = {r["name"]: r for r in report.layers if r.get("sops")}
    for name, sops in out.sops.items():
        if sops:
            assert rows[name]["sops"] == pytest.approx(sops)


def test_updates_skip_resting_neurons(strategy):
    """Without bias, neurons that get no input and sit at rest are not updated."""
    rng = np.random.default_rng(4)
    sensor = (10, 10, 1)
    net = random_conv_net(rng, sensor, 15)  # first conv: 3x3, stride 1, padding 1
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.bias.zero_(); m.running_mean.zero_()
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.zero_()
    frames = torch.zeros(4, 1, 10, 10)
    frames[1, 0, 5, 5] = 1.0  # one event at step 1
    out = EventSimulator(net, strategy=strategy).run(frames)
    # first layer: stride 1, pad 1, 3x3 -> the event reaches 9 positions x 8 channels at step 1;
    # after that those 72 neurons decay (non-rest) or fire and reset (rest)
    assert 0 < out.neuron_updates["2"] <= 72 * 3
    assert out.sops["0"] == 72.0
    assert out.neuron_updates["2"] < 4 * 8 * 10 * 10 / 4

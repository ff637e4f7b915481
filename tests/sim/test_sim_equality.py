"""The event-driven run gives the dense run's spikes exactly and its logits within float tolerance."""

import numpy as np
import pytest
import torch
from torch import nn

from sim_testnets import TimeSequential, dense_run, dyadic_, frames_of, random_conv_net, random_events
from snnres.neurons import LIF, MLF
from snnres.sim import EventSimulator


def assert_same_run(net, events, sensor_size, T, exact=True, strategy="fast"):
    logits, spikes = dense_run(net, frames_of(events, sensor_size, T))
    out = EventSimulator(net, strategy=strategy).run(events, sensor_size, T, record=True)
    assert set(out.spike_trains) == set(spikes)
    for name, dense in spikes.items():
        assert torch.equal(out.spike_trains[name], dense), f"spikes of {name} differ"
        assert out.spikes_per_layer[name] == int(dense.sum())
    # the time mean divides by T in another order: equal up to one rounding when T is not a power of 2
    tol = 1e-6 if exact else 1e-5
    torch.testing.assert_close(out.logits, logits, rtol=tol, atol=tol)
    return out


@pytest.mark.parametrize("variant", range(16))
def test_random_networks_match_dense(variant, strategy):
    rng = np.random.default_rng(variant)
    sensor = [(17, 15, 2), (16, 16, 1), (20, 13, 2), (11, 19, 2)][variant % 4]
    T = int(rng.integers(3, 9))
    net = random_conv_net(rng, sensor, variant)
    events = random_events(rng, sensor, int(rng.integers(50, 2000)))
    out = assert_same_run(net, events, sensor, T, strategy=strategy)
    assert sum(out.spikes_per_layer.values()) > 0


def test_dense_input_and_busy_network(strategy):
    """Every pixel active and strong weights: most neurons fire, still identical."""
    rng = np.random.default_rng(99)
    sensor = (12, 12, 2)
    net = random_conv_net(rng, sensor, 0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.mul_(4)
    events = random_events(rng, sensor, 12 * 12 * 2 * 20)
    out = assert_same_run(net, events, sensor, 6, strategy=strategy)
    rates = [out.spikes_per_layer[n] for n in out.spikes_per_layer]
    assert max(rates) > 500


def test_float_weights_match_within_tolerance(strategy):
    """Ordinary (non-dyadic) float weights: the sums differ in rounding only."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    sensor = (16, 16, 2)
    net = TimeSequential(nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8), LIF(tau=2.0, v_threshold=0.3),
                         nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), MLF(),
                         nn.Flatten(), nn.Linear(8 * 8 * 8, 4)).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 2.0)
    events = random_events(rng, sensor, 800)
    assert_same_run(net, events, sensor, 5, exact=False, strategy=strategy)


def test_linear_only_network_and_frames_input(strategy):
    """An MLP on flattened frames; frames given as a tensor instead of events."""
    rng = np.random.default_rng(5)
    net = dyadic_(TimeSequential(nn.Flatten(), nn.Linear(2 * 6 * 5, 16), nn.BatchNorm1d(16), LIF(v_threshold=0.5),
                                 nn.Linear(16, 3)), rng)
    frames = torch.from_numpy(rng.integers(0, 3, (4, 2, 6, 5)) * (rng.random((4, 2, 6, 5)) < 0.3)).float()
    logits, spikes = dense_run(net, frames)
    out = EventSimulator(net, strategy=strategy).run(frames, record=True)
    assert torch.equal(out.spike_trains["3"], spikes["3"])
    torch.testing.assert_close(out.logits, logits, rtol=1e-6, atol=1e-6)


def test_real_valued_frames_count_macs(strategy):
    """Non-integer input (e.g. an image) is fed as graded events and counted as MACs."""
    rng = np.random.default_rng(6)
    net = random_conv_net(rng, (10, 10, 1), 3)
    frames = torch.from_numpy(np.round(rng.random((3, 1, 10, 10)) * 8) / 8).float()
    logits, spikes = dense_run(net, frames)
    out = EventSimulator(net, strategy=strategy).run(frames, record=True)
    for name, dense in spikes.items():
        assert torch.equal(out.spike_trains[name], dense)
    assert "0" in out.macs and "0" not in out.sops

"""Bad input and unsupported layers give errors that say what is wrong."""

import numpy as np
import pytest
import torch
from torch import nn

from sim_testnets import TimeSequential, random_conv_net, random_events
from snnres.neurons import LIF
from snnres.sim import EventSimulator, UnsupportedLayerError

SENSOR = (12, 10, 2)


@pytest.fixture(scope="module")
def sim():
    return EventSimulator(random_conv_net(np.random.default_rng(0), SENSOR, 0))


@pytest.fixture
def events():
    return random_events(np.random.default_rng(1), SENSOR, 200)


@pytest.mark.parametrize("field,value,match", [("x", 12, "outside the sensor"), ("y", -1, "outside the sensor"),
                                               ("t", -5, "negative timestamps")])
def test_out_of_range_fields(sim, events, field, value, match):
    events[field][3] = value
    with pytest.raises(ValueError, match=match):
        sim.run(events, SENSOR, 4)


def test_unsorted_timestamps_error_or_sort(sim, events):
    shuffled = events[np.random.default_rng(2).permutation(len(events))]
    with pytest.raises(ValueError, match="not sorted.*sort=True"):
        sim.run(shuffled, SENSOR, 4)
    a = sim.run(shuffled, SENSOR, 4, sort=True)
    b = sim.run(events, SENSOR, 4)
    assert a.spikes_per_layer == b.spikes_per_layer and torch.equal(a.logits, b.logits)


def test_wrong_dtypes(sim, events):
    with pytest.raises(ValueError, match="structured events"):
        sim.run(np.stack([events["x"], events["y"]], 1), SENSOR, 4)
    floaty = events.astype([("x", np.float32), ("y", np.int16), ("t", np.int64), ("p", bool)])
    with pytest.raises(TypeError, match="'x' must be integer"):
        sim.run(floaty, SENSOR, 4)
    with pytest.raises(ValueError, match="lack the field"):
        sim.run(events[["x", "y", "t"]], SENSOR, 4)
    with pytest.raises(ValueError, match="need sensor_size"):
        sim.run(events)
    with pytest.raises(ValueError, match="positive number of time bins"):
        sim.run(events, SENSOR, 0)
    with pytest.raises(ValueError, match="frames must be"):
        sim.run(torch.zeros(2, 10, 12))
    with pytest.raises(ValueError, match="one polarity"):
        sim.run(events, (12, 10, 1), 4)


def test_wrong_channel_count(sim):
    with pytest.raises(ValueError, match="expects 2 input channels"):
        sim.run(torch.zeros(3, 1, 10, 12))


def test_empty_recording_is_silent(events, strategy):
    sim = EventSimulator(random_conv_net(np.random.default_rng(0), SENSOR, 0), strategy=strategy)
    out = sim.run(events[:0], SENSOR, 4)
    assert out.steps == 4 and out.total_sops == 0


def test_unknown_strategy_and_reference_on_a_gpu_are_named():
    net = random_conv_net(np.random.default_rng(0), SENSOR, 0)
    with pytest.raises(ValueError, match=r"strategy must be one of \['fast', 'reference'\], got 'fastest'"):
        EventSimulator(net, strategy="fastest")
    with pytest.raises(ValueError, match="reference strategy runs on the CPU only"):
        EventSimulator(net, device="cuda", strategy="reference")


@pytest.mark.parametrize("layer,name", [(nn.ReLU(), "ReLU"), (nn.Conv2d(8, 8, 3, groups=2), "groups=2"),
                                        (nn.BatchNorm2d(8), "does not follow")])
def test_unsupported_layers_are_named(layer, name):
    net = TimeSequential(nn.Conv2d(2, 8, 3), LIF(), layer, nn.Flatten(), nn.LazyLinear(2))
    with pytest.raises(UnsupportedLayerError, match=name) as info:
        EventSimulator(net)
    assert "'2'" in str(info.value)


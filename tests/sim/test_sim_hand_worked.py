"""Two LIF neurons worked by hand, through Tonic binning, SOP and update counts."""

import numpy as np
import pytest
import torch
from torch import nn

from sim_testnets import TimeSequential, dense_run, frames_of
from snnres.data.events import EVENT_DTYPE
from snnres.neurons import LIF
from snnres.sim import EventSimulator


def two_neuron_net():
    net = TimeSequential(nn.Flatten(), nn.Linear(2, 2, bias=False), LIF(tau=2.0, v_threshold=1.0))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[1.5, 0.0], [0.5, 0.5]]))
    return net.eval()


def test_two_neurons_by_hand(strategy):
    # Sensor: 2 pixels in a row, one polarity. T=3 over t in [0, 30]: window 30 // 3 = 10 us,
    # bins [0,10) [10,20) [20,30); the event at t=30 falls in no bin (Tonic drops it).
    events = np.zeros(5, dtype=EVENT_DTYPE)
    events["x"] = [0, 0, 1, 1, 0]
    events["t"] = [0, 10, 12, 14, 30]
    # Step inputs: x = (1, 0), (1, 2), (0, 0).  Currents X_A = 1.5 x0, X_B = 0.5 x0 + 0.5 x1.
    # LIF tau 2: H = V + (X - V) / 2, spike when H >= 1, hard reset to 0.
    #   A: t0 H = 0.75;  t1 H = 0.75 + (1.5 - 0.75)/2 = 1.125 -> spike, V = 0;  t2 at rest: skipped.
    #   B: t0 H = 0.25;  t1 H = 0.25 + (1.5 - 0.25)/2 = 0.875;  t2 H = 0.875 - 0.875/2 = 0.4375.
    out = EventSimulator(two_neuron_net(), strategy=strategy).run(events, (2, 1, 1), 3, record=True)
    assert out.spike_trains["2"].tolist() == [[0, 0], [1, 0], [0, 0]]
    assert out.spikes_per_layer == {"2": 1}
    # SOPs: t0 one event x 2 targets; t1 pixel 0 once and pixel 1 twice -> 3 x 2. Total 8.
    assert out.sops == {"1": 8.0}
    # Updates: A at t0, t1; B at t0, t1, t2 -> 5 (A at t2 is at rest with no input).
    assert out.neuron_updates == {"2": 5}
    torch.testing.assert_close(out.logits, torch.tensor([1 / 3, 0.0]))
    assert out.prediction == 0
    logits, spikes = dense_run(two_neuron_net(), frames_of(events, (2, 1, 1), 3))
    assert torch.equal(spikes["2"], out.spike_trains["2"])


def test_soft_reset_and_mlf_levels_by_hand(strategy):
    # One pixel, weight 1, MLF (thresholds 0.6, 1.6, 2.6; u = 0.25 u + x, hard reset per level).
    from snnres.neurons import MLF

    net = TimeSequential(nn.Flatten(), nn.Linear(1, 1, bias=False), MLF())
    with torch.no_grad():
        net[1].weight.fill_(1.0)
    frames = torch.tensor([2.0, 0.0, 1.0]).view(3, 1, 1, 1)
    # t0: x=2: levels 0.6, 1.6 fire (2 >= 0.6, 2 >= 1.6), level 2.6 keeps 2.0 -> count 2
    # t1: x=0: levels 0,1 at 0 stay; level 2: 0.25*2 = 0.5 -> count 0
    # t2: x=1: level0 1 -> fire; level1 1 < 1.6; level2 0.125 + 1 = 1.125 -> count 1
    out = EventSimulator(net.eval(), strategy=strategy).run(frames, record=True)
    assert out.spike_trains["2"].flatten().tolist() == [2.0, 0.0, 1.0]
    assert out.sops == {"1": 3.0}  # input counts 2 + 1, one target each
    assert out.neuron_updates == {"2": 3}
    assert out.logits.item() == pytest.approx(1.0)


def one_pixel(neuron, values):
    """``neuron`` fed one pixel through a weight of 1: its spike train in the simulator, checked
    against the dense run."""
    net = TimeSequential(nn.Flatten(), nn.Linear(1, 1, bias=False), neuron).eval()
    with torch.no_grad():
        net[1].weight.fill_(1.0)
    frames = torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1)
    out = EventSimulator(net).run(frames, record=True)
    assert torch.equal(dense_run(net, frames)[1]["2"], out.spike_trains["2"])
    return out.spike_trains["2"].flatten().tolist()


@pytest.mark.parametrize("fire", ["ge", "gt"])
def test_ties_at_the_threshold_by_hand(fire):
    # LIF tau 2 (H = V + (X - V) / 2), V_th = 1, hard reset. Inputs 2, 1, 2: t0 H = 1 (a tie):
    #   ge fires (V = 0): t1 H = 0 + 1/2 = 0.5; t2 H = 0.5 + 1.5/2 = 1.25 -> spike.   Spikes 1, 0, 1.
    #   gt keeps V = 1:  t1 H = 1 + 0 = 1 (a tie again, no spike); t2 H = 1 + 1/2 = 1.5 -> spike.   0, 0, 1.
    expected = [1.0, 0.0, 1.0] if fire == "ge" else [0.0, 0.0, 1.0]
    assert one_pixel(LIF(tau=2.0, fire=fire), [2.0, 1.0, 2.0]) == expected


@pytest.mark.parametrize("fire,count", [("ge", 2.0), ("gt", 1.0)])
def test_mlf_level_tie_by_hand(fire, count):
    # x = 1.6 (float32) meets level 2's threshold 1.6 exactly: it fires with ge only.
    from snnres.neurons import MLF

    assert one_pixel(MLF(fire=fire), [1.6]) == [count]


def test_a_neuron_at_rest_on_its_threshold():
    # V_th = V_reset = 0: a resting neuron fires every step with ge (0 >= 0), never with gt.
    assert one_pixel(LIF(tau=2.0, v_threshold=0.0, fire="ge"), [0.0] * 3) == [1.0] * 3
    assert one_pixel(LIF(tau=2.0, v_threshold=0.0, fire="gt"), [0.0] * 3) == [0.0] * 3


@pytest.mark.parametrize("fire", ["ge", "gt"])
def test_soft_reset_tie_by_hand(fire):
    # LIF tau 2, V_th 1, soft reset (V = H - V_th on a spike). Inputs 2, 0, 3:
    #   t0 H = 1 (a tie): ge fires, V = 0;  gt does not, V = 1.
    #   t1 H = V / 2: ge 0, gt 0.5.   t2 H = V + (3 - V) / 2: ge 1.5 (spike, V = 0.5), gt 1.75 (spike, V = 0.75).
    expected = [1.0, 0.0, 1.0] if fire == "ge" else [0.0, 0.0, 1.0]
    assert one_pixel(LIF(tau=2.0, v_reset=None, fire=fire), [2.0, 0.0, 3.0]) == expected

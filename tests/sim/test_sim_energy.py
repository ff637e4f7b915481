"""``energy-report --event-driven``: the simulator's counts as an ``EnergyReport``, against the hook-based report."""

import numpy as np
import pytest
import torch

from sim_testnets import frames_of, random_conv_net, random_events
from snnres.energy import energy_report
from snnres.sim.loader_counts import dense_synapses, event_driven_report


def loader_of(net, rng, sensor, T, samples=3):
    frames = torch.stack([frames_of(random_events(rng, sensor, 700), sensor, T) for _ in range(samples)])
    return [(frames[:2], torch.zeros(2)), (frames[2:], torch.zeros(1))]


@pytest.mark.parametrize("variant", [1, 5])  # max pooling: every synaptic layer is fed by spikes
def test_event_driven_report_equals_the_hook_report(variant, tmp_path):
    rng = np.random.default_rng(variant)
    sensor, T = (16, 16, 2), 4
    net = random_conv_net(rng, sensor, variant)  # dyadic: the sums are exact, the spikes the dense run's
    loader = loader_of(net, rng, sensor, T)
    hooks, events = energy_report(net, loader), event_driven_report(net, loader, T)
    assert events.samples == hooks.samples == 3
    by_name = {r["name"]: r for r in hooks.layers}
    assert {r["name"] for r in events.layers} == set(by_name)
    for row in events.layers:
        want = by_name[row["name"]]
        assert (row["kind"], row["neurons"], row["spikes_per_neuron"] is None) == \
            (want["kind"], want["neurons"], want["spikes_per_neuron"] is None)
        for key in ("spikes", "spikes_per_neuron", "firing_rate", "sops", "macs"):
            assert row[key] == (want[key] if want[key] is None else pytest.approx(want[key], rel=1e-12)), \
                (row["name"], key)
        assert (row["kind"] == "neurons") == (row.get("neuron_updates", 0) > 0)
    for key in ("spikes", "neurons", "sops", "macs", "energy_pj", "ann_macs", "ann_energy_pj", "ann_over_snn"):
        assert events.total[key] == pytest.approx(hooks.total[key], rel=1e-12), key
    assert events.total["neuron_updates"] == pytest.approx(sum(r.get("neuron_updates", 0) for r in events.layers))
    assert "counted event by event" in events.notes[0]
    assert "| layer | kind |" in events.to_markdown()
    assert events.plot(tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert events.to_json(tmp_path / "r.json").read_text().startswith("{")


def test_dense_synapses_count_borders_by_hand():
    """A 3x3 conv, stride 1, padding 1 on 4 x 4: per axis 4 inputs x 3 taps minus the 2 that fall off
    = 10 (input, output) pairs, so 10 x 10 x C_in x C_out synapses; a linear layer: in x out."""
    from torch import nn

    from sim_testnets import TimeSequential
    from snnres.neurons import LIF
    from snnres.sim import EventSimulator

    net = TimeSequential(nn.Conv2d(2, 3, 3, padding=1), LIF(), nn.Flatten(), nn.Linear(48, 5)).eval()
    graph = EventSimulator(net).graph((2, 4, 4))
    assert dense_synapses(graph, 1) == 10 * 10 * 2 * 3
    assert dense_synapses(graph, 3) == 48 * 5

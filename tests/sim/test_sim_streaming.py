"""Chunked streaming equals one-shot: state and counts carry over between pieces."""

import numpy as np
import pytest
import torch

from sim_testnets import poison_scratch, random_conv_net, random_events
from snnres.sim import EventSimulator


def same_result(a, b):
    assert a.steps == b.steps
    assert a.spikes_per_layer == b.spikes_per_layer
    assert a.sops == b.sops and a.macs == b.macs and a.neuron_updates == b.neuron_updates
    for name in a.spike_trains:
        assert torch.equal(a.spike_trains[name], b.spike_trains[name])
    torch.testing.assert_close(a.logits, b.logits, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_event_pieces_equal_one_shot(seed, strategy):
    rng = np.random.default_rng(seed)
    sensor, T = (14, 12, 2), 7
    sim = EventSimulator(random_conv_net(rng, sensor, seed), strategy=strategy)
    events = random_events(rng, sensor, 1500, duration=7_123)
    one_shot = sim.run(events, sensor, T, record=True)

    t = events["t"]
    stream = sim.stream(record=True)
    cuts = np.sort(rng.integers(0, len(events), 5))
    done = 0
    for piece in np.split(events, cuts):
        done += stream.push(piece, sensor, bin_us=(t[-1] - t[0]) // T, t_start=t[0])
    done += stream.close(T)
    assert done == T
    same_result(stream.result(), one_shot)


def test_frame_pieces_and_single_steps_equal_one_shot(strategy):
    rng = np.random.default_rng(7)
    sensor = (12, 12, 2)
    sim = EventSimulator(random_conv_net(rng, sensor, 5), strategy=strategy)
    frames = torch.from_numpy((rng.random((9, 2, 12, 12)) < 0.1).astype(np.float32))
    one_shot = sim.run(frames, record=True)
    stream = sim.stream(record=True)
    for a, b in [(0, 1), (1, 4), (4, 5), (5, 9)]:
        stream.push_frames(frames[a:b])
    same_result(stream.result(), one_shot)


def test_stream_rejects_going_back_in_time():
    rng = np.random.default_rng(1)
    sensor = (8, 8, 2)
    sim = EventSimulator(random_conv_net(rng, sensor, 0))
    events = random_events(rng, sensor, 100)
    stream = sim.stream()
    stream.push(events[50:], sensor, bin_us=1000)
    with pytest.raises(ValueError, match="back in time"):
        stream.push(events[:50], sensor, bin_us=1000)


def test_ms_resnet_stream_step_by_step_equals_one_shot(strategy):
    models = pytest.importorskip("snnres.models")
    from sim_testnets import dyadic_

    rng = np.random.default_rng(11)
    net = dyadic_(models.create_model("ms-resnet-cifar8", num_classes=4, T=5, in_channels=2, widths=(8, 8, 8)), rng)
    sim = EventSimulator(net, strategy=strategy)
    frames = torch.from_numpy(rng.integers(0, 2, (5, 2, 12, 12)) * (rng.random((5, 2, 12, 12)) < 0.2)).float()
    one_shot = sim.run(frames, record=True)
    stream = sim.stream(record=True)
    for t in range(5):  # strictly time-major: one step at a time
        stream.push_frames(frames[t:t + 1])
    same_result(stream.result(), one_shot)


@pytest.mark.parametrize("variant", [0, 1, 2, 3, "ms-resnet"])
def test_stale_scratch_buffers_are_never_read(variant):
    """The accumulators are reused between runs and not zeroed (the kernels zero what they write):
    poisoning every reused buffer with NaN between two runs must change nothing."""
    rng = np.random.default_rng(11)
    sensor, T = (14, 12, 2), 5
    if variant == "ms-resnet":
        from snnres.models.ms_resnet import ms_resnet
        from sim_testnets import dyadic_

        net = dyadic_(ms_resnet(num_classes=5, T=T, in_channels=2, blocks=(1, 1), widths=(8, 16), strides=(1, 2),
                                stem="conv3", shortcut="conv"), rng)
    else:
        net = random_conv_net(rng, sensor, variant)
    sim = EventSimulator(net)
    events = random_events(rng, sensor, 800)
    first = sim.run(events, sensor, T, record=True)
    graph = sim.graph((2, 12, 14))
    assert graph.scratch.__dict__, "the run should have left reusable buffers"
    assert poison_scratch(graph) == 1, "the run should have left its membranes for the next"
    same_result(sim.run(events, sensor, T, record=True), first)


def test_runs_reuse_membranes_from_rest():
    """A run takes the membranes a finished run left (poisoned here) and starts them from rest: a
    second recording on the same simulator gives what a new simulator gives, and so does the first
    recording again; a user's stream keeps its own."""
    rng = np.random.default_rng(3)
    sensor, T = (14, 12, 2), 6
    net = random_conv_net(rng, sensor, 1)
    a, b = (random_events(rng, sensor, 900) for _ in range(2))
    sim = EventSimulator(net)
    first = sim.run(a, sensor, T, record=True)
    graph = sim.graph((2, 12, 14))
    stream = sim.stream()
    stream.push_events_tonic(b, sensor, T)
    held = {j: v.copy() for j, (v, _) in stream.state.membranes.items()}
    for _ in range(2):
        poison_scratch(graph)
        same_result(sim.run(b, sensor, T, record=True), EventSimulator(net).run(b, sensor, T, record=True))
    assert len(graph.scratch.__dict__["membranes"]) == 1
    poison_scratch(graph)
    same_result(sim.run(a, sensor, T, record=True), first)
    for j, (v, _) in stream.state.membranes.items():
        np.testing.assert_array_equal(v, held[j])


def test_pooled_membranes_are_handed_out_at_rest():
    """A recording that takes a finished run's membranes gets them all marked unwritten (``fresh``)
    and every 'away from rest' flag cleared (stale flags would only cost time, so the runs above
    cannot show them), and takes them out of the pool."""
    from snnres.sim import simulator
    from snnres.sim.state import SimState

    rng = np.random.default_rng(5)
    sensor, T = (14, 12, 2), 5
    sim = EventSimulator(random_conv_net(rng, sensor, 0))
    sim.run(random_events(rng, sensor, 900), sensor, T)
    graph = sim.graph((2, 12, 14))
    assert poison_scratch(graph) == 1
    state = SimState(graph=graph)
    simulator.at_rest(state)
    assert state.membranes and state.fresh == set(state.membranes)
    assert all(not awake.any() for _, awake in state.membranes.values())
    assert graph.scratch.__dict__["membranes"] == []

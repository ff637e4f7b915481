"""A gathered conv and the LIF or MLF layer it feeds, in one pass (``fused.gather_neuron``): the
dense run's spikes, and exactly the two-pass path's currents, membranes, counts and logits."""

import math
from dataclasses import replace

import numba as nb
import numpy as np
import pytest
import torch
from torch import nn

from sim_testnets import TimeSequential, dyadic_, poison_scratch, random_events
from snnres.neurons import LIF, MLF
from snnres.sim import EventSimulator, fused, kernels
from snnres.sim.plan import ALWAYS_GATHER, NEVER_GATHER, CostModel
from test_sim_equality import assert_same_run

LIFS = {  # tau 2 and 4: multiplied by 1/tau (exact); 1.5 and 3: divided
    "hard": lambda: LIF(tau=2.0, v_threshold=0.5),
    "soft": lambda: LIF(tau=1.5, v_threshold=0.75, v_reset=None),
    "no-decay-input": lambda: LIF(tau=3.0, v_threshold=0.5, decay_input=False),
    "slow": lambda: LIF(tau=4.0, v_threshold=0.25),
    "mlf": lambda: MLF(),  # DS-ResNet's: 3 levels, tau 4 (u = 0.25 u (1 - s) + x), hard reset
    "mlf-2-soft": lambda: MLF(levels=2, v_reset=None),
}


def fusable_net(rng, lif) -> TimeSequential:
    """Neuron layers behind convs of 32 (the sensor's events: counts, not spikes), 64 (stride 2), 96
    (three blocks of 32) and 256 channels (two blocks of 128 for one level, four of 64 for more; no
    padding in x, no BN: no bias)."""
    torch.manual_seed(int(rng.integers(1 << 30)))
    net = TimeSequential(
        nn.Conv2d(2, 32, 3, padding=1), nn.BatchNorm2d(32), lif(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), lif(),
        nn.Conv2d(64, 96, 3, padding=1, bias=False), nn.BatchNorm2d(96), lif(),
        nn.Conv2d(96, 256, 3, padding=(1, 0), bias=False), lif(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 5),
    )
    return dyadic_(net, rng)


def run_with_state(net, events, sensor, T, costs=ALWAYS_GATHER, strategy="fast"):
    """The result and the final membranes ``{node: (v, awake)}`` of a one-shot run, run a second
    time with every reused buffer poisoned (the kernels must write all they read)."""
    sim = EventSimulator(net, strategy=strategy, costs=costs)
    sim.run(events, sensor, T)
    if strategy == "fast":
        poison_scratch(sim.workspace((sensor[2], sensor[1], sensor[0])))
    stream = sim.stream(record=True)
    stream.push_events_tonic(events, sensor, T)
    return stream.result(), stream.state.membranes


def fused_calls(monkeypatch, record) -> list:
    """Spy on ``fused.gather_neuron``: ``record(args)`` of every call, in order."""
    calls, gather_neuron = [], fused.gather_neuron
    monkeypatch.setattr(fused, "gather_neuron", lambda *a: calls.append(record(a)) or gather_neuron(*a))
    return calls


def steps_of(out, kernel: str) -> list:
    """The plan steps of ``out`` that ran ``kernel``."""
    return [step for step in out.plan.steps if step.kernel == kernel]


def same_counts(a, b):
    assert torch.equal(a.logits, b.logits)
    assert a.sops == b.sops and a.macs == b.macs
    assert a.neuron_updates == b.neuron_updates and a.spikes_per_layer == b.spikes_per_layer


def same_runs(a, b, flags=True):
    """Two ``run_with_state`` results: the same counts and logits, spike trains, and membranes (and,
    if ``flags``, 'away from rest' flags) bit for bit."""
    (out_a, membranes_a), (out_b, membranes_b) = a, b
    same_counts(out_a, out_b)
    for name, train in out_a.spike_trains.items():
        assert torch.equal(out_b.spike_trains[name], train)
    for index, (v, awake) in membranes_a.items():
        np.testing.assert_array_equal(membranes_b[index][0].view(np.uint32), v.view(np.uint32))
        if flags:
            np.testing.assert_array_equal(membranes_b[index][1], awake)


@pytest.mark.parametrize("kind", list(LIFS))
def test_fused_matches_dense_two_pass_and_reference(kind):
    rng = np.random.default_rng(len(kind))
    sensor, T = (15, 13, 2) if kind in ("soft", "slow") else (16, 14, 2), 6  # 15 x 13: an odd number of 32-blocks
    net = fusable_net(rng, LIFS[kind])
    events = random_events(rng, sensor, 16 * 14 * 2 * 3)
    dense = assert_same_run(net, events, sensor, T, costs=ALWAYS_GATHER)
    fused_steps = steps_of(dense, "fused")
    assert len(fused_steps) == len(dense.spike_trains), "every neuron layer fuses"
    levels = {"mlf": 3, "mlf-2-soft": 2}.get(kind, 1)
    assert [step.width for step in fused_steps] == [32, 64, 32, 128 if levels == 1 else 64]
    fused_run = run_with_state(net, events, sensor, T)
    assert sum(fused_run[0].spikes_per_layer.values()) > 0
    two_pass = run_with_state(net, events, sensor, T, costs=NEVER_GATHER)
    assert not steps_of(two_pass[0], "fused") and steps_of(two_pass[0], "bits")
    same_runs(two_pass, fused_run)
    same_runs(run_with_state(net, events, sensor, T, strategy="reference"), fused_run, flags=False)


@pytest.mark.parametrize("kind", ["hard", "mlf"])
def test_joined_windows_sum_like_row_by_row(kind):
    """A 3x3 window summed in one loop (``CostModel.joined_window``) gives the row-by-row loops' spikes,
    counts, logits and membranes bit for bit, fused and two-pass (padding only in y, stride 2), and
    ``conv_gather`` does too, with y-dilation (``test_sim_gather.wide_net``)."""
    from test_sim_gather import wide_net

    rng = np.random.default_rng(11)
    sensor, T = (16, 14, 2), 5
    events = random_events(rng, sensor, 16 * 14 * 2 * 2)
    for net in (fusable_net(rng, LIFS[kind]), wide_net(rng)):
        runs = [run_with_state(net, events, sensor, T, replace(ALWAYS_GATHER, joined_window=limit,
                                                               row_pass_bytes=1 << 62))  # row passes take no joined windows
                for limit in (float("inf"), 0)]
        joined = [[step.joined for step in out.plan.steps if step.kernel.startswith("gather")] for out, _ in runs]
        assert not any(joined[0]) and joined[1] and all(joined[1])
        same_runs(*runs)


def test_fused_state_carries_into_two_pass_chunks():
    """Busy steps (fused), then quiet ones (the convs scatter, the LIF layers run alone), then busy
    again, streamed in chunks: the membranes and 'away from rest' flags carry over both ways."""
    rng = np.random.default_rng(5)
    net = fusable_net(rng, LIFS["soft"])
    frames = (rng.random((8, 2, 14, 16)) < 0.5).astype(np.float32)
    frames[2:6] *= rng.random((4, 2, 14, 16)) < 0.02
    one_shot = EventSimulator(net).run(torch.from_numpy(frames), record=True)
    busy_only = CostModel(fused_window=8, fused_density=0, fused_any_density=float("inf"))  # quiet steps scatter
    stream = EventSimulator(net, costs=busy_only).stream(record=True)
    fused_chunks = []
    for lo in range(0, 8, 2):
        stream.push_frames(frames[lo:lo + 2])
        fused_chunks.append(len([s for s in stream.state.plan.steps if s.kernel == "fused"]))
    assert min(fused_chunks) < fused_chunks[0] == fused_chunks[3], fused_chunks  # some layers switch
    streamed = stream.result()
    same_counts(streamed, one_shot)
    same_counts(streamed, EventSimulator(net, strategy="reference").run(torch.from_numpy(frames)))


@nb.njit
def _charges(v, x, tau, decay_input):
    inv = kernels.exact_reciprocal(tau)
    out = np.empty((2, v.size), np.float32)
    for i in range(v.size):
        out[0, i] = kernels._charge(v[i], x[i], tau, inv, np.float32(0.25), decay_input)
        out[1, i] = kernels._charge(v[i], x[i], tau, np.float32(0), np.float32(0.25), decay_input)  # divides
    return inv, out


@pytest.mark.parametrize("tau", [2.0, 0.5, 1.0, 4.0, 2.0 ** -20, 3.0, 1.5, 4 / 3, 2.0 ** 127])
def test_power_of_two_tau_multiplies_exactly(tau):
    rng = np.random.default_rng(0)
    v = (rng.standard_normal(4096) * 10.0 ** rng.integers(-40, 30, 4096)).astype(np.float32)
    x = (rng.standard_normal(4096) * 10.0 ** rng.integers(-40, 30, 4096)).astype(np.float32)
    with np.errstate(all="ignore"):
        for decay_input in (True, False):
            inv, (fast, divided) = _charges(v, x, np.float32(tau), decay_input)
            assert (inv != 0) == (math.frexp(tau)[0] == 0.5 and tau < 2.0 ** 126)
            np.testing.assert_array_equal(fast.view(np.uint32), divided.view(np.uint32))


@pytest.mark.parametrize("arch", ["ds-resnet8", "ms-resnet", "sew-resnet8"])
def test_residual_models_fuse_and_match(arch, monkeypatch):
    """Real architectures with widths in whole blocks: DS-ResNet's MLF layers, MS-ResNet's inner
    LIF layer (its other conv feeds the membrane shortcut: gathered or scattered alone), SEW."""
    from snnres import models

    rng = np.random.default_rng(len(arch))
    if arch == "ms-resnet":
        from snnres.models.ms_resnet import ms_resnet

        net = ms_resnet(num_classes=5, T=4, in_channels=2, blocks=(1, 1), widths=(32, 64), strides=(1, 2),
                        stem="conv3", shortcut="conv")
    else:
        net = models.create_model(arch, num_classes=5, T=4, in_channels=2, widths=(32, 32, 64))
    dyadic_(net, rng)
    sensor, T = (16, 16, 2), 4
    events = random_events(rng, sensor, 16 * 16 * 2)
    calls = fused_calls(monkeypatch, lambda args: len(args[10]))  # levels
    out = assert_same_run(net, events, sensor, T, costs=ALWAYS_GATHER)
    assert calls and (arch != "ds-resnet8" or min(calls) == 3), calls  # DS-ResNet: 3-level MLF layers
    same_counts(out, EventSimulator(net, strategy="reference").run(events, sensor, T))


@pytest.mark.parametrize("kind", ["hard", "no-decay-input", "mlf"])
def test_row_passes_sum_like_whole_windows(kind):
    """Windows summed one window row at a time over all positions and steps (``fused._row_passes``, for
    blocks too big for L2) give the whole-window sums' spikes, counts, logits and membranes bit for
    bit, for every layer of the fusable net (stride 2, padding in y only, joined windows or not)."""
    rng = np.random.default_rng(23)
    sensor, T = (16, 14, 2), 5
    events = random_events(rng, sensor, 16 * 14 * 2 * 3)
    net = fusable_net(rng, LIFS[kind])
    runs = [run_with_state(net, events, sensor, T, replace(ALWAYS_GATHER, row_pass_bytes=limit))
            for limit in (1 << 62, 0)]  # never, always
    assert [{step.rows for step in steps_of(out, "gather+neuron")} for out, _ in runs] == [{False}, {True}]
    assert sum(runs[0][0].spikes_per_layer.values()) > 0
    same_runs(*runs)

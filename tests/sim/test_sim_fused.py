"""A gathered conv and the LIF or MLF layer it feeds, in one pass (``fused.gather_neuron``): the
dense run's spikes, and exactly the two-pass path's currents, membranes, counts and logits."""

import math

import numba as nb
import numpy as np
import pytest
import torch
from torch import nn

from sim_testnets import TimeSequential, dyadic_, random_events
from snnres.neurons import LIF, MLF
from snnres.sim import EventSimulator, fused, kernels, simulator
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


def run_with_state(net, events, sensor, T):
    """The result and the final membranes ``{node: (v, awake)}`` of a one-shot run, run a second
    time with every reused buffer poisoned (the kernels must write all they read)."""
    sim = EventSimulator(net)
    sim.run(events, sensor, T)
    for buffer in sim.graph((sensor[2], sensor[1], sensor[0])).scratch.__dict__.values():
        buffer[...] = np.nan if buffer.dtype.kind == "f" else np.iinfo(buffer.dtype).max
    stream = sim.stream(record=True)
    stream.push_events_tonic(events, sensor, T)
    return stream.result(), stream.state.membranes


def fused_calls(monkeypatch, record) -> list:
    """Spy on ``fused.gather_neuron``: ``record(args)`` of every call, in order."""
    calls, gather_neuron = [], fused.gather_neuron
    monkeypatch.setattr(fused, "gather_neuron", lambda *a: calls.append(record(a)) or gather_neuron(*a))
    return calls


def gather_whenever_possible(monkeypatch) -> None:
    """Gather every conv that can be gathered, busy or not (``gather_pays``' shape conditions only)."""
    pays = kernels.gather_pays
    monkeypatch.setattr(kernels, "gather_pays", lambda nnz, steps, geometry, w_t, fused, width: nnz > 0 and pays(
        1 << 40, steps, geometry, w_t, fused, width))


def same_counts(a, b):
    assert torch.equal(a.logits, b.logits)
    assert a.sops == b.sops and a.macs == b.macs
    assert a.neuron_updates == b.neuron_updates and a.spikes_per_layer == b.spikes_per_layer


@pytest.mark.parametrize("kind", list(LIFS))
def test_fused_matches_dense_and_two_pass(kind, monkeypatch):
    rng = np.random.default_rng(len(kind))
    sensor, T = (15, 13, 2) if kind in ("soft", "slow") else (16, 14, 2), 6  # 15 x 13: an odd number of 32-blocks
    net = fusable_net(rng, LIFS[kind])
    events = random_events(rng, sensor, 16 * 14 * 2 * 3)
    calls = fused_calls(monkeypatch, lambda args: (args[8].shape, args[-1]))  # v [K, N], width
    gather_whenever_possible(monkeypatch)
    dense = assert_same_run(net, events, sensor, T)
    sizes = sorted(int(np.prod(train.shape[1:])) for train in dense.spike_trains.values())
    assert sorted(shape[1] for shape, _ in calls) == sizes, "every neuron layer fuses"
    levels = calls[0][0][0]
    assert [width for _, width in calls] == [32, 64, 32, 128 if levels == 1 else 64]
    out, membranes = run_with_state(net, events, sensor, T)
    assert sum(out.spikes_per_layer.values()) > 0
    monkeypatch.setattr(simulator, "fuses", lambda sig, node: False)
    two_pass, two_pass_membranes = run_with_state(net, events, sensor, T)
    same_counts(out, two_pass)
    for name, train in two_pass.spike_trains.items():
        assert torch.equal(out.spike_trains[name], train)
    for index, (v, awake) in two_pass_membranes.items():
        np.testing.assert_array_equal(membranes[index][0].view(np.uint32), v.view(np.uint32))
        np.testing.assert_array_equal(membranes[index][1], awake)


def test_fused_state_carries_into_two_pass_chunks(monkeypatch):
    """Busy steps (fused), then quiet ones (the convs scatter, the LIF layers run alone), then busy
    again, streamed in chunks: the membranes and 'away from rest' flags carry over both ways."""
    rng = np.random.default_rng(5)
    net = fusable_net(rng, LIFS["soft"])
    frames = (rng.random((8, 2, 14, 16)) < 0.5).astype(np.float32)
    frames[2:6] *= rng.random((4, 2, 14, 16)) < 0.02
    one_shot = EventSimulator(net).run(torch.from_numpy(frames), record=True)
    calls = fused_calls(monkeypatch, lambda args: 1)
    pays = kernels.gather_pays
    monkeypatch.setattr(kernels, "gather_pays", lambda *a: pays(*a[:4], False))  # the quiet steps scatter
    stream = EventSimulator(net).stream(record=True)
    fused_chunks = []
    for lo in range(0, 8, 2):
        before = len(calls)
        stream.push_frames(frames[lo:lo + 2])
        fused_chunks.append(len(calls) - before)
    assert min(fused_chunks) < fused_chunks[0] == fused_chunks[3], fused_chunks  # some layers switch
    streamed = stream.result()
    same_counts(streamed, one_shot)
    monkeypatch.setattr(simulator, "fuses", lambda sig, node: False)
    same_counts(streamed, EventSimulator(net).run(torch.from_numpy(frames)))


def random_bits(rng, levels, steps, neurons, rate=0.07):
    """Spike bits ``[K, T, N]`` (bool) and the same as ``fused.gather_neuron``'s words ``[K, T, N / 64]``."""
    bits = rng.random((levels, steps, neurons)) < rate
    padded = np.pad(bits, ((0, 0), (0, 0), (0, -neurons % 64)))  # the unused high bits of the last word: 0
    return bits, np.packbits(padded, axis=2, bitorder="little").view(np.uint64)


@pytest.mark.parametrize("levels", [1, 3])
def test_emit_bits_lists_neurons_and_levels_in_order(levels):
    rng = np.random.default_rng(levels)
    bits, _ = random_bits(rng, levels, 5, 3 * 64)
    bits[:, 2] = False
    bits[0, 3, -1] = bits[-1, 3, 0] = True
    words = np.packbits(bits, axis=2, bitorder="little").view(np.uint64)
    ptr, spikes = fused.bit_counts(words)
    idx, val = fused.emit_bits(words, ptr)
    counts = bits.sum(axis=0)  # levels fired per neuron and step
    for t in range(5):
        assert idx[ptr[t]:ptr[t + 1]].tolist() == np.flatnonzero(counts[t]).tolist()
        assert val[ptr[t]:ptr[t + 1]].tolist() == counts[t][counts[t] > 0].tolist()
    assert ptr[-1] == (counts > 0).sum()
    assert spikes == bits.sum()


@pytest.mark.parametrize("levels, c_in, kernel, stride, padding", [
    (1, 64, 3, 1, 1), (1, 32, 3, 2, 1), (3, 96, 3, 1, 0), (2, 128, (1, 3), (2, 1), (0, 2)), (1, 160, 1, 1, 0)])
def test_bits_to_sites_is_site_index_of_the_list(levels, c_in, kernel, stride, padding):
    """``fused.bits_to_sites`` (sites, codes, level counts and SOP counts straight from the bits) equals
    ``kernels.site_index`` on ``emit_bits``'s list, for channels that fill words, share them (32) or
    straddle them (96, 160), with one and several levels."""
    rng = np.random.default_rng(c_in + levels)
    h_in, w_in, c_out, steps = 7, 9, 64, 4
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding)
    bits, words = random_bits(rng, levels, steps, h_in * w_in * c_in, rate=0.1)
    h_out, w_out = conv(torch.zeros(1, c_in, h_in, w_in)).shape[2:]
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    geometry = np.array([c_in, w_in, h_out, w_out, sh, sw, ph, pw, 1, 1], dtype=np.int64)
    ptr, _ = fused.bit_counts(words)
    idx, val = fused.emit_bits(words, ptr)
    n = int(ptr[-1])
    want = [np.empty((steps, h_in * w_in + 1), np.int64), np.empty(n, np.int64), np.zeros(steps), np.zeros(steps)]
    assert kernels.site_index(ptr, idx, val, levels == 1, geometry, kh, kw, c_out, *want)
    got = [np.full_like(want[0], -1), np.full_like(want[1], -1), np.zeros(steps), np.zeros(steps)]
    got_val = np.full(n, np.nan, np.float32) if levels > 1 else np.ones(n, np.float32)
    fused.bits_to_sites(words, ptr, geometry, kh, kw, c_out, got[0], got[1], got_val, got[2], got[3])
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got_val, val)
    assert want[2].sum() > want[3].sum() if levels > 1 else np.array_equal(want[2], want[3])


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
    gather_whenever_possible(monkeypatch)
    out = assert_same_run(net, events, sensor, T)
    assert calls and (arch != "ds-resnet8" or min(calls) == 3), calls  # DS-ResNet: 3-level MLF layers
    monkeypatch.setattr(simulator, "fuses", lambda sig, node: False)
    same_counts(out, EventSimulator(net).run(events, sensor, T, record=True))


@nb.njit
def _add_rows(w, code, val, bounds, shift, scaled, acc16, acc32, acc64):
    for k in range(bounds.shape[0]):
        start, stop = bounds[k, 0], bounds[k, 1]
        if scaled:
            kernels.add_rows(acc16, w[0], code, val, start, stop, shift, True, 16)
            kernels.add_rows(acc32, w[1], code, val, start, stop, shift, True, 32)
            kernels.add_rows(acc64, w[2], code, val, start, stop, shift, True, 64)
        else:
            kernels.add_rows(acc16, w[0], code, val, start, stop, shift, False, 16)
            kernels.add_rows(acc32, w[1], code, val, start, stop, shift, False, 32)
            kernels.add_rows(acc64, w[2], code, val, start, stop, shift, False, 64)


@pytest.mark.parametrize("scaled", [False, True])
def test_add_rows_is_the_scalar_loop(scaled):
    """``kernels.add_rows`` (16-lane vectors, one loop) against numpy's float32 ``acc += (val[j] *)
    w[code[j] + shift]`` event by event, bit for bit, for blocks of 16, 32 and 64 lanes; empty and
    reversed ranges add nothing."""
    rng = np.random.default_rng(5)
    w = [rng.standard_normal((12, width)).astype(np.float32) for width in (16, 32, 64)]
    code = rng.integers(0, 9, 40)
    val = rng.integers(1, 4, 40).astype(np.float32) * np.float32(0.7)
    bounds = np.array([[0, 5], [5, 5], [9, 7], [11, 40], [39, 40]])
    accs = [rng.standard_normal(width).astype(np.float32) for width in (16, 32, 64)]
    expected = [a.copy() for a in accs]
    for start, stop in bounds:
        for j in range(start, stop):
            for e, wk in zip(expected, w):
                e += val[j] * wk[code[j] + 3] if scaled else wk[code[j] + 3]
    _add_rows(tuple(w), code, val, bounds, 3, scaled, *accs)
    for got, want in zip(accs, expected):
        np.testing.assert_array_equal(got, want)


@nb.njit
def _ge_bits(h16, h32, h64, threshold):
    return kernels.ge_bits(h16, threshold, 16), kernels.ge_bits(h32, threshold, 32), kernels.ge_bits(h64, threshold,
                                                                                                     64)


def test_ge_bits_packs_the_comparison_in_lane_order():
    """Bit ``o`` of ``kernels.ge_bits`` is ``h[o] >= threshold``: equal values fire, NaN does not."""
    rng = np.random.default_rng(6)
    threshold = np.float32(0.5)
    hs = [rng.choice(np.array([0.25, 0.5, 0.75, np.nan, -1.0], np.float32), width) for width in (16, 32, 64)]
    hs[2][63] = threshold  # the top bit of a full word
    for h, word in zip(hs, _ge_bits(*hs, threshold)):
        want = sum(1 << o for o in range(h.size) if h[o] >= threshold)
        assert int(word) == want

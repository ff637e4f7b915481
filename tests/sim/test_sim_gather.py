"""The output-stationary conv kernel (``conv_gather``, wide layers with busy inputs; with the LIF
or MLF layer it feeds: ``fused.gather_neuron``) gives the dense run's spikes and exactly the scatter
kernel's currents, counts and logits."""

import numba as nb
import numpy as np
import pytest
import torch
from torch import nn

from sim_testnets import TimeSequential, dyadic_, random_events
from snnres.neurons import LIF, MLF
from snnres.sim import EventSimulator, gather, kernels
from snnres.sim.plan import NEVER_GATHER
from test_sim_equality import assert_same_run


def wide_net(rng) -> TimeSequential:
    """Convs of 64 and 96 outputs (a padded register block), stride 2, y-dilation, a 3x5 kernel,
    an input without padding in x, a bias, an MLF layer. The 96-channel conv feeds a (1x1) pool,
    not a neuron layer, so it is gathered on its own (``conv_gather``); the 64-channel one is fused
    with its LIF layer."""
    torch.manual_seed(int(rng.integers(1 << 30)))
    net = TimeSequential(
        nn.Conv2d(2, 16, 3, padding=1), nn.BatchNorm2d(16), LIF(tau=2.0, v_threshold=0.5),
        nn.Conv2d(16, 96, 3, stride=2, padding=(2, 1), dilation=(2, 1)), nn.BatchNorm2d(96), nn.AvgPool2d(1), MLF(),
        nn.Conv2d(96, 64, (3, 5), padding=(1, 0), bias=True), nn.BatchNorm2d(64), LIF(tau=2.0, v_threshold=0.5),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 5),
    )
    return dyadic_(net, rng)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gather_matches_dense_scatter_and_reference(seed):
    rng = np.random.default_rng(seed)
    sensor, T = (18, 14, 2), 5
    net = wide_net(rng)
    events = random_events(rng, sensor, 18 * 14 * 2 * 3)
    out = assert_same_run(net, events, sensor, T)
    kernels_run = [step.kernel for step in out.plan.steps if step.layer in ("3", "7")]
    assert kernels_run == ["gather", "gather+neuron"], "both wide layers (busy inputs) should have been gathered"
    for other in (EventSimulator(net, costs=NEVER_GATHER).run(events, sensor, T),
                  EventSimulator(net, strategy="reference").run(events, sensor, T)):
        assert torch.equal(out.logits, other.logits)
        assert out.sops == other.sops and out.macs == other.macs
        assert out.neuron_updates == other.neuron_updates and out.spikes_per_layer == other.spikes_per_layer


def test_site_index_rejects_unsorted_steps():
    ptr, idx, val = np.array([0, 2]), np.array([5, 3]), np.ones(2, np.float32)
    geometry = np.array([1, 4, 2, 4, 1, 1, 1, 1, 1, 1])
    fans = np.zeros(1), np.zeros(1)
    assert not gather.site_index(ptr, idx, val, True, geometry, 3, 3, 1, np.empty((1, 9), np.int64),
                                  np.empty(2, np.int64), *fans)


@nb.njit
def _divide_all(n, d):
    q, r = np.empty_like(n), np.empty_like(n)
    for i in range(n.size):
        q[i], r[i] = kernels.divide(n[i], d[i], 1.0 / d[i])
    return q, r


def test_divide_is_integer_divmod():
    """``kernels.divide`` (float reciprocal, corrected) equals ``divmod`` from 0 to 2**52 - 1, at exact
    multiples and one below them, for small and large divisors."""
    rng = np.random.default_rng(3)
    d = np.concatenate([rng.integers(1, 10, 4000), rng.integers(1, 1 << 20, 4000), rng.integers(1, 1 << 40, 2000)])
    n = np.concatenate([rng.integers(0, 1 << 52, 6000), rng.integers(0, 1000, 4000)])
    multiples = (n // d) * d
    n = np.concatenate([n, multiples, np.maximum(multiples - 1, 0), np.full(3, (1 << 52) - 1)])
    d = np.concatenate([d, d, d, np.array([1, 3, (1 << 26) + 1])])
    q, r = _divide_all(n.astype(np.int64), d.astype(np.int64))
    np.testing.assert_array_equal(q, n // d)
    np.testing.assert_array_equal(r, n % d)


@pytest.mark.parametrize("values, expected", [
    ([], True), ([1, 1, 1], True), ([1, 2, 1], False), ([1, np.nextafter(np.float32(1), np.float32(2))], False), ([1, np.nan], False),
    ([0.5, 1], False),
])
def test_all_ones_is_numpys(values, expected):
    val = np.array(values, dtype=np.float32)
    assert kernels.all_ones(val) is expected == bool(np.all(val == 1))


@pytest.mark.parametrize("dtype, scale", [(np.float32, 1.0), (np.float32, 9.0), (np.float64, 4.0)])
def test_compact_serial_and_parallel_agree(dtype, scale, monkeypatch):
    """``kernels.compact`` of a small array (one serial call) and of a large one (counted, then filled
    in parallel) list the same non-zero entries, values divided by ``scale``."""
    rng = np.random.default_rng(4)
    dense = (rng.normal(size=(7, 300)) * (rng.random((7, 300)) < 0.2)).astype(dtype)
    dense[2] = 0
    dense[3, :5] = -0.0
    want_t, want_i = np.nonzero(dense)
    want = (np.searchsorted(want_t, np.arange(8)), want_i, (dense[want_t, want_i] / dense.dtype.type(scale)))
    for small in (1 << 62, 0):
        monkeypatch.setattr(kernels, "SMALL", small)
        ptr, idx, val = kernels.compact(dense, scale)
        np.testing.assert_array_equal(ptr, want[0])
        np.testing.assert_array_equal(idx, want[1])
        np.testing.assert_array_equal(val, want[2].astype(np.float32))

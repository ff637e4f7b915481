"""``kernels.pool_scatter`` against torch's pooling on the same dense input."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from snnres.sim import bits, kernels


@pytest.mark.parametrize("kernel, stride, padding", [
    (2, 2, 0), (2, 2, 1), (3, 3, 0), (2, 3, 0), (3, 2, 1), ((1, 7), (1, 7), 0), (7, 7, 0)])
@pytest.mark.parametrize("use_max", [False, True])
def test_pool_scatter_is_torch_pooling(kernel, stride, padding, use_max):
    """Sums (average pooling with padding counted, times the window size) and maxima of
    non-negative event counts; windows that tile, leave gaps (k < stride), overlap (3, stride 2)
    or cover the whole 7x7 map."""
    rng = np.random.default_rng(11)
    steps, c, h, w = 3, 5, 7, 7
    dense = (rng.random((steps, h, w, c)) < 0.3) * rng.integers(1, 4, (steps, h, w, c))
    flat = dense.reshape(steps, -1).astype(np.float32)
    ptr = np.concatenate([[0], np.cumsum((flat != 0).sum(axis=1))]).astype(np.int64)
    idx = np.concatenate([np.flatnonzero(row) for row in flat]).astype(np.int64)
    val = flat[flat != 0]
    x = torch.from_numpy(dense.transpose(0, 3, 1, 2).astype(np.float32))
    k, s, p = (torch.nn.modules.utils._pair(v) for v in (kernel, stride, padding))
    if use_max:
        want = F.max_pool2d(x, k, s, p)
    else:
        want = F.avg_pool2d(x, k, s, p, count_include_pad=True) * (k[0] * k[1])
    h_out, w_out = want.shape[2:]
    geometry = np.array([c, w, h_out, w_out, *k, *s, *p], dtype=np.int64)
    out = np.zeros((steps, h_out * w_out * c), dtype=np.float32)
    kernels.pool_scatter(ptr, idx, val, geometry, h, out, use_max)
    got = torch.from_numpy(out.reshape(steps, h_out, w_out, c).transpose(0, 3, 1, 2).copy())
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("channels, positions", [(64, 49), (128, 1), (192, 12)])
def test_channel_counts_is_global_average_pooling_of_the_bits(channels, positions):
    """``bits.channel_counts`` (a global pool read straight off the spike bit planes) against torch's
    global average pooling of the same spikes, times the number of positions."""
    rng = np.random.default_rng(channels)
    steps = 4
    spiked = rng.random((1, steps, positions * channels)) < 0.2
    words = np.packbits(spiked, axis=2, bitorder="little").view(np.uint64)
    out = np.full((steps, channels), np.nan, np.float32)
    bits.channel_counts(words, channels, out)
    x = torch.from_numpy(spiked[0].reshape(steps, positions, 1, channels).transpose(0, 3, 1, 2).astype(np.float32))
    want = F.adaptive_avg_pool2d(x, 1).flatten(1) * positions
    torch.testing.assert_close(torch.from_numpy(out), want, rtol=0, atol=1e-4)


def test_global_pool_of_fused_spikes_reads_the_bits():
    """A global average pool behind a fused LIF layer of 256 channels counts the bits
    (``channel_counts``) and gives the reference's pooling of the spikes exactly: logits and counts."""
    from sim_testnets import random_events
    from snnres.sim import EventSimulator
    from snnres.sim.plan import ALWAYS_GATHER
    from test_sim_fused import LIFS, fusable_net, same_counts

    rng = np.random.default_rng(4)
    sensor, T = (16, 14, 2), 5
    net = fusable_net(rng, LIFS["hard"])
    events = random_events(rng, sensor, 16 * 14 * 2 * 3)
    out = EventSimulator(net, costs=ALWAYS_GATHER).run(events, sensor, T)
    assert [step.kernel for step in out.plan.steps if step.layer == "11"] == ["channel-counts"]
    same_counts(out, EventSimulator(net, strategy="reference").run(events, sensor, T))

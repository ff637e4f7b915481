"""Spike bit planes (``snnres.sim.bits``): counted, listed, and indexed into a gathered conv's sites."""

import numpy as np
import pytest
import torch
from torch import nn

from snnres.sim import bits, gather, intrinsics


def random_bits(rng, levels, steps, neurons, rate=0.07):
    """Spike bits ``[K, T, N]`` (bool) and the same as ``fused.gather_neuron``'s words ``[K, T, N / 64]``."""
    spiked = rng.random((levels, steps, neurons)) < rate
    padded = np.pad(spiked, ((0, 0), (0, 0), (0, -neurons % 64)))  # the unused high bits of the last word: 0
    return spiked, np.packbits(padded, axis=2, bitorder="little").view(np.uint64)


@pytest.mark.parametrize("levels", [1, 3])
def test_emit_bits_lists_neurons_and_levels_in_order(levels):
    rng = np.random.default_rng(levels)
    spiked, _ = random_bits(rng, levels, 5, 3 * 64)
    spiked[:, 2] = False
    spiked[0, 3, -1] = spiked[-1, 3, 0] = True
    words = np.packbits(spiked, axis=2, bitorder="little").view(np.uint64)
    ptr, spikes = bits.bit_counts(words)
    idx, val = bits.emit_bits(words, ptr)
    counts = spiked.sum(axis=0)  # levels fired per neuron and step
    for t in range(5):
        assert idx[ptr[t]:ptr[t + 1]].tolist() == np.flatnonzero(counts[t]).tolist()
        assert val[ptr[t]:ptr[t + 1]].tolist() == counts[t][counts[t] > 0].tolist()
    assert ptr[-1] == (counts > 0).sum()
    assert spikes == spiked.sum()


@pytest.mark.parametrize("levels, c_in, kernel, stride, padding, rate", [
    (1, 64, 3, 1, 1, 0.1), (1, 32, 3, 2, 1, 0.1), (3, 96, 3, 1, 0, 0.1), (2, 128, (1, 3), (2, 1), (0, 2), 0.1),
    (1, 160, 1, 1, 0, 0.1), (1, 64, 3, 1, 1, 0.7), (1, 48, 3, 1, 1, 0.3), (1, 96, 3, 2, 0, 0.0)])
def test_bits_to_sites_is_site_index_of_the_list(levels, c_in, kernel, stride, padding, rate):
    """``bits.bits_to_sites`` (sites, codes, level counts and SOP counts straight from the bits) equals
    ``gather.site_index`` on ``emit_bits``'s list, for channels that fill words, share them (32) or
    straddle them (96, 160, 48), with one and several levels; for one level and whole 32-bit halves
    the codes are written branch-free (``set_bits32``), also with more than 16 spikes in a half (0.7),
    and with none at all."""
    rng = np.random.default_rng(c_in + levels)
    h_in, w_in, c_out, steps = 7, 9, 64, 4
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding)
    _, words = random_bits(rng, levels, steps, h_in * w_in * c_in, rate=rate)
    h_out, w_out = conv(torch.zeros(1, c_in, h_in, w_in)).shape[2:]
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    geometry = np.array([c_in, w_in, h_out, w_out, sh, sw, ph, pw, 1, 1], dtype=np.int64)
    ptr, _ = bits.bit_counts(words)
    idx, val = bits.emit_bits(words, ptr)
    n = int(ptr[-1])
    want = [np.empty((steps, h_in * w_in + 1), np.int64), np.empty(n, np.int64), np.zeros(steps), np.zeros(steps)]
    assert gather.site_index(ptr, idx, val, levels == 1, geometry, kh, kw, c_out, *want)
    code = np.full(n + intrinsics.SET_BITS_SLACK, -1, np.int32)
    got = [np.full_like(want[0], -1), code[:n], np.zeros(steps), np.zeros(steps)]
    got_val = np.full(n, np.nan, np.float32) if levels > 1 else np.ones(n, np.float32)
    bits.bits_to_sites(words, ptr, geometry, kh, kw, c_out, got[0], code, got_val, got[2], got[3])
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got_val, val)
    assert want[2].sum() > want[3].sum() if levels > 1 else np.array_equal(want[2], want[3])

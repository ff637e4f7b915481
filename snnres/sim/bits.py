"""Spikes as bit planes ``fired [K, T, N / 64]`` (``fused``'s output: neuron ``i`` is bit ``i % 64`` of
word ``i // 64``, one plane per level): counted, listed as CSR when a reader needs the list, or
indexed straight into a gathered conv's input sites (``bits_to_sites``)."""

from __future__ import annotations

import numba as nb
import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

from .intrinsics import SET_BITS_SLACK, popcount, set_bits32
from .gather import reach


@nb.njit(parallel=True, cache=True)
def bit_counts(fired):
    """``(ptr, spikes)`` of the spike bits ``fired [K, T, N / 64]`` (``_gather_neuron``): ``ptr[t]:ptr[t + 1]``
    will hold step ``t``'s neurons that fired at some level (one popcount per word), ``spikes`` is
    the number of level crossings (a neuron firing at ``k`` levels counts ``k``)."""
    levels, steps, n_words = fired.shape
    counts = np.zeros(steps + 1, dtype=np.int64)
    crossings = np.zeros(steps, dtype=np.int64)
    for t in nb.prange(steps):
        total, every = 0, 0
        for k in range(n_words):
            total += popcount(_any_level(fired, t, k))
            if levels > 1:
                for level in range(levels):
                    every += popcount(fired[level, t, k])
        counts[t + 1] = total
        crossings[t] = every if levels > 1 else total
    return np.cumsum(counts), crossings.sum()


@nb.njit(parallel=True, cache=True)
def emit_bits(fired, ptr):
    """CSR ``(idx, val)`` of the spike bits ``fired`` (``ptr``: ``bit_counts``): per step the neurons
    that fired at some level, in increasing order, with the number of levels that fired (1 for
    LIF). A word holds ~3 spikes at 5% activity: one trailing-zero count per spike finds them."""
    levels, steps, n_words = fired.shape
    idx = np.empty(ptr[steps], dtype=np.int64)
    val = np.ones(ptr[steps], dtype=np.float32)
    for t in nb.prange(steps):
        j = ptr[t]
        for k in range(n_words):
            word = _any_level(fired, t, k)
            while word != 0:
                bit = np.int64(trailing_zeros(word))
                idx[j] = k * 64 + bit
                if levels > 1:
                    val[j] = _levels_at(fired, t, k, bit)
                j += 1
                word &= word - np.uint64(1)
    return idx, val


@nb.njit(parallel=True, cache=True)
def bits_to_sites(fired, ptr, geometry, kh, kw, c_out, site_ptr, code, val, fan_weighted, fan_plain):
    """``gather.site_index`` straight from the spike bits ``fired`` of the layer that feeds a
    gathered conv (``geometry``: the conv's; neuron ``p * C_in + c`` is input site ``p``, channel
    ``c``), without listing the spikes first: ``site_ptr``, ``code`` (int32), the level counts ``val``
    (when ``K > 1``) and the SOP counts, equal to ``site_index`` on ``emit_bits``'s list. One level
    and whole 32-bit halves of channels per site: each half's codes are written without a branch
    (``set_bits32``; 3.7x faster on the benchmark's layers at 5% activity) while ``SET_BITS_SLACK``
    entries are left in the step's part of ``code`` (or at its end: the caller leaves them there)."""
    levels, steps, n_words = fired.shape
    c_in, w_in = geometry[0], geometry[1]
    n_sites = site_ptr.shape[1] - 1
    reach_y, reach_x = reach(geometry, kh, kw, n_sites // w_in)
    taps = kh * kw
    halves = fired.view(np.uint32)
    per = c_in // 32
    halved = levels == 1 and c_in % 32 == 0
    for t in nb.prange(steps):
        sp = site_ptr[t]
        j = ptr[t]
        limit = ptr[t + 1] if t + 1 < steps else code.shape[0]  # no store past: other steps run in parallel
        weighted, plain, y, x = 0, 0, 0, 0
        for site in range(n_sites):
            sp[site] = j
            start, count = j, 0
            if halved and j + per * SET_BITS_SLACK <= limit:  # each half moves j by at most 32
                for q in range(per):
                    j += set_bits32(halves[0, t, site * per + q], code, j, taps, q * 32 * taps + x)
            else:  # several levels, channels not in halves, or the step's last entries: one at a time
                j, count = _site_codes(fired, t, site * c_in, c_in, taps, x, code, val, j)
            fan = reach_y[y] * reach_x[x] * c_out
            plain += (j - start) * fan
            weighted += (count if levels > 1 else j - start) * fan
            x += 1
            if x == w_in:
                x, y = 0, y + 1
        sp[n_sites] = j
        fan_weighted[t] = weighted
        fan_plain[t] = plain


@nb.njit(inline="always")
def _site_codes(fired, t, first, c_in, taps, x, code, val, j):
    """The codes (and level counts) of the spikes of one site (channels ``first..first + c_in`` of step
    ``t``) from entry ``j`` on, one bit at a time; the next entry and the level crossings."""
    levels = fired.shape[0]
    count = 0
    for k in range(first >> 6, (first + c_in + 63) >> 6):  # the words holding the site's channels
        word = _any_level(fired, t, k)
        lo, hi = first - k * 64, first + c_in - k * 64
        if lo > 0:
            word &= ~((np.uint64(1) << np.uint64(lo)) - np.uint64(1))
        if hi < 64:
            word &= (np.uint64(1) << np.uint64(hi)) - np.uint64(1)
        while word != 0:
            bit = np.int64(trailing_zeros(word))
            code[j] = (k * 64 + bit - first) * taps + x
            if levels > 1:
                val[j] = _levels_at(fired, t, k, bit)
                count += np.int64(val[j])
            j += 1
            word &= word - np.uint64(1)
    return j, count


@nb.njit(inline="always")
def _levels_at(fired, t, k, bit):
    """The number of levels at which bit ``bit`` of word ``k`` of step ``t`` fired."""
    n = np.uint64(0)
    for level in range(fired.shape[0]):
        n += (fired[level, t, k] >> np.uint64(bit)) & np.uint64(1)
    return np.float32(n)


@nb.njit(inline="always")
def _any_level(fired, t, k):
    """Word ``k`` of step ``t``: the neurons that fired at some level."""
    word = fired[0, t, k]
    for level in range(1, fired.shape[0]):
        word |= fired[level, t, k]
    return word


@nb.njit(parallel=True, cache=True)
def channel_counts(fired, channels, out):
    """``out[t, c]`` = the number of positions whose channel ``c`` fired at step ``t`` (one level,
    ``channels`` a multiple of 64): a global pooling of the spike bits without listing them (a
    trailing-zero count per spike; 0.11 -> ~0.02 ms for the benchmark network's last layer at 5%)."""
    steps, n_words = fired.shape[1], fired.shape[2]
    per = channels // 64
    for t in nb.prange(steps):
        counts = np.zeros(channels, dtype=np.int32)
        row = fired[0, t]
        for p in range(n_words // per):
            for q in range(per):
                word = row[p * per + q]
                while word != 0:
                    counts[q * 64 + np.int64(trailing_zeros(word))] += 1
                    word &= word - np.uint64(1)
        for c in range(channels):
            out[t, c] = counts[c]

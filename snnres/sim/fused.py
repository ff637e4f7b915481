"""A conv layer and the LIF or MLF layer it feeds, in one pass (numba): ``gather_neuron``.

``conv_gather`` stores a ``[T, N]`` current that the neuron pass reads back; at a few percent
activity that round trip and the neuron pass's per-position bookkeeping cost as much as the
sums. Here, for each block of 128, 64 or 32 output channels and each output position, the
window's events are summed in registers step after step (``kernels.window_sum``, the same sums
in the same order), and the membranes of those neurons stay in registers over the steps, so the
current never reaches memory. Same spikes, membranes and neuron-update counts as ``conv_gather``
followed by ``neuron_chunk`` (the update is the same float32 arithmetic, ``kernels._charge``).
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba import types
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

from .kernels import (BLOCK, NARROW, WIDE, _charge, _stack_f32, _stack_i32, exact_reciprocal, ge_bits, reach, specialise,
                      window_sum)


def _gather_neuron(val, binary, site_ptr, code, geometry, w_b, kh, bias, v, awake, thresholds, consts, decay_input,
                   hard, fired):
    """Steps of ``conv -> LIF/MLF`` (``LEVELS`` levels) in whole blocks of ``WIDTH`` (128, 64 or 32)
    output channels (``C_out % WIDTH == 0``); compiled per (width, levels): ``GATHER_NEURON``.

    Neuron ``i = p * C + c`` gets ``X = sum_window val * w + bias[c]``, then per level ``k``
    (equations of ``kernels.neuron_part``) ``H = V_k + (X - (V_k - V_r)) / tau`` (or ``V_k - (V_k -
    V_r) / tau + X``), ``S_k = H >= V_th,k``, ``V_k = V_r`` (hard) or ``H - V_th,k`` (soft) on a
    spike, else ``H``. ``fired [K, T, N / 64]`` (uint64) gets ``S_k`` as bits (neuron ``i``: bit
    ``i % 64`` of word ``i // 64``; a block of 32 writes its 32-bit half); ``v [K, N]`` and
    ``awake [P]`` (a neuron away from rest) change in place. Returns the neuron updates:
    neuron-steps with ``X != 0`` or some ``V_k != V_r`` (a neuron at rest without input stays
    there: computing it changes nothing).
    """
    width, levels = WIDTH, LEVELS
    c_in, w_in, h_out, w_out, sh, sw, ph, pw, dh, dw = geometry
    kw = w_b.shape[1] // (c_in * kh)
    halves = fired.view(np.uint32)  # little-endian: half 2k (2k + 1) is word k's low (high) 32 bits
    steps, n_pos = site_ptr.shape[0], h_out * w_out
    h_in = (site_ptr.shape[1] - 1) // w_in
    c_out = v.shape[1] // n_pos
    tau, vr = consts[0], consts[1]
    inv = exact_reciprocal(tau)
    n_blk = w_b.shape[0]
    updates = np.zeros((n_blk, h_out), dtype=np.int64)
    still = np.zeros((n_blk, n_pos), dtype=np.uint8)
    for blk in range(n_blk):  # one block's weights stay in L2 over all positions
        lo = blk * width
        w, b = w_b[blk], bias[lo:lo + width]
        for oy in nb.prange(h_out):
            acc = nb.carray(_stack_f32(WIDTH), WIDTH)  # both kept in registers
            mem = nb.carray(_stack_f32(MEMBRANES), MEMBRANES)  # level k: mem[k * width:]
            hs = nb.carray(_stack_f32(WIDTH), WIDTH)
            busy_count = nb.carray(_stack_i32(WIDTH), WIDTH)  # per lane: no horizontal sum per step
            for o in range(width):
                busy_count[o] = 0
            for ox in range(w_out):
                p = oy * w_out + ox
                base = p * c_out + lo
                _load(v, mem, base, levels, width)
                for t in range(steps):
                    window_sum(site_ptr[t], h_in, code, val, binary, geometry, kh, kw, w, oy, ox, acc, width)
                    _step(acc, b, mem, hs, busy_count, thresholds, tau, inv, vr, decay_input, hard, fired, halves, t,
                          base, levels, width)
                moved = _store(v, mem, base, vr, levels, width)
                still[blk, p] = moved
            n_upd = 0
            for o in range(width):
                n_upd += busy_count[o]
            updates[blk, oy] = n_upd
    for p in range(n_pos):
        awake[p] = still[:, p].any()
    return updates.sum()


def _neuron_bits(current, touched, bias, visit_all, v, awake, thresholds, consts, decay_input, hard, fired):
    """A neuron layer fed by a current ``[T, N]`` (valid where ``touched [T, P]``; 0 elsewhere), as
    ``kernels.neuron_part`` computes it, position by position: a block of ``WIDTH`` neurons keeps
    its membranes in registers over all steps (``neuron_part`` goes step by step and reads and
    writes every membrane at every step), and spikes go to bit planes ``fired`` as in
    ``_gather_neuron``. A position is skipped only if no step touches it, it is at rest and
    ``visit_all`` (a bias, or a threshold at or below rest) is False: then it stays at rest. Same
    spikes, membranes, ``awake`` flags and update counts as ``neuron_part``. Compiled per (width,
    levels): ``NEURON_BITS``."""
    width, levels = WIDTH, LEVELS
    steps, n = current.shape
    n_pos = touched.shape[1]
    c = n // n_pos
    halves = fired.view(np.uint32)
    tau, vr = consts[0], consts[1]
    inv = exact_reciprocal(tau)
    n_blk = c // width
    updates = np.zeros((n_blk, n_pos), dtype=np.int64)
    still = np.zeros((n_blk, n_pos), dtype=np.uint8)
    for blk in range(n_blk):
        lo = blk * width
        b = bias[lo:lo + width]
        for p in nb.prange(n_pos):
            acc = nb.carray(_stack_f32(WIDTH), WIDTH)
            mem = nb.carray(_stack_f32(MEMBRANES), MEMBRANES)
            hs = nb.carray(_stack_f32(WIDTH), WIDTH)
            busy_count = nb.carray(_stack_i32(WIDTH), WIDTH)
            base = p * c + lo
            visit = visit_all or awake[p] != 0
            for t in range(steps):
                visit |= touched[t, p] != 0
            if not visit:  # at rest all along: no spike
                for t in range(steps):
                    for k in range(levels):
                        if WIDTH == 32:
                            halves[k, t, base // 32] = 0
                        else:
                            for part in range(WIDTH // 64):
                                fired[k, t, base // 64 + part] = 0
                continue
            for o in range(width):
                busy_count[o] = 0
            _load(v, mem, base, levels, width)
            for t in range(steps):
                row = current[t, base:base + width]
                flag = touched[t, p] != 0
                for o in range(width):
                    acc[o] = row[o] if flag else 0
                _step(acc, b, mem, hs, busy_count, thresholds, tau, inv, vr, decay_input, hard, fired, halves, t,
                      base, levels, width)
            still[blk, p] = _store(v, mem, base, vr, levels, width)
            n_upd = 0
            for o in range(width):
                n_upd += busy_count[o]
            updates[blk, p] = n_upd
    for p in range(n_pos):
        awake[p] = still[:, p].any()
    return updates.sum()


@nb.njit(inline="always")
def _load(v, mem, base, levels, width):
    """A block's membranes into ``mem`` (level ``k`` at ``mem[k * width:]``)."""
    for k in range(levels):
        vk = v[k, base:base + width]  # a 1-D slice: the copy vectorises (2-D indexing does not)
        for o in range(width):
            mem[k * width + o] = vk[o]


@nb.njit(inline="always")
def _store(v, mem, base, vr, levels, width):
    """``mem`` back into ``v``; whether a neuron is away from rest."""
    moved = False
    for k in range(levels):
        vk = v[k, base:base + width]
        for o in range(width):
            moved |= mem[k * width + o] != vr
            vk[o] = mem[k * width + o]
    return moved


@nb.njit(inline="always")
def _step(acc, b, mem, hs, busy_count, thresholds, tau, inv, vr, decay_input, hard, fired, halves, t, base, levels,
          width):
    """One step of a block of ``width`` neurons with input ``acc + b``: membranes ``mem``, spikes to bit planes,
    updates counted per lane (MLF neurons as ``neuron_part`` counts them)."""
    if levels > 1:
        for o in range(width):
            busy = acc[o] + b[o] != 0
            for k in range(levels):
                busy |= mem[k * width + o] != vr
            busy_count[o] += np.int32(busy)
    for k in range(levels):
        th = thresholds[k]
        for o in range(width):
            x = acc[o] + b[o]
            vc = mem[k * width + o]
            if levels == 1:
                busy_count[o] += np.int32((x != 0) | (vc != vr))
            h = _charge(vc, x, tau, inv, vr, decay_input)
            hs[o] = h
            mem[k * width + o] = (vr if hard else h - th) if h >= th else h
        if width == 32:
            halves[k, t, base // 32] = np.uint32(ge_bits(hs, th, 32))
        else:
            for part in range(width // 64):
                fired[k, t, base // 64 + part] = ge_bits(hs[part * 64:], th, 64)


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
    """``kernels.site_index`` straight from the spike bits ``fired`` of the layer that feeds a
    gathered conv (``geometry``: the conv's; neuron ``p * C_in + c`` is input site ``p``, channel
    ``c``), without listing the spikes first: ``site_ptr``, ``code``, the level counts ``val`` (when
    ``K > 1``) and the SOP counts, equal to ``site_index`` on ``emit_bits``'s list."""
    levels, steps, n_words = fired.shape
    c_in, w_in = geometry[0], geometry[1]
    n_sites = site_ptr.shape[1] - 1
    reach_y, reach_x = reach(geometry, kh, kw, n_sites // w_in)
    taps = kh * kw
    for t in nb.prange(steps):
        sp = site_ptr[t]
        j = ptr[t]
        weighted, plain, y, x = 0, 0, 0, 0
        for site in range(n_sites):
            sp[site] = j
            first, start, count = site * c_in, j, 0
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


@intrinsic
def popcount(typingctx, word):
    """The number of set bits of a uint64 (``llvm.ctpop``)."""
    def codegen(context, builder, signature, args):
        return builder.zext(builder.ctpop(args[0]), context.get_value_type(types.int64))
    return types.int64(types.uint64), codegen


MAX_LEVELS = 8  # MLF levels with a fused kernel (as on the GPU)
WIDTH, LEVELS, MEMBRANES = BLOCK, 1, BLOCK  # set per variant by ``kernels.specialise`` (MEMBRANES = WIDTH * LEVELS)
VARIANTS = [(width, levels) for width in (BLOCK, NARROW, WIDE) for levels in range(1, MAX_LEVELS + 1)]
GATHER_NEURON = {(width, levels): specialise(_gather_neuron, WIDTH=width, LEVELS=levels, MEMBRANES=width * levels)
                 for width, levels in VARIANTS}  # compiled when first used
NEURON_BITS = {(width, levels): specialise(_neuron_bits, WIDTH=width, LEVELS=levels, MEMBRANES=width * levels)
               for width, levels in VARIANTS}


def gather_neuron(val, binary, site_ptr, code, geometry, w_b, kh, bias, v, awake, thresholds, consts, decay_input,
                  hard, fired, width: int = BLOCK) -> int:
    """``_gather_neuron`` in blocks of ``width`` (128, 64 or 32) channels with ``len(thresholds)`` levels;
    ``w_b = kernels.conv_blocks(w_t, width)``. Returns the neuron updates."""
    return GATHER_NEURON[width, len(thresholds)](val, binary, site_ptr, code, geometry, w_b, kh, bias, v, awake,
                                                 thresholds, consts, decay_input, hard, fired)


def neuron_bits(current, touched, bias, visit_all, v, awake, thresholds, consts, decay_input, hard, fired,
                width: int = BLOCK) -> int:
    """``_neuron_bits`` in blocks of ``width`` channels with ``len(thresholds)`` levels. Returns the
    neuron updates."""
    return NEURON_BITS[width, len(thresholds)](current, touched, bias, visit_all, v, awake, thresholds, consts,
                                               decay_input, hard, fired)

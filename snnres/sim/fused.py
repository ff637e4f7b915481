"""A conv layer and the LIF layer it feeds, in one pass (numba): ``gather_lif``.

``conv_gather`` stores a ``[T, N]`` current that the neuron pass reads back; at a few percent
activity that round trip and the neuron pass's per-position bookkeeping cost as much as the
sums. Here, for each block of 64 (or 32) output channels and each output position, the
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

from .kernels import BLOCK, _charge, _stack_f32, exact_reciprocal, per_width, window_sum


def _gather_lif(val, binary, site_ptr, code, geometry, w_b, kh, bias, v, awake, threshold, consts, decay_input, hard,
                fired):
    """Steps of ``conv -> LIF`` in whole blocks of ``WIDTH`` (64 or 32: ``GATHER_LIF[width]``)
    output channels (``C_out % WIDTH == 0``).

    Neuron ``i = p * C + c`` gets ``X = sum_window val * w + bias[c]``, then (equations of
    ``kernels.neuron_part``, one level) ``H = V + (X - (V - V_r)) / tau`` (or ``V - (V - V_r) / tau
    + X``), ``S = H >= V_th``, ``V = V_r`` (hard) or ``H - V_th`` (soft) on a spike, else ``H``.
    ``fired [T, N / 64]`` (uint64) gets ``S`` as bits (neuron ``i``: bit ``i % 64`` of word
    ``i // 64``; a block of 32 writes its 32-bit half); ``v [1, N]`` and ``awake [P]`` (a neuron
    away from rest) change in place. Returns the neuron updates: neuron-steps with ``X != 0`` or
    ``V != V_r`` (a neuron at rest without input stays there: computing it changes nothing).
    """
    width = WIDTH
    c_in, w_in, h_out, w_out, sh, sw, ph, pw, dh, dw = geometry
    kw = w_b.shape[1] // (c_in * kh)
    halves = fired.view(np.uint32)  # little-endian: half 2k (2k + 1) is word k's low (high) 32 bits
    steps, n_pos = site_ptr.shape[0], h_out * w_out
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
            mem = nb.carray(_stack_f32(WIDTH), WIDTH)
            n_upd = 0
            for ox in range(w_out):
                p = oy * w_out + ox
                base = p * c_out + lo
                vp = v[0, base:base + width]
                for o in range(width):
                    mem[o] = vp[o]
                for t in range(steps):
                    window_sum(site_ptr[t], code, val, binary, geometry, kh, kw, w, oy, ox, acc, width)
                    word = np.uint64(0)
                    for o in range(width):
                        x = acc[o] + b[o]
                        vc = mem[o]
                        n_upd += (x != 0) | (vc != vr)
                        h = _charge(vc, x, tau, inv, vr, decay_input)
                        spike = h >= threshold
                        mem[o] = (vr if hard else h - threshold) if spike else h
                        word |= np.uint64(spike) << np.uint64(o)
                    if WIDTH == 64:
                        fired[t, base // 64] = word
                    else:
                        halves[t, base // 32] = np.uint32(word)
                moved = False
                for o in range(width):
                    moved |= mem[o] != vr
                    vp[o] = mem[o]
                still[blk, p] = moved
            updates[blk, oy] = n_upd
    for p in range(n_pos):
        awake[p] = still[:, p].any()
    return updates.sum()


@nb.njit(parallel=True, cache=True)
def emit_bits(fired):
    """CSR ``(ptr, idx, val)`` of the spike bits ``fired [T, N / 64]`` (``gather_lif``): per step the
    neurons that spiked, in increasing order, value 1. A word holds ~3 spikes at 5% activity:
    one popcount to count them, one trailing-zero count per spike to find them."""
    steps, n_words = fired.shape
    counts = np.zeros(steps + 1, dtype=np.int64)
    for t in nb.prange(steps):
        total = 0
        for k in range(n_words):
            total += popcount(fired[t, k])
        counts[t + 1] = total
    ptr = np.cumsum(counts)
    idx = np.empty(ptr[steps], dtype=np.int64)
    val = np.ones(ptr[steps], dtype=np.float32)
    for t in nb.prange(steps):
        j = ptr[t]
        for k in range(n_words):
            word = fired[t, k]
            while word != 0:
                idx[j] = k * 64 + np.int64(trailing_zeros(word))
                j += 1
                word &= word - np.uint64(1)
    return ptr, idx, val


@intrinsic
def popcount(typingctx, word):
    """The number of set bits of a uint64 (``llvm.ctpop``)."""
    def codegen(context, builder, signature, args):
        return builder.zext(builder.ctpop(args[0]), context.get_value_type(types.int64))
    return types.int64(types.uint64), codegen


WIDTH = BLOCK  # set per variant by ``kernels.per_width``
GATHER_LIF = per_width(_gather_lif)


def gather_lif(val, binary, site_ptr, code, geometry, w_b, kh, bias, v, awake, threshold, consts, decay_input, hard,
               fired, width: int = BLOCK) -> int:
    """``_gather_lif`` in blocks of ``width`` (64 or 32) channels; ``w_b = kernels.conv_blocks(w_t,
    width)``. Returns the neuron updates."""
    return GATHER_LIF[width](val, binary, site_ptr, code, geometry, w_b, kh, bias, v, awake, threshold, consts,
                             decay_input, hard, fired)

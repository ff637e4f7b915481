"""A conv layer and the LIF or MLF layer it feeds, in one pass (numba): ``gather_neuron``.

``conv_gather`` stores a ``[T, N]`` current that the neuron pass reads back; at a few percent
activity that round trip and the neuron pass's per-position bookkeeping cost as much as the
sums. Here, for each block of 128, 64 or 32 output channels and each output position, the
window's events are summed in registers step after step (``gather.window_sum``, the same sums
in the same order), and the membranes of those neurons stay in registers over the steps, so the
current never reaches memory. Same spikes, membranes and neuron-update counts as ``conv_gather``
followed by ``neuron_chunk`` (the update is the same float32 arithmetic as ``kernels._charge``).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .intrinsics import add_rows, ge_bits, stack_f32, stack_i32
from .gather import BLOCK, NARROW, WIDE, _window_row, specialise, window_sum
from .kernels import exact_reciprocal


def _gather_neuron(val, binary, site_ptr, code, geometry, w_b, kh, bias, v, awake, thresholds, consts, decay_input,
                   hard, fired, fresh):
    """Steps of ``conv -> LIF/MLF`` (``LEVELS`` levels) in whole blocks of ``WIDTH`` (128, 64 or 32)
    output channels (``C_out % WIDTH == 0``); compiled per (width, levels): ``GATHER_NEURON``.

    Neuron ``i = p * C + c`` gets ``X = sum_window val * w + bias[c]``, then per level ``k``
    (equations of ``kernels.neuron_part``) ``H = V_k + (X - (V_k - V_r)) / tau`` (or ``V_k - (V_k -
    V_r) / tau + X``), ``S_k = H >= thresholds[k]``, ``V_k = V_r`` (hard) or ``H - V_th,k`` (soft) on a
    spike, else ``H``. ``fired [K, T, N / 64]`` (uint64) gets ``S_k`` as bits (neuron ``i``: bit
    ``i % 64`` of word ``i // 64``; a block of 32 writes its 32-bit half); ``v [K, N]`` and
    ``awake [P]`` (a neuron away from rest) change in place; ``fresh``: ``v`` is not yet written, every
    neuron is at rest (a recording's first chunk: no pass to fill it). Returns the neuron updates:
    neuron-steps with ``X != 0`` or some ``V_k != V_r`` (a neuron at rest without input stays
    there: computing it changes nothing). ``ROWS`` (a constant): an output row's windows are summed one
    window row at a time (``_row_passes``), for blocks of more than ``ROW_PASS_BYTES`` of weights.
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
    for row in nb.prange(n_blk * h_out):  # one region for all blocks: a thread takes whole blocks where it
        # can (their weights stay in its L2), and every block sees the same events (balanced)
        blk, oy = row // h_out, row % h_out
        lo = blk * width
        w, b = w_b[blk], bias[lo:lo + width]
        acc = nb.carray(stack_f32(WIDTH), WIDTH)  # both kept in registers
        mem = nb.carray(stack_f32(MEMBRANES), MEMBRANES)  # level k: mem[k * width:]
        hs = nb.carray(stack_f32(WIDTH), WIDTH)
        busy_count = nb.carray(stack_i32(WIDTH), WIDTH)  # per lane: no horizontal sum per step
        for o in range(width):
            busy_count[o] = 0
        if ROWS:  # the window rows in turn, each over all positions and steps: one row's weights at a time
            sums = np.empty((w_out, steps, width), dtype=np.float32)
            _row_passes(site_ptr, h_in, code, val, binary, geometry, kh, kw, w, oy, acc, sums, width)
        for ox in range(w_out):
            p = oy * w_out + ox
            base = p * c_out + lo
            _load(v, mem, base, levels, width, fresh, vr)
            for t in range(steps):
                if ROWS:
                    summed = sums[ox, t]
                    for o in range(width):
                        acc[o] = summed[o]
                else:
                    window_sum(site_ptr[t], h_in, code, val, binary, geometry, kh, kw, w, oy, ox, acc, width, JOINED)
                _step(acc, b, mem, hs, busy_count, thresholds, consts, tau, inv, vr, decay_input, hard, fired, halves,
                      t, base, levels, width)
            still[blk, p] = _store(v, mem, base, vr, levels, width)
        updates[blk, oy] = _lane_total(busy_count, width)
    return _finish(still, awake, updates)


def _neuron_bits(current, touched, bias, visit_all, v, awake, thresholds, consts, decay_input, hard, fired, fresh):
    """A neuron layer fed by a current ``[T, N]`` (valid where ``touched [T, P]``; 0 elsewhere), as
    ``kernels.neuron_part`` computes it, position by position: a block of ``WIDTH`` neurons keeps
    its membranes in registers over all steps (``neuron_part`` goes step by step and reads and
    writes every membrane at every step), and spikes go to bit planes ``fired`` as in
    ``_gather_neuron``. A position is skipped only if no step touches it, it is at rest and
    ``visit_all`` (a bias, or a threshold at or below rest) is False: then it stays at rest. Same
    spikes, membranes, ``awake`` flags and update counts as ``neuron_part``; ``fresh`` as in
    ``_gather_neuron``. Compiled per (width, levels): ``NEURON_BITS``."""
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
    for item in nb.prange(n_blk * n_pos):  # one parallel region for all blocks
        blk, p = item // n_pos, item % n_pos
        lo = blk * width
        b = bias[lo:lo + width]
        acc = nb.carray(stack_f32(WIDTH), WIDTH)
        mem = nb.carray(stack_f32(MEMBRANES), MEMBRANES)
        hs = nb.carray(stack_f32(WIDTH), WIDTH)
        busy_count = nb.carray(stack_i32(WIDTH), WIDTH)
        base = p * c + lo
        visit = visit_all or awake[p] != 0
        for t in range(steps):
            visit |= touched[t, p] != 0
        if not visit:  # at rest all along: no spike
            if fresh:
                for k in range(levels):
                    v[k, base:base + width] = vr
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
        _load(v, mem, base, levels, width, fresh, vr)
        for t in range(steps):
            row = current[t, base:base + width]
            flag = touched[t, p] != 0
            for o in range(width):
                acc[o] = row[o] if flag else 0
            _step(acc, b, mem, hs, busy_count, thresholds, consts, tau, inv, vr, decay_input, hard, fired, halves,
                  t, base, levels, width)
        still[blk, p] = _store(v, mem, base, vr, levels, width)
        updates[blk, p] = _lane_total(busy_count, width)
    return _finish(still, awake, updates)


@nb.njit(inline="always")
def _lane_total(busy_count, width):
    """The per-lane update counters of a row or position, summed."""
    total = 0
    for o in range(width):
        total += busy_count[o]
    return total


@nb.njit(inline="always")
def _finish(still, awake, updates):
    """``awake[p]``: some block of position ``p`` is away from rest; the neuron updates in all."""
    for p in range(awake.size):
        awake[p] = still[:, p].any()
    return updates.sum()


@nb.njit(inline="always")
def _load(v, mem, base, levels, width, fresh, vr):
    """A block's membranes into ``mem`` (level ``k`` at ``mem[k * width:]``); ``V_r`` if ``fresh``."""
    if fresh:
        for o in range(levels * width):
            mem[o] = vr
        return
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
def _step(acc, b, mem, hs, busy_count, thresholds, consts, tau, inv, vr, decay_input, hard, fired, halves, t, base,
          levels, width):
    """One step of a block of ``width`` neurons with input ``acc + b``: membranes ``mem``, spikes to bit planes,
    updates counted per lane (MLF neurons as ``neuron_part`` counts them). The charge equation is
    chosen here, once per block and step: inside the unrolled lanes LLVM computed all four forms
    (two of them divides) and selected one, 5-10% of a narrow layer's time on captured inputs."""
    if inv != 0:
        if decay_input:
            _step_as(acc, b, mem, hs, busy_count, thresholds, consts, tau, inv, vr, True, True, hard, fired, halves, t,
                     base, levels, width)
        else:
            _step_as(acc, b, mem, hs, busy_count, thresholds, consts, tau, inv, vr, True, False, hard, fired, halves, t,
                     base, levels, width)
    elif decay_input:
        _step_as(acc, b, mem, hs, busy_count, thresholds, consts, tau, inv, vr, False, True, hard, fired, halves, t,
                 base, levels, width)
    else:
        _step_as(acc, b, mem, hs, busy_count, thresholds, consts, tau, inv, vr, False, False, hard, fired, halves, t,
                 base, levels, width)


@nb.njit(inline="always")
def _step_as(acc, b, mem, hs, busy_count, thresholds, consts, tau, inv, vr, multiply, decay_input, hard, fired, halves,
             t, base, levels, width):
    """``_step`` with the charge's form fixed (``multiply``, ``decay_input``: constants)."""
    if levels > 1:
        for o in range(width):
            busy = acc[o] + b[o] != 0
            for k in range(levels):
                busy |= mem[k * width + o] != vr
            busy_count[o] += np.int32(busy)
    for k in range(levels):
        th = thresholds[k]  # the least H that fires; a soft reset subtracts V_th = consts[3 + k]
        v_th = consts[3 + k]
        for o in range(width):
            x = acc[o] + b[o]
            vc = mem[k * width + o]
            if levels == 1:
                busy_count[o] += np.int32((x != 0) | (vc != vr))
            h = _charge_as(vc, x, tau, inv, vr, multiply, decay_input)
            hs[o] = h
            mem[k * width + o] = (vr if hard else h - v_th) if h >= th else h
        if width == 32:
            halves[k, t, base // 32] = np.uint32(ge_bits(hs, th, 32))
        else:
            for part in range(width // 64):
                fired[k, t, base // 64 + part] = ge_bits(hs[part * 64:], th, 64)


@nb.njit(inline="always")
def _charge_as(v, x, tau, inv, vr, multiply, decay_input):
    """``kernels._charge`` with its form fixed: ``multiply`` by ``inv = 1 / tau`` (exact) or divide by ``tau``."""
    if multiply:
        return v + (x - (v - vr)) * inv if decay_input else v - (v - vr) * inv + x
    return v + (x - (v - vr)) / tau if decay_input else v - (v - vr) / tau + x


@nb.njit(inline="always")
def _row_passes(site_ptr, h_in, code, val, binary, geometry, kh, kw, w, oy, acc, sums, width):
    """``sums[ox, t]``: the window sums of output row ``oy`` (``gather.window_sum``'s, bit for bit), made
    window row by window row, each over all positions and steps, so that only that row's weights (a
    third of a 3x3 kernel's) are in use at a time: a gathered conv reads one weight row per event
    from anywhere in the block, and its time grows with the block's size well before it overflows L2
    (the benchmark's 256 -> 256 conv at 5%: ~0.5 ms with its rows in L1, ~1.2 ms over its 1.2 MB
    blocks). Adding a row into the partial sums costs one store and load per step and position."""
    c_in, w_in, h_out, w_out, sh, sw, ph, pw, dh, dw = geometry
    for ky in range(kh):
        y = oy * sh - ph + ky * dh
        for ox in range(w_out):
            x0 = ox * sw - pw
            xa, xb = max(x0, 0), min(x0 + kw - 1, w_in - 1)
            for t in range(site_ptr.shape[0]):
                partial = sums[ox, t]
                for o in range(width):
                    acc[o] = partial[o] if ky > 0 else 0
                start, stop, shift = _window_row(site_ptr[t], h_in, w_in, y, xa, xb, ky * kw - x0)
                if binary:
                    add_rows(acc, w, code, val, start, stop, shift, False, width)
                else:
                    add_rows(acc, w, code, val, start, stop, shift, True, width)
                for o in range(width):
                    partial[o] = acc[o]


MAX_LEVELS = 8  # MLF levels with a fused kernel (as on the GPU)
WIDTH, LEVELS, MEMBRANES, JOINED, ROWS = BLOCK, 1, BLOCK, False, False  # set per variant by ``gather.specialise``
ROW_PASS_BYTES = 256 << 10  # blocks with more weights than this are summed in row passes (``_row_passes``); on the
# benchmark network at 5% (Zen 5) that took 10-24% off its 295 KB - 1.2 MB blocks and would add 10% to its 74 KB one
VARIANTS = [(width, levels) for width in (BLOCK, NARROW, WIDE) for levels in range(1, MAX_LEVELS + 1)]
GATHER_NEURON = {(width, levels, joined, rows): specialise(_gather_neuron, WIDTH=width, LEVELS=levels,
                                                           MEMBRANES=width * levels, JOINED=joined, ROWS=rows)
                 for width, levels in VARIANTS
                 for joined, rows in ((False, False), (True, False), (False, True))}  # compiled when first used
NEURON_BITS = {(width, levels): specialise(_neuron_bits, WIDTH=width, LEVELS=levels, MEMBRANES=width * levels)
               for width, levels in VARIANTS}


def gather_neuron(val, binary, site_ptr, code, geometry, w_b, kh, bias, v, awake, thresholds, consts, decay_input,
                  hard, fired, width: int = BLOCK, joined: bool = False, fresh: bool = False,
                  rows: bool | None = None) -> int:
    """``_gather_neuron`` in blocks of ``width`` (128, 64 or 32) channels with ``len(thresholds)`` levels;
    ``w_b = gather.conv_blocks(w_t, width)``; ``joined``: a 3x3 window in one loop
    (``gather.window_sum``); ``fresh``: ``v`` not yet written (all at rest); ``rows``: sum in row
    passes (default: where a block's weights exceed ``ROW_PASS_BYTES``). Returns the neuron updates."""
    if rows is None:
        rows = w_b[0].nbytes > ROW_PASS_BYTES
    return GATHER_NEURON[width, len(thresholds), joined and not rows, rows](
        val, binary, site_ptr, code, geometry, w_b, kh, bias, v, awake, thresholds, consts, decay_input, hard, fired,
        fresh)


def neuron_bits(current, touched, bias, visit_all, v, awake, thresholds, consts, decay_input, hard, fired,
                width: int = BLOCK, fresh: bool = False) -> int:
    """``_neuron_bits`` in blocks of ``width`` channels with ``len(thresholds)`` levels. Returns the
    neuron updates."""
    return NEURON_BITS[width, len(thresholds)](current, touched, bias, visit_all, v, awake, thresholds, consts,
                                               decay_input, hard, fired, fresh)

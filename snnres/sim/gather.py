"""Output-stationary convolution (numba): each output position sums the events of its window with
a block of output channels in registers (``conv_gather``), instead of each event adding into its
outputs (``kernels.conv_scatter``): the same sums in the same order (bit-identical), faster when
the inputs are dense enough (``plan.Planner``). ``fused.gather_neuron`` is ``conv_gather`` and the
LIF/MLF layer after it in one pass.

An input is indexed by site (input position, ``site_index``, or ``bits.bits_to_sites`` from spike
bits): ``site_ptr [T, sites + 1]`` and per event ``code = c * k_h * k_w + x``, so that a window
row's events are one contiguous range and an event's weight row is ``code + shift``.
"""

from __future__ import annotations

import types as pytypes

import numba as nb
import numpy as np

from .intrinsics import add_rows, add_three_rows, stack_f32
from .kernels import divide
from .memory import aligned_empty

BLOCK = 64  # output channels summed in registers by ``conv_gather`` (four AVX-512 vectors)
NARROW = 32  # the block of a fused layer of 32 (or 96, ...) channels
WIDE = 128  # the block of a fused one-level layer of 128, 256, ... channels (half the passes over the events)


def specialise(fn, **constants):
    """``fn`` jitted (parallel, cached) with some of its globals set to constants, e.g. ``WIDTH=32``:
    numba compiles globals in as constants (loops unrolled, a block's sums in registers). A width
    passed as an argument stays a runtime value (measured 1.5-2.4x slower), and ``numba.literally``
    re-enters the compiler on every call. Each variant has its own name, so its own cache file."""
    suffix = "_".join(f"{name.lower()}{value}" for name, value in constants.items())
    variant = pytypes.FunctionType(fn.__code__, dict(fn.__globals__, **constants), f"{fn.__name__}_{suffix}",
                                   fn.__defaults__)
    variant.__qualname__, variant.__doc__ = f"{fn.__qualname__}_{suffix}", fn.__doc__
    return nb.njit(parallel=True, cache=True)(variant)


def conv_blocks(w_t: np.ndarray, width: int = BLOCK, empty=aligned_empty) -> np.ndarray:
    """``w_t [C_in, k_h, k_w, C_out]`` -> ``[ceil(C_out / width), C_in * k_h * k_w, width]`` (zero-padded,
    64-byte aligned: every weight row is whole cache lines), in an array from ``empty(shape, dtype)``
    (``memory.HugePageArena.empty``: huge pages)."""
    c_in, kh, kw, c_out = w_t.shape
    n = -(-c_out // width)
    out = empty((n, c_in * kh * kw, width), np.float32)
    flat = w_t.reshape(c_in * kh * kw, c_out)
    for b in range(n):
        lo, hi = b * width, min(b * width + width, c_out)
        out[b, :, :hi - lo] = flat[:, lo:hi]
        out[b, :, hi - lo:] = 0
    return out


@nb.njit(inline="always")
def reach(geometry, kh, kw, h_in):
    """The output rows each input row reaches, and the output columns each input column reaches:
    an input at ``(y, x)`` has ``reach_y[y] * reach_x[x] * C_out`` synapses."""
    c_in, w_in, h_out, w_out, sh, sw, ph, pw, dh, dw = geometry
    reach_y = np.zeros(h_in, dtype=np.int64)
    reach_x = np.zeros(w_in, dtype=np.int64)
    for y in range(h_in):
        for ky in range(kh):
            ny = y + ph - ky * dh
            reach_y[y] += ny >= 0 and ny % sh == 0 and ny // sh < h_out
    for x in range(w_in):
        for kx in range(kw):
            nx = x + pw - kx * dw
            reach_x[x] += nx >= 0 and nx % sw == 0 and nx // sw < w_out
    return reach_y, reach_x


@nb.njit(parallel=True, cache=True)
def site_index(ptr, idx, val, binary, geometry, kh, kw, c_out, site_ptr, code, fan_weighted, fan_plain):
    """Per step ``t``, the events at input site ``s`` are ``site_ptr[t, s]:site_ptr[t, s + 1]``, and
    ``code[e] = c * k_h * k_w + x`` for an event at ``(y, x)``, channel ``c``; with
    ``conv_scatter``'s counts (``fan_weighted[t] = sum val * fan-out``, ``fan_plain[t] = sum
    fan-out``; ``binary``: every ``val`` is 1, so the two are equal). False if a step's ``idx`` is
    not increasing (the sites would not be contiguous). Events per site are counted, then summed
    up: no branch per site (walking the sites in order cost a mispredicted loop exit per event,
    0.115 -> 0.04 ms on the benchmark's sensor layer at 5%)."""
    c_in, w_in, h_out, w_out, sh, sw, ph, pw, dh, dw = geometry
    n_sites = site_ptr.shape[1] - 1
    reach_y, reach_x = reach(geometry, kh, kw, n_sites // w_in)
    taps = kh * kw
    inv_c, inv_w = 1.0 / c_in, 1.0 / w_in
    ordered = np.ones(ptr.shape[0] - 1, dtype=np.bool_)
    for t in nb.prange(ptr.shape[0] - 1):
        sp = site_ptr[t]
        sp[:] = 0
        weighted, plain = 0.0, 0  # an integer sum: no float add latency chain per event
        for e in range(ptr[t], ptr[t + 1]):
            i = idx[e]
            if e > ptr[t] and i <= idx[e - 1]:
                ordered[t] = False
                break
            site, c = divide(i, c_in, inv_c)
            y, x = divide(site, w_in, inv_w)
            sp[site + 1] += 1
            code[e] = c * taps + x
            fan = reach_y[y] * reach_x[x] * c_out
            if not binary:
                weighted += np.float64(val[e]) * fan
            plain += fan
        sp[0] = ptr[t]
        for s in range(n_sites):
            sp[s + 1] += sp[s]
        fan_weighted[t] = np.float64(plain) if binary else weighted
        fan_plain[t] = plain
    return ordered.all()


def _conv_gather(val, binary, site_ptr, code, geometry, w_b, kh, out, touched):
    """``conv_scatter``'s currents, output-stationary: for each output position and block of
    ``WIDTH`` channels, the window's events are summed in registers and stored once (every
    position is written). ``w_b``, ``site_ptr``, ``code``: ``conv_blocks``, ``site_index``;
    ``binary``: every ``val`` is 1 (spikes of one level). Compiled per (width, joined): ``CONV_GATHER``."""
    width = WIDTH
    c_in, w_in, h_out, w_out, sh, sw, ph, pw, dh, dw = geometry
    kw = w_b.shape[1] // (c_in * kh)
    c_out = out.shape[1] // (h_out * w_out)
    h_in = (site_ptr.shape[1] - 1) // w_in
    for blk in range(w_b.shape[0]):  # one block's weights stay in L2 over all steps
        lo = blk * width
        n_o = min(width, c_out - lo)
        w = w_b[blk]
        for t in nb.prange(site_ptr.shape[0]):
            row, flags = out[t], touched[t]
            acc = nb.carray(stack_f32(WIDTH), WIDTH)
            for oy in range(h_out):
                for ox in range(w_out):
                    p = oy * w_out + ox
                    flags[p] = window_sum(site_ptr[t], h_in, code, val, binary, geometry, kh, kw, w, oy, ox, acc, width,
                                          JOINED)
                    dst = row[p * c_out + lo:p * c_out + lo + n_o]
                    for o in range(n_o):
                        dst[o] = acc[o]


@nb.njit(inline="always")
def window_sum(sp, h_in, code, val, binary, geometry, kh, kw, w, oy, ox, acc, width, joined=False):
    """``acc[o] = sum val * w[c * k_h * k_w + ky * k_w + kx, o]`` (``o < width``) over the events in output
    ``(oy, ox)``'s window, in ``conv_scatter``'s order (bit-identical sums); whether any was there.
    ``binary`` (every ``val`` is 1): the same sums without the multiplies. ``joined`` (a constant): a
    window of three rows is summed by one loop (``add_three_rows``; pays from ~1.5 events a window)."""
    c_in, w_in, h_out, w_out, sh, sw, ph, pw, dh, dw = geometry
    for o in range(width):
        acc[o] = 0
    x0 = ox * sw - pw
    xa, xb = max(x0, 0), min(x0 + kw - 1, w_in - 1)
    if joined and kh == 3:
        y0 = oy * sh - ph
        r0 = _window_row(sp, h_in, w_in, y0, xa, xb, -x0)
        r1 = _window_row(sp, h_in, w_in, y0 + dh, xa, xb, kw - x0)
        r2 = _window_row(sp, h_in, w_in, y0 + 2 * dh, xa, xb, 2 * kw - x0)
        starts, stops, shifts = (r0[0], r1[0], r2[0]), (r0[1], r1[1], r2[1]), (r0[2], r1[2], r2[2])
        if binary:
            add_three_rows(acc, w, code, val, starts, stops, shifts, False, width)
        else:
            add_three_rows(acc, w, code, val, starts, stops, shifts, True, width)
        return r0[1] > r0[0] or r1[1] > r1[0] or r2[1] > r2[0]
    hit = False
    for ky in range(kh):
        start, stop, shift = _window_row(sp, h_in, w_in, oy * sh - ph + ky * dh, xa, xb, ky * kw - x0)
        hit |= stop > start
        if binary:
            add_rows(acc, w, code, val, start, stop, shift, False, width)
        else:
            add_rows(acc, w, code, val, start, stop, shift, True, width)
    return hit


@nb.njit(inline="always")
def _window_row(sp, h_in, w_in, y, xa, xb, shift):
    """``(start, stop, shift)`` of input row ``y``'s events in columns ``xa..xb`` (the window's sites are
    adjacent; empty outside the input)."""
    if y < 0 or y >= h_in or xa > xb:
        return 0, 0, shift
    return sp[y * w_in + xa], sp[y * w_in + xb + 1], shift


WIDTH, JOINED = BLOCK, False  # the register block of ``_conv_gather``, one loop per window (set per variant)
CONV_GATHER = {(width, joined): specialise(_conv_gather, WIDTH=width, JOINED=joined)
               for width in (BLOCK, NARROW, WIDE) for joined in (False, True)}


def conv_gather(val, binary, site_ptr, code, geometry, w_b, kh, out, touched, width: int = BLOCK,
                joined: bool = False) -> None:
    """``_conv_gather`` in blocks of ``width`` (64, 32 or 128) channels; ``w_b = conv_blocks(w_t, width)``;
    ``joined``: a 3x3 window in one loop (``window_sum``)."""
    CONV_GATHER[width, joined](val, binary, site_ptr, code, geometry, w_b, kh, out, touched)

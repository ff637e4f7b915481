"""numba kernels of the event-driven simulator: scatter, neuron update, compaction.

Layouts. A layer's neurons are a flat float32 row in channels-last order, index
``(y * W + x) * C + c``, so that one input event's kernel slice for all output channels is one
contiguous vector. A chunk of ``T`` steps of events is CSR: ``ptr [T+1]``, ``idx [nnz]`` (flat
neuron index), ``val [nnz]`` (float32: spike count, or a real value). Currents are dense
``[T, N]`` accumulators. Kernels run over the steps of a chunk in parallel (``prange``): the steps
of one layer are independent given their inputs, so this is the same as running them in order.
Float32 arithmetic throughout and no fastmath, so the neuron update repeats the dense backend's
operations exactly. The output-stationary conv (each output sums its window) is ``gather.py``.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros


@nb.njit(parallel=True, cache=True)
def conv_scatter(ptr, idx, val, geometry, w_t, out, touched, fan_weighted, fan_plain):
    """``out[t, (oy*W_out + ox)*C_out + :] += val * w_t[c, ky, kx, :]`` for every event and valid tap.

    ``out`` holds stale values: a position is zeroed when first reached, and marked in
    ``touched`` (zeroed by the caller); the current is only valid where ``touched``.

    An input event at ``(y, x)`` reaches output ``(oy, ox)`` through tap ``(ky, kx)`` when
    ``y + pad_h - ky * dil_h = oy * stride_h`` with ``0 <= oy < H_out`` (likewise for x).
    ``geometry`` = (C_in, W_in, H_out, W_out, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w).
    Per step: ``fan_weighted[t] = sum val * fan-out`` (SOPs) and ``fan_plain[t] = sum fan-out``;
    ``touched[t, oy * W_out + ox] = 1`` for every output position reached.
    """
    c_in, w_in, h_out, w_out, sh, sw, ph, pw, dh, dw = geometry
    kh, kw, c_out = w_t.shape[1], w_t.shape[2], w_t.shape[3]
    inv_c, inv_w, inv_sh, inv_sw = 1.0 / c_in, 1.0 / w_in, 1.0 / sh, 1.0 / sw
    for t in nb.prange(ptr.shape[0] - 1):
        row = out[t]
        flags = touched[t]
        weighted = 0.0
        plain = 0.0
        for e in range(ptr[t], ptr[t + 1]):
            pos, c = divide(idx[e], c_in, inv_c)
            y, x = divide(pos, w_in, inv_w)
            v = val[e]
            reached = 0
            for ky in range(kh):
                ny = y + ph - ky * dh
                if ny < 0:
                    continue
                oy, ry = divide(ny, sh, inv_sh)
                if ry != 0 or oy >= h_out:
                    continue
                for kx in range(kw):
                    nx = x + pw - kx * dw
                    if nx < 0:
                        continue
                    ox, rx = divide(nx, sw, inv_sw)
                    if rx != 0 or ox >= w_out:
                        continue
                    position = oy * w_out + ox
                    # 1-D slices on both sides: LLVM vectorises this loop (3x faster than row[base + o])
                    dst = row[position * c_out:(position + 1) * c_out]
                    if not flags[position]:  # first touch: zero it (untouched ones are never read)
                        flags[position] = 1
                        dst[:] = 0
                    wk = w_t[c, ky, kx]
                    for o in range(c_out):
                        dst[o] += v * wk[o]
                    reached += 1
            weighted += np.float64(v) * reached * c_out
            plain += reached * c_out
        fan_weighted[t] = weighted
        fan_plain[t] = plain


@nb.njit(inline="always")
def divide(n, d, inv):
    """``(n // d, n % d)`` for ``0 <= n < 2**52``, ``d >= 1``, ``inv = 1.0 / d``: a float64 multiply,
    off by at most one, then corrected (an integer division per event costs 15-40 cycles)."""
    q = np.int64(n * inv)
    r = n - q * d
    if r < 0:
        q, r = q - 1, r + d
    elif r >= d:
        q, r = q + 1, r - d
    return q, r



@nb.njit(parallel=True, cache=True)
def linear_scatter(ptr, idx, val, w_t, out, touched, fan_weighted, fan_plain):
    """``out[t, :] = sum val * w_t[idx, :]`` over each step's events (``w_t`` is ``[in, out]``), every row
    written (one row per step: zeroing it costs less than a reader's masked zeroing, ``complete``);
    ``touched[t, 0]``: the step got an event."""
    n_out = w_t.shape[1]
    for t in nb.prange(ptr.shape[0] - 1):
        row = out[t]
        row[:] = 0
        weighted = 0.0
        for e in range(ptr[t], ptr[t + 1]):
            v = val[e]
            wk = w_t[idx[e]]
            for o in range(n_out):
                row[o] += v * wk[o]  # row is already a 1-D slice
            weighted += np.float64(v) * n_out
        fan_weighted[t] = weighted
        fan_plain[t] = np.float64(ptr[t + 1] - ptr[t]) * n_out
        if ptr[t + 1] > ptr[t]:
            touched[t, 0] = 1


@nb.njit(parallel=True, cache=True)
def pool_scatter(ptr, idx, val, geometry, h_in, out, use_max):
    """Depthwise window pooling of events: sum (avg-pool, divided later) or max per output.

    ``geometry`` = (C, W_in, H_out, W_out, k_h, k_w, stride_h, stride_w, pad_h, pad_w); the input
    is ``h_in`` rows high. Max pooling treats positions without an event as 0, which is exact for
    non-negative inputs.
    """
    c_n, w_in, h_out, w_out, kh, kw, sh, sw, ph, pw = geometry
    if kh <= sh and kw <= sw:
        _pool_tiles(ptr, idx, val, geometry, out, use_max)
        return
    # the windows holding row y: oy * sh <= y + ph < oy * sh + kh, i.e. oy in [lo_y[y], hi_y[y])
    lo_y, hi_y = np.empty(h_in, np.int64), np.empty(h_in, np.int64)
    lo_x, hi_x = np.empty(w_in, np.int64), np.empty(w_in, np.int64)
    for y in range(h_in):
        lo_y[y], hi_y[y] = max(0, (y + ph - kh + sh) // sh), min(h_out, (y + ph) // sh + 1)
    for x in range(w_in):
        lo_x[x], hi_x[x] = max(0, (x + pw - kw + sw) // sw), min(w_out, (x + pw) // sw + 1)
    inv_c, inv_w = 1.0 / c_n, 1.0 / w_in
    for t in nb.prange(ptr.shape[0] - 1):
        row = out[t]
        for e in range(ptr[t], ptr[t + 1]):
            pos, c = divide(idx[e], c_n, inv_c)
            y, x = divide(pos, w_in, inv_w)
            v = val[e]
            for oy in range(lo_y[y], hi_y[y]):
                for ox in range(lo_x[x], hi_x[x]):
                    o = (oy * w_out + ox) * c_n + c
                    if use_max:
                        if v > row[o]:
                            row[o] = v
                    else:
                        row[o] += v


@nb.njit(parallel=True, cache=True)
def _pool_tiles(ptr, idx, val, geometry, out, use_max):
    """``pool_scatter`` where each input lies in at most one window (``k <= stride``: global pooling,
    2x2 stride 2, ...), in two passes per step: every event's output first, then the sums. In one
    pass each read-modify-write of ``out`` waited for the previous event's index arithmetic (the
    CPU cannot tell that the two do not touch the same output): 2-4x slower."""
    c_n, w_in, h_out, w_out, kh, kw, sh, sw, ph, pw = geometry
    inv_c, inv_w, inv_sh, inv_sw = 1.0 / c_n, 1.0 / w_in, 1.0 / sh, 1.0 / sw
    target = np.empty(ptr[-1] - ptr[0], dtype=np.int64)
    for t in nb.prange(ptr.shape[0] - 1):
        row = out[t]
        for e in range(ptr[t], ptr[t + 1]):
            pos, c = divide(idx[e], c_n, inv_c)
            y, x = divide(pos, w_in, inv_w)
            oy, ry = divide(y + ph, sh, inv_sh)
            ox, rx = divide(x + pw, sw, inv_sw)
            inside = ry < kh and rx < kw and oy < h_out and ox < w_out
            target[e - ptr[0]] = (oy * w_out + ox) * c_n + c if inside else -1
        for e in range(ptr[t], ptr[t + 1]):
            o = target[e - ptr[0]]
            if o >= 0:
                if use_max:
                    row[o] = max(row[o], val[e])
                else:
                    row[o] += val[e]


@nb.njit(inline="always")
def _emit(words, fired, first, out_idx, out_val, n_out):
    """Append ``(first + c, fired[c])`` for every ``fired[c] != 0`` in increasing ``c``; ``words`` is
    ``fired`` seen as uint64 (eight channels per word, zero-padded): a word without a spike costs
    one test, and a spike is found with one trailing-zero count instead of a branch per channel
    (little-endian: byte c % 8 of word c // 8 holds channel c)."""
    for w in range(words.shape[0]):
        word = words[w]
        while word != 0:
            shift = trailing_zeros(word) & np.uint64(56)  # the lowest non-zero byte's first bit
            c = w * 8 + np.int64(shift >> np.uint64(3))
            out_idx[n_out] = first + c
            out_val[n_out] = fired[c]
            n_out += 1
            word &= ~(np.uint64(255) << shift)
    return n_out


@nb.njit(inline="always")
def exact_reciprocal(tau):
    """``1 / tau`` where multiplying by it is exactly dividing by ``tau`` (a power of two: both are
    the correctly rounded ``a / tau``), else 0; a multiply is several times cheaper than a divide."""
    mantissa, exponent = math.frexp(np.float64(tau))
    inv = np.float64(1.0) / np.float64(tau)
    if mantissa == 0.5 and -126 <= exponent - 1 <= 126 and inv != 0:
        return np.float32(inv)
    return np.float32(0)


@nb.njit(inline="always")
def _charge(v, x, tau, inv, vr, decay_input):
    """``H = V + (X - (V - V_r)) / tau`` (``decay_input``) or ``V - (V - V_r) / tau + X``; ``inv``:
    ``exact_reciprocal(tau)``."""
    if inv != 0:
        return v + (x - (v - vr)) * inv if decay_input else v - (v - vr) * inv + x
    return v + (x - (v - vr)) / tau if decay_input else v - (v - vr) / tau + x


@nb.njit(cache=True)
def neuron_part(current, touched, bias, has_bias, v, awake, thresholds, consts, decay_input, hard, always,
                p_lo, p_hi, counts, out_idx, out_val):
    """Steps of one neuron layer in time order, positions ``[p_lo, p_hi)``; returns the updates.

    Neuron ``i = p * C + c`` at position ``p`` gets ``X = current[t, i] + bias[c]`` (zeros when
    the layer has no bias; ``has_bias`` then False). ``consts`` = (tau, V_r, 0, V_th,0 .. V_th,K-1) in
    float32; ``thresholds`` the least firing ``H`` per level (``V_th``, or the next float above it for
    ``fire="gt"``: ``trace.firing_thresholds``). For each level ``k`` (``snnres.neurons.functional``):
    ``H = V + (X - (V - V_r)) / tau`` (or ``V - (V - V_r) / tau + X``), ``S = H >= thresholds[k]``,
    ``V = V_r`` on a spike (hard) or ``H - V_th,k`` (soft), else ``H``. Only positions that
    received input (``touched[t, p]``) or hold a neuron away from rest (``awake[p]``) are visited;
    a neuron with ``X = 0`` at rest stays there without firing (``V_r < V_th``) and is not counted,
    unless ``always`` (a threshold at or below rest). Spikes (level counts) go to ``out_idx,
    out_val`` in step order, ``counts[t]`` per step; ``v [K, N]``, ``awake [P]`` change in place.
    """
    T, N = current.shape
    C = N // touched.shape[1]
    K = v.shape[0]
    tau, vr, zero = consts[0], consts[1], consts[2]
    inv = exact_reciprocal(tau)
    a, b = p_lo * C, p_hi * C
    fired = np.zeros(-(-C // 8) * 8, dtype=np.uint8)  # whole uint64 words for _emit
    rest_input = np.zeros(C, dtype=np.float32)
    words = fired.view(np.uint64)
    n_out = 0
    updates = 0
    for t in range(T):
        start = n_out
        # 1-D slices starting at the part: loops over them vectorise (2-D or offset indexing does not)
        row, flags, aw = current[t, a:b], touched[t, p_lo:p_hi], awake[p_lo:p_hi]
        for p in range(p_hi - p_lo):
            if not (has_bias or always or flags[p] or aw[p]):
                continue
            lo = p * C
            x = row[lo:lo + C] if flags[p] else rest_input  # an untouched position's current is stale
            still = False
            if K == 1:  # fused single pass (LIF)
                th = thresholds[0]
                vk = v[0, a + lo:a + lo + C]
                for c in range(C):
                    xc = x[c] + bias[c]
                    vc = vk[c]
                    updates += (xc != zero) | (vc != vr)
                    h = _charge(vc, xc, tau, inv, vr, decay_input)
                    spike = h >= th
                    after = (vr if hard else h - consts[3]) if spike else h
                    vk[c] = after
                    fired[c] = spike
                    still |= after != vr
                aw[p] = still
                n_out = _emit(words, fired, a + lo, out_idx, out_val, n_out)
                continue
            for c in range(C):
                busy = x[c] + bias[c] != zero
                for k in range(K):
                    busy |= v[k, a + lo + c] != vr
                updates += busy
                fired[c] = 0
            for k in range(K):
                th = thresholds[k]
                vk = v[k, a + lo:a + lo + C]
                for c in range(C):
                    h = _charge(vk[c], x[c] + bias[c], tau, inv, vr, decay_input)
                    spike = h >= th
                    after = (vr if hard else h - consts[3 + k]) if spike else h
                    vk[c] = after
                    fired[c] += spike
                    still |= after != vr
            aw[p] = still
            n_out = _emit(words, fired, a + lo, out_idx, out_val, n_out)
        counts[t] = n_out - start
    return updates


@nb.njit(parallel=True, cache=True)
def neuron_chunk(current, touched, bias, has_bias, v, awake, thresholds, consts, decay_input, hard, always,
                 parts, out_ptr, out_idx, out_val):
    """``neuron_part`` over ``parts`` position ranges in parallel, merged into CSR ``out_*``
    (per step, spikes in neuron order); returns the number of neuron updates."""
    T, N = current.shape
    P = touched.shape[1]
    C = N // P
    if parts == 1:  # straight into the output, no merge
        counts = np.zeros(T, dtype=np.int64)
        updates = neuron_part(current, touched, bias, has_bias, v, awake, thresholds, consts, decay_input,
                              hard, always, 0, P, counts, out_idx, out_val)
        out_ptr[0] = 0
        out_ptr[1:] = np.cumsum(counts)
        return updates
    bounds = np.linspace(0, P, parts + 1).astype(np.int64)
    counts = np.zeros((parts, T), dtype=np.int64)
    idx = np.empty(T * N, dtype=np.int64)
    val = np.empty(T * N, dtype=np.float32)
    updates = np.zeros(parts, dtype=np.int64)
    for r in nb.prange(parts):
        base = T * bounds[r] * C
        end = T * bounds[r + 1] * C
        updates[r] = neuron_part(current, touched, bias, has_bias, v, awake, thresholds, consts, decay_input,
                                 hard, always, bounds[r], bounds[r + 1], counts[r], idx[base:end], val[base:end])
    out_ptr[0] = 0
    for t in range(T):
        out_ptr[t + 1] = out_ptr[t] + counts[:, t].sum()
    for r in nb.prange(parts):
        src = T * bounds[r] * C
        for t in range(T):
            dst = out_ptr[t] + counts[:r, t].sum()
            for j in range(counts[r, t]):
                out_idx[dst + j] = idx[src + j]
                out_val[dst + j] = val[src + j]
            src += counts[r, t]
    return updates.sum()


@nb.njit(parallel=True, cache=True)
def _row_counts(dense):
    T, N = dense.shape
    counts = np.zeros(T + 1, dtype=np.int64)
    for t in nb.prange(T):
        n = 0
        row = dense[t]
        for i in range(N):
            if row[i] != 0:
                n += 1
        counts[t + 1] = n
    return counts


@nb.njit(parallel=True, cache=True)
def _fill(dense, ptr, idx, val, scale):
    T, N = dense.shape
    for t in nb.prange(T):
        j = ptr[t]
        row = dense[t]
        for i in range(N):
            if row[i] != 0:
                idx[j] = i
                val[j] = row[i] / scale
                j += 1


@nb.njit(cache=True)
def all_ones(val) -> bool:
    """Whether every value is 1 (events that are plain spikes). numpy's ``np.all(val == 1)`` makes a
    temporary array: ~30 us on the benchmark's 6500 sensor events in the run, ~2 us here."""
    for x in val:
        if x != 1:
            return False
    return True


def compact(dense: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense ``[T, N]`` -> CSR ``(ptr, idx, val)`` of its non-zero entries, values ``/ scale`` (float32)."""
    if dense.size <= SMALL:
        return _compact_serial(dense, dense.dtype.type(scale))
    ptr = np.cumsum(_row_counts(dense))
    idx = np.empty(ptr[-1], dtype=np.int64)
    val = np.empty(ptr[-1], dtype=np.float32)
    _fill(dense, ptr, idx, val, dense.dtype.type(scale))
    return ptr, idx, val


SMALL = 1 << 15  # entries: ``compact`` in one serial call (a pooled layer's [T, C]: ~40 -> ~5 us in the run)


@nb.njit(cache=True)
def _compact_serial(dense, scale):
    """``compact`` in one pass over the rows (the values are read twice: counted, then stored)."""
    T, N = dense.shape
    ptr = np.zeros(T + 1, dtype=np.int64)
    for t in range(T):
        n = 0
        for i in range(N):
            n += dense[t, i] != 0
        ptr[t + 1] = ptr[t] + n
    idx = np.empty(ptr[T], dtype=np.int64)
    val = np.empty(ptr[T], dtype=np.float32)
    j = 0
    for t in range(T):
        for i in range(N):
            if dense[t, i] != 0:
                idx[j], val[j] = i, dense[t, i] / scale
                j += 1
    return ptr, idx, val


@nb.njit(parallel=True, cache=True)
def densify(ptr, idx, val, out):
    """``out[t, idx] += val`` for the events of each step (``out`` zeroed by the caller)."""
    for t in nb.prange(ptr.shape[0] - 1):
        row = out[t]
        for e in range(ptr[t], ptr[t + 1]):
            row[idx[e]] += val[e]

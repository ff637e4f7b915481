"""numba kernels of the event-driven simulator: scatter, neuron update, compaction.

Layouts. A layer's neurons are a flat float32 row in channels-last order, index
``(y * W + x) * C + c``, so that one input event's kernel slice for all output channels is one
contiguous vector. A chunk of ``T`` steps of events is CSR: ``ptr [T+1]``, ``idx [nnz]`` (flat
neuron index), ``val [nnz]`` (float32: spike count, or a real value). Currents are dense
``[T, N]`` accumulators. Kernels run over the steps of a chunk in parallel (``prange``): the steps
of one layer are independent given their inputs, so this is the same as running them in order.
Float32 arithmetic throughout and no fastmath, so the neuron update repeats the dense backend's
operations exactly.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(parallel=True, cache=True)
def conv_scatter(ptr, idx, val, geometry, w_t, out, touched, fan_weighted, fan_plain):
    """``out[t, (oy*W_out + ox)*C_out + :] += val * w_t[c, ky, kx, :]`` for every event and valid tap.

    An input event at ``(y, x)`` reaches output ``(oy, ox)`` through tap ``(ky, kx)`` when
    ``y + pad_h - ky * dil_h = oy * stride_h`` with ``0 <= oy < H_out`` (likewise for x).
    ``geometry`` = (C_in, W_in, H_out, W_out, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w).
    Per step: ``fan_weighted[t] = sum val * fan-out`` (SOPs) and ``fan_plain[t] = sum fan-out``;
    ``touched[t, oy * W_out + ox] = 1`` for every output position reached.
    """
    c_in, w_in, h_out, w_out, sh, sw, ph, pw, dh, dw = geometry
    kh, kw, c_out = w_t.shape[1], w_t.shape[2], w_t.shape[3]
    for t in nb.prange(ptr.shape[0] - 1):
        row = out[t]
        flags = touched[t]
        weighted = 0.0
        plain = 0.0
        for e in range(ptr[t], ptr[t + 1]):
            flat = idx[e]
            c = flat % c_in
            pos = flat // c_in
            x = pos % w_in
            y = pos // w_in
            v = val[e]
            reached = 0
            for ky in range(kh):
                ny = y + ph - ky * dh
                if ny < 0 or ny % sh != 0 or ny // sh >= h_out:
                    continue
                oy = ny // sh
                for kx in range(kw):
                    nx = x + pw - kx * dw
                    if nx < 0 or nx % sw != 0 or nx // sw >= w_out:
                        continue
                    position = oy * w_out + nx // sw
                    flags[position] = 1
                    # 1-D slices on both sides: LLVM vectorises this loop (3x faster than row[base + o])
                    dst = row[position * c_out:(position + 1) * c_out]
                    wk = w_t[c, ky, kx]
                    for o in range(c_out):
                        dst[o] += v * wk[o]
                    reached += 1
            weighted += np.float64(v) * reached * c_out
            plain += reached * c_out
        fan_weighted[t] = weighted
        fan_plain[t] = plain


@nb.njit(parallel=True, cache=True)
def linear_scatter(ptr, idx, val, w_t, out, touched, fan_weighted, fan_plain):
    """``out[t, :] += val * w_t[idx, :]`` for every event (``w_t`` is ``[in, out]``)."""
    n_out = w_t.shape[1]
    for t in nb.prange(ptr.shape[0] - 1):
        row = out[t]
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
def pool_scatter(ptr, idx, val, geometry, out, use_max):
    """Depthwise window pooling of events: sum (avg-pool, divided later) or max per output.

    ``geometry`` = (C, W_in, H_out, W_out, k_h, k_w, stride_h, stride_w, pad_h, pad_w).
    Max pooling treats positions without an event as 0, which is exact for non-negative inputs.
    """
    c_n, w_in, h_out, w_out, kh, kw, sh, sw, ph, pw = geometry
    for t in nb.prange(ptr.shape[0] - 1):
        row = out[t]
        for e in range(ptr[t], ptr[t + 1]):
            flat = idx[e]
            c = flat % c_n
            pos = flat // c_n
            x = pos % w_in
            y = pos // w_in
            v = val[e]
            for ky in range(kh):
                ny = y + ph - ky
                if ny < 0 or ny % sh != 0 or ny // sh >= h_out:
                    continue
                for kx in range(kw):
                    nx = x + pw - kx
                    if nx < 0 or nx % sw != 0 or nx // sw >= w_out:
                        continue
                    o = ((ny // sh) * w_out + nx // sw) * c_n + c
                    if use_max:
                        if v > row[o]:
                            row[o] = v
                    else:
                        row[o] += v


@nb.njit(inline="always")
def _charge(v, x, tau, vr, decay_input):
    return v + (x - (v - vr)) / tau if decay_input else v - (v - vr) / tau + x


@nb.njit(cache=True)
def neuron_part(current, touched, bias, has_bias, v, awake, thresholds, consts, decay_input, hard, always,
                p_lo, p_hi, counts, out_idx, out_val):
    """Steps of one neuron layer in time order, positions ``[p_lo, p_hi)``; returns the updates.

    Neuron ``i = p * C + c`` at position ``p`` gets ``X = current[t, i] + bias[c]`` (zeros when
    the layer has no bias; ``has_bias`` then False). ``consts`` = (tau, V_r, 0) in float32. For
    each level ``k`` (equations: ``snnres.neurons.functional``):
    ``H = V + (X - (V - V_r)) / tau`` (or ``V - (V - V_r) / tau + X``), ``S = H >= V_th,k``,
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
    a, b = p_lo * C, p_hi * C
    fired = np.zeros(C, dtype=np.uint8)
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
            x = row[lo:lo + C]
            still = False
            if K == 1:  # fused single pass (LIF)
                th = thresholds[0]
                vk = v[0, a + lo:a + lo + C]
                for c in range(C):
                    xc = x[c] + bias[c]
                    vc = vk[c]
                    updates += (xc != zero) | (vc != vr)
                    h = _charge(vc, xc, tau, vr, decay_input)
                    spike = h >= th
                    after = (vr if hard else h - th) if spike else h
                    vk[c] = after
                    fired[c] = spike
                    still |= after != vr
                aw[p] = still
                for c in range(C):
                    if fired[c]:
                        out_idx[n_out] = a + lo + c
                        out_val[n_out] = 1
                        n_out += 1
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
                    h = _charge(vk[c], x[c] + bias[c], tau, vr, decay_input)
                    spike = h >= th
                    after = (vr if hard else h - th) if spike else h
                    vk[c] = after
                    fired[c] += spike
                    still |= after != vr
            aw[p] = still
            for c in range(C):
                if fired[c]:
                    out_idx[n_out] = a + lo + c
                    out_val[n_out] = fired[c]
                    n_out += 1
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


def compact(dense: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense ``[T, N]`` -> CSR ``(ptr, idx, val)`` of its non-zero entries, values ``/ scale`` (float32)."""
    ptr = np.cumsum(_row_counts(dense))
    idx = np.empty(ptr[-1], dtype=np.int64)
    val = np.empty(ptr[-1], dtype=np.float32)
    _fill(dense, ptr, idx, val, dense.dtype.type(scale))
    return ptr, idx, val


@nb.njit(parallel=True, cache=True)
def densify(ptr, idx, val, out):
    """``out[t, idx] += val`` for the events of each step (``out`` zeroed by the caller)."""
    for t in nb.prange(ptr.shape[0] - 1):
        row = out[t]
        for e in range(ptr[t], ptr[t + 1]):
            row[idx[e]] += val[e]

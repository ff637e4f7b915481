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
def conv_scatter(ptr, idx, val, geometry, w_t, out, fan_weighted, fan_plain):
    """``out[t, (oy*W_out + ox)*C_out + :] += val * w_t[c, ky, kx, :]`` for every event and valid tap.

    An input event at ``(y, x)`` reaches output ``(oy, ox)`` through tap ``(ky, kx)`` when
    ``y + pad_h - ky * dil_h = oy * stride_h`` with ``0 <= oy < H_out`` (likewise for x).
    ``geometry`` = (C_in, W_in, H_out, W_out, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w).
    Per step: ``fan_weighted[t] = sum val * fan-out`` (SOPs) and ``fan_plain[t] = sum fan-out``.
    """
    c_in, w_in, h_out, w_out, sh, sw, ph, pw, dh, dw = geometry
    kh, kw, c_out = w_t.shape[1], w_t.shape[2], w_t.shape[3]
    for t in nb.prange(ptr.shape[0] - 1):
        row = out[t]
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
                    base = (oy * w_out + nx // sw) * c_out
                    wk = w_t[c, ky, kx]
                    for o in range(c_out):
                        row[base + o] += v * wk[o]
                    reached += 1
            weighted += np.float64(v) * reached * c_out
            plain += reached * c_out
        fan_weighted[t] = weighted
        fan_plain[t] = plain


@nb.njit(parallel=True, cache=True)
def linear_scatter(ptr, idx, val, w_t, out, fan_weighted, fan_plain):
    """``out[t, :] += val * w_t[idx, :]`` for every event (``w_t`` is ``[in, out]``)."""
    n_out = w_t.shape[1]
    for t in nb.prange(ptr.shape[0] - 1):
        row = out[t]
        weighted = 0.0
        for e in range(ptr[t], ptr[t + 1]):
            v = val[e]
            wk = w_t[idx[e]]
            for o in range(n_out):
                row[o] += v * wk[o]
            weighted += np.float64(v) * n_out
        fan_weighted[t] = weighted
        fan_plain[t] = np.float64(ptr[t + 1] - ptr[t]) * n_out


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


@nb.njit(parallel=True, cache=True)
def neuron_update(current, v, spikes, thresholds, consts, decay_input, hard, always, block):
    """Update the neurons that got input or are away from rest; returns updates per block.

    For each level ``k`` (equations: ``snnres.neurons.functional``):
    ``H = V + (X - (V - V_r)) / tau`` (or ``V - (V - V_r) / tau + X``), ``S = H >= V_th,k``,
    ``V = V_r`` on a spike (hard) or ``H - V_th,k`` (soft), else ``H``. A neuron with ``X = 0``
    and every level at rest stays at rest without firing (``V_r < V_th``), so it is skipped
    unless ``always`` (a bias current, or a threshold at or below rest).
    ``current [T, N]``, ``v [K, N]`` (updated in place), ``spikes [T, N]`` (uint8 level counts).
    """
    T, N = current.shape
    K = v.shape[0]
    tau, vr = consts[0], consts[1]
    n_blocks = (N + block - 1) // block
    updates = np.zeros(n_blocks, dtype=np.int64)
    for b in nb.prange(n_blocks):
        count = 0
        lo, hi = b * block, min(N, (b + 1) * block)
        for t in range(T):
            row, out = current[t], spikes[t]
            for i in range(lo, hi):
                x = row[i]
                if not always and x == 0:
                    at_rest = True
                    for k in range(K):
                        if v[k, i] != vr:
                            at_rest = False
                    if at_rest:
                        out[i] = 0
                        continue
                count += 1
                fired = 0
                for k in range(K):
                    th = thresholds[k]
                    h = _charge(v[k, i], x, tau, vr, decay_input)
                    if h >= th:
                        fired += 1
                        v[k, i] = vr if hard else h - th
                    else:
                        v[k, i] = h
                out[i] = fired
        updates[b] = count
    return updates


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

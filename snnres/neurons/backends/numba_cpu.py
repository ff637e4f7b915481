"""Fused CPU kernels (numba): the whole sequence in one pass, forward and backward.

Neurons are processed in blocks (parallel over blocks with ``prange``; sizes from ``block_size``);
inside a block the loop over neurons is innermost and contiguous, so LLVM vectorises it. Long
blocks matter: each time step's row of a block is one sequential run of memory, and the hardware
prefetchers only run ahead within such a run (2048 -> 32768 neurons per block cut the fused
forward+backward of ``[8, 2^20]`` by ~22% on 2 cores, in-process A/B). The forward
repeats the reference's float operations in the input's dtype, in the same order, so spikes are
bit-identical to the torch backend. The backward recomputes ``H`` for the block from the saved
input (it stays in cache), then runs back in time, also in the input's dtype (fp32 lanes are twice
as many as fp64's; the tau gradient is summed in float64). Python float literals would promote
numba's arithmetic to float64, so every constant comes in a typed array (``_constants``). A start
at rest is not materialised: the kernels fill each block's state with ``V_REST``. Scratch (the
state, the recomputed ``H``) is one contiguous row per pool thread (``numba.get_thread_id()``),
allocated once per call: allocated per block, 1 MiB pieces above glibc's mmap threshold came as
fresh pages every block (the backward took 35 instead of 20 ms with fresh pages). The
sigmoid surrogate uses a polynomial ``exp`` (``_exp_neg``), because libm's ``exp`` is a scalar
call that stops vectorisation and would bind the backward.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch

from .fused import input_grad_fused, run_fused

MAX_BLOCK = 32768  # neurons per work item: rows of 128 KiB (fp32) per time step
MIN_BLOCK = 1024
H_BUDGET = 1 << 20  # bytes of recomputed H per backward block (T * block * itemsize): about L2

try:  # numba is a dependency, but a broken install should only disable this backend
    import numba as nb
except ImportError as error:  # pragma: no cover - exercised only without numba
    nb = None
    _IMPORT_ERROR = str(error)


def available() -> str | None:
    if nb is None:
        return f"numba is not importable ({_IMPORT_ERROR}); install it with `pip install numba`"
    return None


if nb is not None:

    # Indices into the typed constants array built by ``_constants``.
    TAU, V_REST, ONE, ZERO, HALF_WIDTH, INV_TAU, ALPHA, ALPHA_SQ, ATAN_SCALE, HALF_ALPHA, KEEP, \
        EXP_CLAMP, EXP_SCALE, TAYLOR = range(14)  # TAYLOR: 1/k!, k = 0..TAYLOR_DEGREE
    TAYLOR_DEGREE = 10

    @nb.njit(inline="always", cache=True)
    def _exp_neg(a, c):
        """``exp(-a)`` for ``a >= 0`` with mul/add only: Taylor on ``r = -a/32``, squared 5 times.

        The degree-10 Taylor polynomial is evaluated by Estrin's scheme (powers ``r^2, r^4, r^8``
        beside pairs ``p_k + p_(k+1) r``), a dependency chain of 7 operations instead of Horner's 20:
        the loop is bound by latency, not by the number of operations. Largest relative error on
        [0, 20]: 8e-9 in float64, 7e-6 in float32 (Horner's order: 5e-6); ``a`` is clamped at 20,
        where the sigmoid surrogate's derivative (``~ alpha * exp(-a)``) is below 2e-9 alpha.
        """
        r = -min(a, c[EXP_CLAMP]) * c[EXP_SCALE]
        r2 = r * r
        r4 = r2 * r2
        r8 = r4 * r4
        low = (c[TAYLOR] + c[TAYLOR + 1] * r) + r2 * (c[TAYLOR + 2] + c[TAYLOR + 3] * r)
        mid = (c[TAYLOR + 4] + c[TAYLOR + 5] * r) + r2 * (c[TAYLOR + 6] + c[TAYLOR + 7] * r)
        high = (c[TAYLOR + 8] + c[TAYLOR + 9] * r) + r2 * c[TAYLOR + 10]
        p = (low + r4 * mid) + r8 * high
        p = p * p
        p = p * p
        p = p * p
        p = p * p
        return p * p

    @nb.njit(inline="always", cache=True)
    def _surrogate(d, sid, c):
        """Surrogate ``sid``'s ``g'(d)`` at ``d = H - threshold`` (inlined with a constant ``sid``)."""
        one, alpha = c[ONE], c[ALPHA]
        if sid == 0:
            e = _exp_neg(abs(alpha * d), c)
            return alpha * e / ((one + e) * (one + e))
        if sid == 1:
            z = d * c[ATAN_SCALE]
            return c[HALF_ALPHA] / (one + z * z)
        if sid == 2:
            return max(c[ZERO], alpha - c[ALPHA_SQ] * abs(d))
        return alpha if abs(d) < c[HALF_WIDTH] else c[ZERO]

    @nb.njit(inline="always", cache=True)
    def _fires(h, th, strict):
        """``S = H > V_th`` (``strict``: ``fire="gt"``) or ``H >= V_th``."""
        return h > th if strict else h >= th

    @nb.njit(inline="always", cache=True)
    def _step_back(ht, gst, gxt, gv, gh, th, sid, c, hard, decay_input, first_level, need_tau, strict):
        """One step back in time for one level of a block, in place on ``gv`` and ``gxt``.

        ``gH = gS g'(H - th) + gV dV/dH``; ``gX (+)= gH dH/dX``; ``gV <- gH (1 - 1/tau)``;
        ``gh = gH`` (for the tau gradient). One loop: the surrogate's arithmetic overlaps the row's
        memory traffic (a separate surrogate pass over the row was 5-9% slower).
        """
        vr, one, zero, inv_tau, keep = c[V_REST], c[ONE], c[ZERO], c[INV_TAU], c[KEEP]
        for i in range(ht.shape[0]):
            h = ht[i]
            sg = _surrogate(h - th, sid, c)
            if hard:
                dv_dh = (zero if _fires(h, th, strict) else one) + keep * (vr - h) * sg
            else:
                dv_dh = one - keep * th * sg
            g = gst[i] * sg + gv[i] * dv_dh
            if need_tau:
                gh[i] = g
            gx = g * inv_tau if decay_input else g
            if first_level:
                gxt[i] = gx
            else:
                gxt[i] += gx
            gv[i] = g - g * inv_tau

    @nb.njit(inline="always", cache=True)
    def _step_back_any(ht, gst, gxt, gv, gh, th, sid, c, hard, decay_input, first_level, need_tau, strict):
        """``_step_back`` with ``sid`` (and, from the caller, ``need_tau``) as constants.

        One specialised loop per case: a loop-invariant flag left inside the loop is if-converted
        by LLVM, and ``if need_tau: gh[i] = g`` became an AVX-512 masked store with an all-false
        mask, which on AMD Zen takes a microcode assist per store when ``gh``'s pages were never
        written (fault suppression): the backward ran 10x slower.
        """
        if sid == 0:
            _step_back(ht, gst, gxt, gv, gh, th, 0, c, hard, decay_input, first_level, need_tau, strict)
        elif sid == 1:
            _step_back(ht, gst, gxt, gv, gh, th, 1, c, hard, decay_input, first_level, need_tau, strict)
        elif sid == 2:
            _step_back(ht, gst, gxt, gv, gh, th, 2, c, hard, decay_input, first_level, need_tau, strict)
        else:
            _step_back(ht, gst, gxt, gv, gh, th, 3, c, hard, decay_input, first_level, need_tau, strict)

    @nb.njit(inline="always", cache=True)
    def _charge(v, x, tau, vr, decay_input):
        """``H[t]`` from ``V[t-1]`` and ``X[t]``, in the reference's operation order."""
        return v + (x - (v - vr)) / tau if decay_input else v - (v - vr) / tau + x

    @nb.njit(inline="always", cache=True)
    def _reset(h, s, th, vr, one, hard):
        """``V[t]`` after spike ``s``: ``s * vr + (1 - s) * h`` (hard) or ``h - s * th`` (soft)."""
        return s * vr + (one - s) * h if hard else h - s * th

    @nb.njit(inline="always", cache=True)
    def _load_state(v, v0, k, lo, at_rest, vr):
        """``v[:] =`` level ``k``'s start state for the block at ``lo``: ``V_REST``, or ``v0``'s row."""
        if at_rest:
            v[:] = vr
        else:
            v[:] = v0[k, lo:lo + v.shape[0]]

    @nb.njit(parallel=True, cache=True)
    def _forward_kernel(x, v0, at_rest, spikes, v_last, thresholds, c, hard, decay_input, strict, block, slots):
        T, N = x.shape
        tau, vr, one, zero = c[TAU], c[V_REST], c[ONE], c[ZERO]
        scratch = np.empty((slots, block), dtype=x.dtype)  # one state row per thread (module doc)
        for b in nb.prange((N + block - 1) // block):
            lo = b * block
            n = min(block, N - lo)
            v = scratch[nb.get_thread_id(), :n]
            for k in range(thresholds.shape[0]):
                th = thresholds[k]
                _load_state(v, v0, k, lo, at_rest, vr)
                for t in range(T):
                    # Row views: indexing them with the loop counter lets LLVM vectorise.
                    xt = x[t, lo:lo + n]
                    st = spikes[t, lo:lo + n]
                    for i in range(n):
                        vi = v[i]
                        h = _charge(vi, xt[i], tau, vr, decay_input)
                        s = one if _fires(h, th, strict) else zero
                        v[i] = _reset(h, s, th, vr, one, hard)
                        if k == 0:
                            st[i] = s
                        else:
                            st[i] += s
                v_last[k, lo:lo + n] = v

    @nb.njit(parallel=True, cache=True)
    def _backward_kernel(x, v0, at_rest, grad_s, grad_vl, has_grad_vl, thresholds, c, hard, decay_input, strict,
                         sid, need_tau, grad_x, grad_v0, grad_tau_blocks, block, slots):
        """Back in time: ``gH = gS g'(H - th) + gV dV/dH``, ``gX = gH dH/dX``, ``gV <- gH (1 - 1/tau)``."""
        T, N = x.shape
        tau, vr, one, zero = c[TAU], c[V_REST], c[ONE], c[ZERO]
        inv_tau = c[INV_TAU]
        inv_tau2 = np.float64(inv_tau) * np.float64(inv_tau)
        scratch = np.empty((slots, (T + 3) * block), dtype=x.dtype)  # per thread: H, gV, gH, V
        for b in nb.prange((N + block - 1) // block):
            lo = b * block
            n = min(block, N - lo)
            mine = scratch[nb.get_thread_id()]  # contiguous pieces (strided views stop vectorisation)
            h_buf = mine[:T * n].reshape((T, n))
            gv, gh, v = mine[T * n:(T + 1) * n], mine[(T + 1) * n:(T + 2) * n], mine[(T + 2) * n:(T + 3) * n]
            tau_sum = 0.0
            for k in range(thresholds.shape[0]):
                th = thresholds[k]
                _load_state(v, v0, k, lo, at_rest, vr)
                for t in range(T):  # recompute this level's H (same ops as the forward)
                    xt = x[t, lo:lo + n]
                    ht = h_buf[t]
                    for i in range(n):
                        h = _charge(v[i], xt[i], tau, vr, decay_input)
                        ht[i] = h
                        v[i] = _reset(h, one if _fires(h, th, strict) else zero, th, vr, one, hard)
                if has_grad_vl:
                    gv[:] = grad_vl[k, lo:lo + n]
                else:
                    gv[:] = zero
                for t in range(T - 1, -1, -1):
                    ht = h_buf[t]
                    gst = grad_s[t, lo:lo + n]
                    gxt = grad_x[t, lo:lo + n]
                    if need_tau:  # constants in each inlined copy (see ``_step_back_any``)
                        _step_back_any(ht, gst, gxt, gv, gh, th, sid, c, hard, decay_input, k == 0, True, strict)
                    else:
                        _step_back_any(ht, gst, gxt, gv, gh, th, sid, c, hard, decay_input, k == 0, False, strict)
                    if need_tau:  # dH/dtau needs V[t-1]: the start state or the reset of H[t-1]
                        xt = x[t, lo:lo + n]
                        for i in range(n):
                            if t == 0:
                                v_prev = np.float64(vr if at_rest else v0[k, lo + i])
                            else:
                                hp = h_buf[t - 1, i]
                                v_prev = np.float64(_reset(hp, one if _fires(hp, th, strict) else zero, th, vr, one,
                                                           hard))
                            if decay_input:
                                tau_sum -= np.float64(gh[i]) * (np.float64(xt[i]) - (v_prev - np.float64(vr))) * inv_tau2
                            else:
                                tau_sum += np.float64(gh[i]) * (v_prev - np.float64(vr)) * inv_tau2
                if not at_rest:
                    grad_v0[k, lo:lo + n] = gv
            grad_tau_blocks[b] = tau_sum


_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def _constants(dtype: torch.dtype, tau: float, params) -> np.ndarray:
    """The typed constants the kernels index by name (TAU, V_REST, ...)."""
    alpha = float(params.alpha)
    values = [
        tau, params.rest, 1.0, 0.0, 0.5 / alpha, 1.0 / tau, alpha, alpha * alpha, np.pi / 2 * alpha, alpha / 2,
        0.0 if params.detach_reset else 1.0, 20.0, 1.0 / 32.0,
        *[1.0 / math.factorial(k) for k in range(TAYLOR_DEGREE + 1)],
    ]
    return np.array(values, dtype=_NUMPY_DTYPES[dtype])


def block_size(N: int, limit: int) -> int:
    """Neurons per work item (a multiple of 64): <= ``limit``, 4 blocks per thread if N allows."""
    per_thread = -(-N // (4 * nb.get_num_threads()))
    return max(MIN_BLOCK, min(limit, -(-per_thread // 64) * 64))


def _state_arrays(x: torch.Tensor, v0: torch.Tensor | None, levels: int) -> tuple[np.ndarray, bool]:
    """``(v0 as an array, at_rest)``; at rest a placeholder (the kernels fill in ``V_REST``)."""
    if v0 is None:
        return np.zeros((levels, 1), dtype=_NUMPY_DTYPES[x.dtype]), True
    return v0.detach().numpy(), False


def forward(x: torch.Tensor, v0: torch.Tensor | None, tau: float, params):
    N = x.shape[1]
    spikes = torch.empty_like(x)
    v_last = torch.empty((params.levels, N), dtype=x.dtype)
    v0_array, at_rest = _state_arrays(x, v0, params.levels)
    thresholds = np.array(params.thresholds, dtype=_NUMPY_DTYPES[x.dtype])
    _forward_kernel(x.detach().numpy(), v0_array, at_rest, spikes.numpy(), v_last.numpy(), thresholds,
                    _constants(x.dtype, tau, params), params.v_reset is not None, params.decay_input, params.strict,
                    block_size(N, MAX_BLOCK), nb.config.NUMBA_NUM_THREADS)
    return spikes, v_last


def backward(x, v0, grad_spikes, grad_v_last, tau: float, params, need_tau: bool):
    from ..surrogate import surrogate_id

    T, N = x.shape
    grad_x = torch.empty_like(x)
    v0_array, at_rest = _state_arrays(x, v0, params.levels)
    grad_v0 = None if at_rest else torch.empty_like(v0)
    block = block_size(N, min(MAX_BLOCK, H_BUDGET // (T * x.element_size()) // 64 * 64))
    grad_tau_blocks = np.zeros(max(-(-N // block), 1), dtype=np.float64)
    has_gvl = grad_v_last is not None
    gvl = grad_v_last.detach().numpy() if has_gvl else v0_array
    thresholds = np.array(params.thresholds, dtype=_NUMPY_DTYPES[x.dtype])
    _backward_kernel(
        x.detach().numpy(), v0_array, at_rest, grad_spikes.detach().numpy(), gvl, has_gvl, thresholds,
        _constants(x.dtype, tau, params), params.v_reset is not None, params.decay_input, params.strict,
        surrogate_id(params.surrogate), need_tau, grad_x.numpy(), v0_array if at_rest else grad_v0.numpy(),
        grad_tau_blocks, block, nb.config.NUMBA_NUM_THREADS,
    )
    return grad_x, grad_v0, float(grad_tau_blocks.sum()) if need_tau else None


def run(x_seq: torch.Tensor, v: torch.Tensor | None, tau, params):
    compute = None if x_seq.dtype in _NUMPY_DTYPES else torch.float32
    return run_fused(sys.modules[__name__], x_seq, v, tau, params, compute)


def input_grad(x_seq: torch.Tensor, grad_spikes: torch.Tensor, tau, params, need_tau: bool):
    compute = None if x_seq.dtype in _NUMPY_DTYPES else torch.float32
    return input_grad_fused(sys.modules[__name__], x_seq, grad_spikes, tau, params, need_tau, compute)

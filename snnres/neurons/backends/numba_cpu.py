"""Fused CPU kernels (numba): the whole sequence in one pass, forward and backward.

Neurons are processed in blocks of ``BLOCK`` (parallel over blocks with ``prange``); inside a
block the loop over neurons is innermost and contiguous, so LLVM vectorises it. The forward
repeats the reference's float operations in the input's dtype, in the same order, so spikes are
bit-identical to the torch backend. The backward recomputes ``H`` for the block from the saved
input (it stays in cache), then runs back in time in float64. The sigmoid surrogate uses a
polynomial ``exp`` (``_exp_neg``), because libm's ``exp`` is a scalar call that stops
vectorisation and would bind the backward.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from .fused import run_fused

BLOCK = 2048  # neurons per work item: T * BLOCK * 4 bytes of recomputed H stays in L2

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

    @nb.njit(inline="always", cache=True)
    def _exp_neg(a):
        """``exp(-a)`` for ``a >= 0`` in float64 with mul/add only: Taylor on ``a/32``, squared 5 times.

        Relative error < 1e-7 on [0, 20]; ``a`` is clamped at 20, where the sigmoid surrogate's
        derivative (``~ alpha * exp(-a)``) is already below 2e-9 of ``alpha``.
        """
        r = -min(a, 20.0) * 0.03125
        p = 1.0 / 3628800.0  # Horner over 1/k!, k = 10..0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        p = p * p
        p = p * p
        p = p * p
        p = p * p
        return p * p

    @nb.njit(inline="always", cache=True)
    def _fill_surrogate(h_row, th, sid, alpha, half_width, out):
        """``out[i] = g'(h_row[i] - th)`` in float64; one branch-free loop per surrogate id."""
        if sid == 0:
            for i in range(out.shape[0]):
                e = _exp_neg(abs(alpha * np.float64(h_row[i] - th)))
                out[i] = alpha * e / ((1.0 + e) * (1.0 + e))
        elif sid == 1:
            for i in range(out.shape[0]):
                z = np.float64(h_row[i] - th) * (1.5707963267948966 * alpha)
                out[i] = (0.5 * alpha) / (1.0 + z * z)
        elif sid == 2:
            for i in range(out.shape[0]):
                out[i] = max(0.0, alpha - alpha * alpha * abs(np.float64(h_row[i] - th)))
        else:
            for i in range(out.shape[0]):
                out[i] = alpha if abs(h_row[i] - th) < half_width else 0.0

    @nb.njit(inline="always", cache=True)
    def _charge(v, x, tau, vr, decay_input):
        """``H[t]`` from ``V[t-1]`` and ``X[t]``, in the reference's operation order."""
        return v + (x - (v - vr)) / tau if decay_input else v - (v - vr) / tau + x

    @nb.njit(inline="always", cache=True)
    def _reset(h, s, th, vr, one, hard):
        """``V[t]`` after spike ``s``: ``s * vr + (1 - s) * h`` (hard) or ``h - s * th`` (soft)."""
        return s * vr + (one - s) * h if hard else h - s * th

    @nb.njit(parallel=True, cache=True)
    def _forward_kernel(x, v0, spikes, v_last, thresholds, consts, hard, decay_input):
        """consts = [tau, v_rest, one, zero] in the dtype of ``x``."""
        T, N = x.shape
        tau, vr, one, zero = consts[0], consts[1], consts[2], consts[3]
        for b in nb.prange((N + BLOCK - 1) // BLOCK):
            lo = b * BLOCK
            n = min(BLOCK, N - lo)
            for k in range(thresholds.shape[0]):
                th = thresholds[k]
                v = v0[k, lo:lo + n].copy()
                for t in range(T):
                    # Row views: indexing them with the loop counter lets LLVM vectorise.
                    xt = x[t, lo:lo + n]
                    st = spikes[t, lo:lo + n]
                    for i in range(n):
                        vi = v[i]
                        h = _charge(vi, xt[i], tau, vr, decay_input)
                        s = one if h >= th else zero
                        v[i] = _reset(h, s, th, vr, one, hard)
                        if k == 0:
                            st[i] = s
                        else:
                            st[i] += s
                v_last[k, lo:lo + n] = v

    @nb.njit(parallel=True, cache=True)
    def _backward_kernel(x, v0, grad_s, grad_vl, has_grad_vl, thresholds, consts, hard, decay_input,
                         detach, sid, alpha, need_tau, grad_x, grad_v0, grad_tau_blocks):
        """consts = [tau, v_rest, one, zero, rectangle half-width] in the dtype of ``x``.

        Back in time: ``gH = gS g'(H - th) + gV dV/dH``, ``gX = gH dH/dX``, ``gV <- gH (1 - 1/tau)``.
        """
        T, N = x.shape
        tau, vr, one, zero, half_width = consts[0], consts[1], consts[2], consts[3], consts[4]
        inv_tau64 = 1.0 / np.float64(tau)  # gradients need no bit-exactness: multiply, not divide
        vr64 = np.float64(vr)
        inv_tau2 = inv_tau64 * inv_tau64
        keep = 0.0 if detach else 1.0
        for b in nb.prange((N + BLOCK - 1) // BLOCK):
            lo = b * BLOCK
            n = min(BLOCK, N - lo)
            h_buf = np.empty((T, n), dtype=x.dtype)
            gv = np.empty(n, dtype=np.float64)
            sg = np.empty(n, dtype=np.float64)
            gh = np.empty(n, dtype=np.float64)
            tau_sum = 0.0
            for k in range(thresholds.shape[0]):
                th = thresholds[k]
                th64 = np.float64(th)
                v0k = v0[k, lo:lo + n]
                v = v0k.copy()
                for t in range(T):  # recompute this level's H (same ops as the forward)
                    xt = x[t, lo:lo + n]
                    ht = h_buf[t]
                    for i in range(n):
                        h = _charge(v[i], xt[i], tau, vr, decay_input)
                        ht[i] = h
                        v[i] = _reset(h, one if h >= th else zero, th, vr, one, hard)
                if has_grad_vl:
                    gvk = grad_vl[k, lo:lo + n]
                    for i in range(n):
                        gv[i] = gvk[i]
                else:
                    gv[:] = 0.0
                for t in range(T - 1, -1, -1):
                    ht = h_buf[t]
                    gst = grad_s[t, lo:lo + n]
                    gxt = grad_x[t, lo:lo + n]
                    _fill_surrogate(ht, th, sid, alpha, half_width, sg)
                    for i in range(n):
                        h = ht[i]
                        if hard:
                            fired = 1.0 if h >= th else 0.0
                            dv_dh = (1.0 - fired) + keep * (vr64 - np.float64(h)) * sg[i]
                        else:
                            dv_dh = 1.0 - keep * th64 * sg[i]
                        g = np.float64(gst[i]) * sg[i] + gv[i] * dv_dh
                        gh[i] = g
                        gx = g * inv_tau64 if decay_input else g
                        if k == 0:
                            gxt[i] = gx
                        else:
                            gxt[i] += gx
                        gv[i] = g - g * inv_tau64
                    if need_tau:  # dH/dtau needs V[t-1]: the start state or the reset of H[t-1]
                        xt = x[t, lo:lo + n]
                        for i in range(n):
                            if t == 0:
                                v_prev = np.float64(v0k[i])
                            else:
                                hp = h_buf[t - 1, i]
                                v_prev = np.float64(_reset(hp, one if hp >= th else zero, th, vr, one, hard))
                            if decay_input:
                                tau_sum -= gh[i] * (np.float64(xt[i]) - (v_prev - vr64)) * inv_tau2
                            else:
                                tau_sum += gh[i] * (v_prev - vr64) * inv_tau2
                gv0k = grad_v0[k, lo:lo + n]
                for i in range(n):
                    gv0k[i] = gv[i]
            grad_tau_blocks[b] = tau_sum


_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def _consts(x: torch.Tensor, tau: float, params, *extra: float) -> np.ndarray:
    return np.array([tau, params.rest, 1.0, 0.0, *extra], dtype=_NUMPY_DTYPES[x.dtype])


def forward(x: torch.Tensor, v0: torch.Tensor, tau: float, params):
    spikes = torch.empty_like(x)
    v_last = torch.empty_like(v0)
    thresholds = np.array(params.thresholds, dtype=_NUMPY_DTYPES[x.dtype])
    _forward_kernel(x.detach().numpy(), v0.detach().numpy(), spikes.numpy(), v_last.numpy(), thresholds,
                    _consts(x, tau, params), params.v_reset is not None, params.decay_input)
    return spikes, v_last


def backward(x, v0, grad_spikes, grad_v_last, tau: float, params, need_tau: bool):
    from ..surrogate import surrogate_id

    grad_x = torch.empty_like(x)
    grad_v0 = torch.empty_like(v0)
    blocks = (x.shape[1] + BLOCK - 1) // BLOCK
    grad_tau_blocks = np.zeros(max(blocks, 1), dtype=np.float64)
    has_gvl = grad_v_last is not None
    gvl = grad_v_last.detach().numpy() if has_gvl else v0.detach().numpy()
    thresholds = np.array(params.thresholds, dtype=_NUMPY_DTYPES[x.dtype])
    consts = _consts(x, tau, params, 0.5 / params.alpha)
    _backward_kernel(
        x.detach().numpy(), v0.detach().numpy(), grad_spikes.detach().numpy(), gvl, has_gvl, thresholds,
        consts, params.v_reset is not None, params.decay_input, params.detach_reset,
        surrogate_id(params.surrogate), float(params.alpha), need_tau, grad_x.numpy(), grad_v0.numpy(),
        grad_tau_blocks,
    )
    return grad_x, grad_v0, float(grad_tau_blocks.sum()) if need_tau else None


def run(x_seq: torch.Tensor, v: torch.Tensor, tau, params):
    compute = None if x_seq.dtype in _NUMPY_DTYPES else torch.float32
    return run_fused(sys.modules[__name__], x_seq, v, tau, params, compute)

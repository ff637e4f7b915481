"""Input events: checks (``snnres.data.validate``), binning exactly as Tonic's ``ToFrame(n_time_bins=T)``.

Tonic's time bins for a recording with first and last timestamps ``t_0``, ``t_n``::

    w = (t_n - t_0) // T          (integer division, then a float)
    bin i = [i * w + t_0, i * w + t_0 + w)      for i = 0 .. T-1

so events after ``T * w + t_0`` (the remainder of the division) fall in no bin and are dropped.
A step's events become CSR rows of (channels-last pixel index ``(y * W + x) * P + p``, count).
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

# The one validation of events, shared with the data loaders.
from ..data.validate import check_events, check_sensor_size  # noqa: F401  (re-exported)


@nb.njit(cache=True)
def tonic_bins(t: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray]:
    """Tonic's bin starts and ends (float64) for sorted timestamps ``t``."""
    window = np.float64((t[-1] - t[0]) // T)
    starts = np.arange(T) * window + t[0]
    return starts, starts + window


@nb.njit(cache=True)
def bin_edges(t: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index ranges ``[lo_i, hi_i)`` of the events in each bin (as Tonic's ``searchsorted``). In numba:
    numpy's ``searchsorted`` first copies the strided timestamp field of the structured events."""
    return np.searchsorted(t, starts), np.searchsorted(t, ends)


def events_to_csr(events: np.ndarray, sensor_size, lo: np.ndarray, hi: np.ndarray):
    """CSR ``(ptr, idx, val)`` of per-step pixel counts for the event ranges ``[lo_i, hi_i)``: the
    channels-last pixel index ``(y * W + x) * P + p`` of each event, counted per step, pixels in
    increasing order."""
    width, _, polarities = sensor_size
    x = events["x"]
    y = events["y"] if "y" in events.dtype.names else x  # not read without a y field
    p = events["p"] if polarities > 1 else x  # not read with one polarity
    return _count_pixels(x, y, p, "y" in events.dtype.names, polarities > 1, np.asarray(lo, dtype=np.int64),
                         np.asarray(hi, dtype=np.int64), width, polarities, int(np.prod(sensor_size)))


@nb.njit(cache=True)
def _count_pixels(x, y, p, has_y, has_p, lo, hi, width, polarities, pixels):
    """``events_to_csr``'s counts: per step, a counter per pixel and a bitmap of the pixels met,
    read back in increasing order (trailing-zero counts) and cleared."""
    steps = lo.size
    total = 0
    for s in range(steps):
        total += max(hi[s] - lo[s], 0)
    idx = np.empty(total, dtype=np.int64)
    val = np.empty(total, dtype=np.float32)
    ptr = np.zeros(steps + 1, dtype=np.int64)
    count = np.zeros(pixels, dtype=np.int64)
    met = np.zeros((pixels + 63) // 64, dtype=np.uint64)
    j = 0
    for s in range(steps):
        for e in range(lo[s], hi[s]):
            q = ((np.int64(y[e]) if has_y else 0) * width + np.int64(x[e])) * polarities
            if has_p:
                q += np.int64(p[e])
            count[q] += 1
            met[q >> 6] |= np.uint64(1) << np.uint64(q & 63)
        for k in range(met.size):
            word = met[k]
            while word != 0:
                q = k * 64 + np.int64(trailing_zeros(word))
                idx[j], val[j] = q, count[q]
                count[q] = 0
                j += 1
                word &= word - np.uint64(1)
            met[k] = 0
        ptr[s + 1] = j
    return ptr, idx[:j].copy(), val[:j].copy()


def frames_to_csr(frames: np.ndarray):
    """CSR of a frame array ``[T, C, H, W]`` (any real values), channels-last."""
    T = frames.shape[0]
    rows = np.ascontiguousarray(frames.transpose(0, 2, 3, 1)).reshape(T, -1).astype(np.float32)
    nz_t, nz_i = np.nonzero(rows)
    ptr = np.zeros(T + 1, dtype=np.int64)
    np.cumsum(np.bincount(nz_t, minlength=T), out=ptr[1:])
    return ptr, nz_i.astype(np.int64), rows[nz_t, nz_i]

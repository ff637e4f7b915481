"""The LLVM intrinsics of the CPU kernels (``snnres.sim.intrinsics``) against plain numpy."""

import numba as nb
import numpy as np
import pytest

from snnres.sim import intrinsics


@nb.njit
def _add_rows(w, code, val, bounds, shift, scaled, acc16, acc32, acc64):
    for k in range(bounds.shape[0]):
        start, stop = bounds[k, 0], bounds[k, 1]
        if scaled:
            intrinsics.add_rows(acc16, w[0], code, val, start, stop, shift, True, 16)
            intrinsics.add_rows(acc32, w[1], code, val, start, stop, shift, True, 32)
            intrinsics.add_rows(acc64, w[2], code, val, start, stop, shift, True, 64)
        else:
            intrinsics.add_rows(acc16, w[0], code, val, start, stop, shift, False, 16)
            intrinsics.add_rows(acc32, w[1], code, val, start, stop, shift, False, 32)
            intrinsics.add_rows(acc64, w[2], code, val, start, stop, shift, False, 64)


@pytest.mark.parametrize("scaled", [False, True])
def test_add_rows_is_the_scalar_loop(scaled):
    """``intrinsics.add_rows`` (16-lane vectors, one loop) against numpy's float32 ``acc += (val[j] *)
    w[code[j] + shift]`` event by event, bit for bit, for blocks of 16, 32 and 64 lanes; empty and
    reversed ranges add nothing."""
    rng = np.random.default_rng(5)
    w = [rng.standard_normal((12, width)).astype(np.float32) for width in (16, 32, 64)]
    code = rng.integers(0, 9, 40)
    val = rng.integers(1, 4, 40).astype(np.float32) * np.float32(0.7)
    bounds = np.array([[0, 5], [5, 5], [9, 7], [11, 40], [39, 40]])
    accs = [rng.standard_normal(width).astype(np.float32) for width in (16, 32, 64)]
    expected = [a.copy() for a in accs]
    for start, stop in bounds:
        for j in range(start, stop):
            for e, wk in zip(expected, w):
                e += val[j] * wk[code[j] + 3] if scaled else wk[code[j] + 3]
    _add_rows(tuple(w), code, val, bounds, 3, scaled, *accs)
    for got, want in zip(accs, expected):
        np.testing.assert_array_equal(got, want)


@nb.njit
def _add_three_rows(w, code, val, starts, stops, shifts, scaled, acc32, acc64):
    if scaled:
        intrinsics.add_three_rows(acc32, w[0], code, val, starts, stops, shifts, True, 32)
        intrinsics.add_three_rows(acc64, w[1], code, val, starts, stops, shifts, True, 64)
    else:
        intrinsics.add_three_rows(acc32, w[0], code, val, starts, stops, shifts, False, 32)
        intrinsics.add_three_rows(acc64, w[1], code, val, starts, stops, shifts, False, 64)


@pytest.mark.parametrize("ranges", [((0, 5), (5, 9), (20, 40)), ((3, 3), (10, 12), (12, 12)), ((7, 8), (8, 8), (0, 6)),
                                    ((0, 0), (0, 0), (39, 40)), ((2, 2), (4, 4), (9, 9))])
@pytest.mark.parametrize("scaled", [False, True])
def test_add_three_rows_is_three_scalar_loops(ranges, scaled):
    """``intrinsics.add_three_rows`` (one loop over the joined ranges) against numpy's float32 ``acc +=
    (val[j] *) w[code[j] + shift_k]`` range after range, event by event, bit for bit: empty ranges
    anywhere, ranges out of order in memory, each with its own shift."""
    rng = np.random.default_rng(len(str(ranges)) + scaled)
    w = [rng.standard_normal((20, width)).astype(np.float32) for width in (32, 64)]
    code = rng.integers(0, 9, 40)
    val = rng.integers(1, 4, 40).astype(np.float32) * np.float32(0.7)
    shifts = (0, 5, 11)
    accs = [rng.standard_normal(width).astype(np.float32) for width in (32, 64)]
    expected = [a.copy() for a in accs]
    for (start, stop), shift in zip(ranges, shifts):
        for j in range(start, stop):
            for e, wk in zip(expected, w):
                e += val[j] * wk[code[j] + shift] if scaled else wk[code[j] + shift]
    starts, stops = tuple(r[0] for r in ranges), tuple(r[1] for r in ranges)
    _add_three_rows(tuple(w), code, val, starts, stops, shifts, scaled, *accs)
    for got, want in zip(accs, expected):
        np.testing.assert_array_equal(got, want)


@nb.njit
def _ge_bits(h16, h32, h64, threshold):
    return intrinsics.ge_bits(h16, threshold, 16), intrinsics.ge_bits(h32, threshold, 32), intrinsics.ge_bits(h64, threshold,
                                                                                                     64)


def test_ge_bits_packs_the_comparison_in_lane_order():
    """Bit ``o`` of ``intrinsics.ge_bits`` is ``h[o] >= threshold``: equal values fire, NaN does not."""
    rng = np.random.default_rng(6)
    threshold = np.float32(0.5)
    hs = [rng.choice(np.array([0.25, 0.5, 0.75, np.nan, -1.0], np.float32), width) for width in (16, 32, 64)]
    hs[2][63] = threshold  # the top bit of a full word
    for h, word in zip(hs, _ge_bits(*hs, threshold)):
        want = sum(1 << o for o in range(h.size) if h[o] >= threshold)
        assert int(word) == want


@nb.njit
def _set_bits32(halves, out, scale, offset):
    j = 0
    for k in range(halves.size):
        j += intrinsics.set_bits32(halves[k], out, j, scale, offset + k)
    return j


def test_set_bits32_lists_set_bits_in_order():
    """``intrinsics.set_bits32`` against numpy's ``nonzero`` half by half: ``b * scale + offset`` for each set
    bit, in increasing order, for empty, full, sparse and dense halves (more than 16 bits: a second
    store), negative offsets; nothing written past the last entry's ``SET_BITS_SLACK``."""
    rng = np.random.default_rng(3)
    halves = np.concatenate([np.array([0, 0xFFFFFFFF, 1, 1 << 31, 0x0001FFFF], np.uint32),
                             rng.integers(0, 1 << 32, 40, dtype=np.uint64).astype(np.uint32),
                             (rng.random((30, 32)) < 0.05) @ (np.uint64(1) << np.arange(32, dtype=np.uint64))])
    halves = halves.astype(np.uint32)
    expected = np.concatenate([np.nonzero((int(h) >> np.arange(32)) & 1)[0] * 9 - 40 + k for k, h in enumerate(halves)])
    out = np.full(expected.size + intrinsics.SET_BITS_SLACK + 16, -7, np.int32)
    assert _set_bits32(halves, out, 9, -40) == expected.size
    np.testing.assert_array_equal(out[:expected.size], expected)
    assert np.all(out[expected.size + intrinsics.SET_BITS_SLACK:] == -7)

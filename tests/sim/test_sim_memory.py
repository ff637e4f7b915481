"""Weights in huge pages (``memory.HugePageArena``) and in register blocks (``gather.conv_blocks``)."""

import numpy as np
import pytest

from snnres.sim import gather, memory


def test_arena_arrays_are_aligned_and_disjoint():
    """Each array starts on a 64-byte boundary, has its shape and dtype, and shares no byte with
    another: small ones packed into one mapping, one larger than a mapping on its own, then small
    ones again in a fresh mapping."""
    arena = memory.HugePageArena(chunk=memory.HUGE_PAGE)
    shapes = [(3, 5), (7,), (1000, 300), (2,), (300_000, 2), (16, 16), (5,)]
    dtypes = [np.float32, np.int32, np.float32, np.uint64, np.float32, np.float64, np.uint8]
    arrays = [arena.empty(shape, dtype) for shape, dtype in zip(shapes, dtypes)]
    for k, (a, shape, dtype) in enumerate(zip(arrays, shapes, dtypes)):
        assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
        assert a.ctypes.data % memory.ALIGN == 0
        a[...] = k + 1
    for k, a in enumerate(arrays):
        assert np.all(a == k + 1), f"array {k} was overwritten by a later one"
    spans = sorted((a.ctypes.data, a.ctypes.data + a.nbytes) for a in arrays)
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))


@pytest.mark.parametrize("width", [32, 64, 128])
def test_conv_blocks_split_output_channels(width):
    """``conv_blocks`` against numpy: block ``b`` holds output channels ``b * width ...`` of every
    ``(c, ky, kx)`` row, zero beyond the last channel, in arena memory or ordinary memory alike."""
    rng = np.random.default_rng(width)
    w_t = rng.standard_normal((5, 3, 2, 150)).astype(np.float32)
    rows = w_t.reshape(30, 150)
    padded = np.zeros((30, -(-150 // width) * width), np.float32)
    padded[:, :150] = rows
    want = padded.reshape(30, -1, width).transpose(1, 0, 2)
    for empty in (memory.aligned_empty, memory.HugePageArena().empty):
        stale = empty((want.size,), np.float32)
        stale[...] = np.nan  # conv_blocks must write every entry, zeros included
        got = gather.conv_blocks(w_t, width, lambda shape, dtype: stale.reshape(shape))
        np.testing.assert_array_equal(got, want)

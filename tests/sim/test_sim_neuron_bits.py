"""``fused.neuron_bits`` (a neuron layer fed by a current, position by position, membranes in
registers) against ``kernels.neuron_chunk`` (step by step): the same spikes, membranes, 'away from
rest' flags and update counts, bit for bit."""

import numpy as np
import pytest

from snnres.sim import bits, fused, kernels

CASES = {  # (thresholds, tau, V_r, decay_input, hard)
    "lif-hard": ([0.5], 2.0, 0.0, True, True),
    "lif-soft-divided": ([0.75], 1.5, 0.0, True, False),
    "lif-no-decay-input": ([0.5], 3.0, -0.125, False, True),
    "mlf-3": ([0.5, 1.5, 2.5], 4.0, 0.0, True, True),
    "mlf-2-soft": ([0.5, 1.5], 2.0, 0.0, True, False),
    "always": ([-0.25], 2.0, 0.0, True, True),  # a threshold below rest: neurons at rest fire too
}


@pytest.mark.parametrize("channels", [32, 96, 128, 256])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("fresh", [False, True])
def test_neuron_bits_is_neuron_chunk(case, channels, with_bias, fresh):
    """Also ``fresh``: all at rest, the membranes not yet written (poisoned here): the kernel starts
    from rest itself and writes every membrane, skipped positions included."""
    thresholds, tau, v_r, decay_input, hard = CASES[case]
    levels = len(thresholds)
    if channels == 256 and levels > 1:
        pytest.skip("one width per level count is enough")
    if fresh and channels in (96, 256):
        pytest.skip("a start from rest is checked on the 32- and 128-channel layouts")
    rng = np.random.default_rng(channels + levels + 7 * with_bias)
    steps, positions = 5, 13
    n = positions * channels
    touched = (rng.random((steps, positions)) < 0.3).astype(np.uint8)
    touched[:, :3] = 0  # positions never touched: skipped unless away from rest, biased or 'always'
    current = rng.integers(-4, 9, (steps, n)).astype(np.float32) * np.float32(0.125)
    current.reshape(steps, positions, channels)[touched == 0] = np.nan  # stale where untouched: never read
    bias = (rng.integers(-2, 3, channels) * 0.0625).astype(np.float32) if with_bias else np.zeros(channels, np.float32)
    v0 = np.full((levels, n), v_r, dtype=np.float32)
    awake0 = np.zeros(positions, dtype=np.uint8)
    if not fresh:
        awake0[1] = awake0[5] = 1  # away from rest from an earlier chunk (position 1: never touched now)
    for p in () if fresh else (1, 5):
        v0[:, p * channels:(p + 1) * channels] = rng.integers(-3, 4, (levels, channels)) * np.float32(0.25)
    consts = np.array([tau, v_r, 0.0, *thresholds], dtype=np.float32)  # then V_th per level: a soft reset's
    th = np.array(thresholds, dtype=np.float32)
    always = bool(th.min() <= v_r)

    v_want, awake_want = v0.copy(), awake0.copy()
    ptr = np.empty(steps + 1, np.int64)
    idx, val = np.empty(steps * n, np.int64), np.empty(steps * n, np.float32)
    clean = np.nan_to_num(current)  # neuron_part reads rest_input where untouched, never the stale values
    updates_want = kernels.neuron_chunk(clean, touched, bias, with_bias, v_want, awake_want, th, consts,
                                        decay_input, hard, always, 1, ptr, idx, val)

    v_got, awake_got = (np.full_like(v0, np.nan) if fresh else v0.copy()), awake0.copy()
    width = 128 if levels == 1 and channels % 128 == 0 else 64 if channels % 64 == 0 else 32
    fired = np.full((levels, steps, -(-n // 64)), np.uint64(0xDEADBEEF))  # every word is written
    fired[..., -1] = 0
    updates_got = fused.neuron_bits(current, touched, bias, with_bias or always, v_got, awake_got, th, consts,
                                    decay_input, hard, fired, width, fresh)
    got_ptr, spikes = bits.bit_counts(fired)
    got_idx, got_val = bits.emit_bits(fired, got_ptr)

    np.testing.assert_array_equal(got_ptr, ptr)
    np.testing.assert_array_equal(got_idx, idx[:ptr[-1]])
    np.testing.assert_array_equal(got_val, val[:ptr[-1]])
    assert spikes == val[:ptr[-1]].sum()
    np.testing.assert_array_equal(v_got.view(np.uint32), v_want.view(np.uint32))
    np.testing.assert_array_equal(awake_got, awake_want)
    assert updates_got == updates_want
    assert ptr[-1] > 0 and (always or awake_want.any())  # the cases are not trivial

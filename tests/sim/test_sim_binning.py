"""The simulator's input binning (``snnres.sim.events``) against Tonic's ``ToFrame(n_time_bins=T)``."""

import numpy as np
import pytest

from snnres.data import bin_events
from snnres.sim import kernels
from snnres.sim.events import bin_edges, events_to_csr, tonic_bins


def tonic_style_events(rng, sensor, n, with_y=True, x_dtype=np.int16):
    """Sorted events on a small sensor, so that many pixels get several events in a step."""
    width, height, polarities = sensor
    fields = [("t", np.int64), ("x", x_dtype)] + ([("y", np.int16)] if with_y else []) + [("p", bool)]
    events = np.zeros(n, dtype=fields)
    events["t"] = np.sort(rng.integers(0, 50_000, n))
    events["x"] = rng.integers(0, width, n)
    if with_y:
        events["y"] = rng.integers(0, height, n)
    events["p"] = rng.integers(0, polarities, n)
    return events


@pytest.mark.parametrize("sensor, with_y, T", [((9, 7, 2), True, 5), ((70, 1, 1), False, 3), ((130, 3, 2), True, 11)])
def test_events_to_csr_is_tonic_to_frame(sensor, with_y, T):
    """Per step, the pixels in increasing channels-last order with Tonic's counts (events past the
    last whole bin dropped, as Tonic drops them); a step without events is an empty row."""
    rng = np.random.default_rng(sum(sensor) + T)
    events = tonic_style_events(rng, sensor, 3000, with_y, np.uint16 if with_y else np.int32)
    events = np.concatenate([events[:100], events[1500:]])  # a gap: some steps may have no events
    ptr, idx, val = events_to_csr(events, sensor, *bin_edges(events["t"], *tonic_bins(events["t"], T)))
    assert all(np.all(np.diff(idx[ptr[t]:ptr[t + 1]]) > 0) for t in range(T))
    dense = np.zeros((T, int(np.prod(sensor))), dtype=np.float32)
    kernels.densify(ptr, idx, val, dense)
    frames = bin_events(events, sensor, T)  # [T, P, H, W]
    np.testing.assert_array_equal(dense, frames.transpose(0, 2, 3, 1).reshape(T, -1))
    assert val.max() > 1  # pixels with several events in a step were counted

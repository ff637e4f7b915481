"""Streaming: feed a recording in pieces; neuron state and counts carry over between pieces.

``push_frames(frames)`` runs ``[T_c, C, H, W]`` steps at once. ``push(events)`` bins events into
fixed bins ``[k * bin_us + t_start, k * bin_us + t_start + bin_us)`` (Tonic's float arithmetic)
and runs every bin that is complete, i.e. that a later event has passed; ``close(T)`` runs the
rest, up to ``T`` bins in all. With ``bin_us = (t_n - t_0) // T`` and ``t_start = t_0`` this gives
exactly the bins of ``ToFrame(n_time_bins=T)``, however the events are cut into pieces.
"""

from __future__ import annotations

import numpy as np
import torch

from .events import bin_edges, check_events, check_sensor_size, events_to_csr, frames_to_csr, tonic_bins
from .signals import Events
from .state import SimResult, SimState, result


class EventStream:
    """State of one recording being simulated (see the module docstring)."""

    def __init__(self, simulator, record: bool = False):
        self.simulator = simulator
        self.state = SimState(trains={} if record else None)
        self.input_shape: tuple[int, ...] | None = None
        self._binning: tuple | None = None   # (sensor_size, bin_us, t_start)
        self._pending: list[np.ndarray] = []
        self._bins_done = 0
        self._last_t: int | None = None

    def _run(self, input_shape: tuple[int, ...], ptr, idx, val, integer: bool) -> None:
        if self.input_shape is None:
            self.input_shape = tuple(input_shape)
        elif tuple(input_shape) != self.input_shape:
            raise ValueError(f"this stream's input is {self.input_shape}, the new piece is {tuple(input_shape)}")
        if len(ptr) > 1:
            self.simulator.run_chunk(self.input_shape, self.state, Events(ptr, idx, val, integer=integer))

    def push_frames(self, frames, T: int | None = None) -> None:
        """Run frames ``[T_c, C, H, W]`` (or ``[1, T_c, C, H, W]``): counts, spikes or real values."""
        if isinstance(frames, torch.Tensor):
            frames = frames.detach().cpu().numpy()
        if not isinstance(frames, np.ndarray) or frames.dtype.names is not None:
            raise TypeError(f"frames must be a tensor or array [T, C, H, W], got {type(frames).__name__}")
        if frames.ndim == 5 and frames.shape[0] == 1:
            frames = frames[0]
        if frames.ndim != 4:
            raise ValueError(
                f"frames must be [T, C, H, W] (or [1, T, C, H, W]), got shape {frames.shape}; "
                "events must be Tonic's structured events (fields x, y, p, t)"
            )
        if T is not None and T != frames.shape[0]:
            raise ValueError(f"the frames have {frames.shape[0]} steps but T={T} was asked for")
        if not (np.issubdtype(frames.dtype, np.number) or frames.dtype == np.bool_):
            raise TypeError(f"frames must be numeric, got {frames.dtype}")
        if not np.isfinite(frames).all():
            raise ValueError("frames contain NaN or inf")
        integer = bool(np.all(frames >= 0) and np.all(frames == np.round(frames)))
        self._run(frames.shape[1:], *frames_to_csr(frames), integer)

    def push_events_tonic(self, events, sensor_size, T: int, sort: bool = False) -> None:
        """A whole recording, binned as ``ToFrame(sensor_size, n_time_bins=T)``."""
        if not isinstance(T, (int, np.integer)) or T < 1:
            raise ValueError(f"T must be a positive number of time bins, got {T!r}")
        sensor_size = check_sensor_size(sensor_size)
        events = check_events(events, sensor_size, sort)
        shape = (sensor_size[2], sensor_size[1], sensor_size[0])
        if len(events) == 0:
            ptr = np.zeros(T + 1, dtype=np.int64)
            return self._run(shape, ptr, np.zeros(0, np.int64), np.zeros(0, np.float32), True)
        lo, hi = bin_edges(events["t"], *tonic_bins(events["t"], T))
        self._run(shape, *events_to_csr(events, sensor_size, lo, hi), True)

    def push(self, events, sensor_size, bin_us: float, t_start: float = 0.0, sort: bool = False) -> int:
        """Add events (sorted after the earlier ones); runs the bins they complete; returns how many."""
        if not bin_us > 0:
            raise ValueError(f"bin_us must be > 0, got {bin_us}")
        sensor_size = check_sensor_size(sensor_size)
        binning = (sensor_size, float(bin_us), float(t_start))
        if self._binning is None:
            self._binning = binning
        elif self._binning != binning:
            raise ValueError(f"this stream bins with {self._binning}, not {binning}")
        events = check_events(events, sensor_size, sort)
        if len(events):
            if self._last_t is not None and events["t"][0] < self._last_t:
                raise ValueError(
                    f"events go back in time: this piece starts at t={int(events['t'][0])}, "
                    f"the previous piece ended at t={self._last_t}"
                )
            self._last_t = int(events["t"][-1])
            self._pending.append(events)
        complete = self._bins_before(self._last_t) if self._last_t is not None else 0
        return self._run_bins(complete)

    def close(self, T: int | None = None) -> int:
        """Run the remaining bins: up to ``T`` bins in all (default: through the last event)."""
        if self._binning is None:
            return 0
        end = T if T is not None else self._bins_before(self._last_t) + 1 if self._last_t is not None else 0
        return self._run_bins(end)

    def _starts(self, k: np.ndarray) -> np.ndarray:
        _, bin_us, t_start = self._binning
        return k * bin_us + t_start

    def _bins_before(self, t: int) -> int:
        """Bins that end at or before ``t`` (no later event can fall in them)."""
        _, bin_us, t_start = self._binning
        k = max(int((t - t_start) // bin_us) - 1, 0)
        while self._starts(np.array(k)) + bin_us <= t:
            k += 1
        return k

    def _run_bins(self, end: int) -> int:
        begin = self._bins_done
        if end <= begin:
            return 0
        sensor_size, bin_us, _ = self._binning
        events = np.concatenate(self._pending) if self._pending else np.zeros(0, self._dtype())
        starts = self._starts(np.arange(begin, end))
        lo, hi = bin_edges(events["t"], starts, starts + bin_us)
        shape = (sensor_size[2], sensor_size[1], sensor_size[0])
        self._run(shape, *events_to_csr(events, sensor_size, lo, hi), True)
        self._pending = [events[hi[-1]:]] if len(events) else []
        self._bins_done = end
        return end - begin

    @staticmethod
    def _dtype():
        from ..data.events import EVENT_DTYPE

        return EVENT_DTYPE

    def result(self) -> SimResult:
        """Logits (time-mean over the steps run so far) and the counts."""
        return result(self.simulator.graph(self.input_shape), self.state)

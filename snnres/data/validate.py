"""Checks on event recordings as they come in: the one validation every reader of events uses.

Two levels. ``check_events`` checks decoded events (Tonic's structured array with fields x, y, p,
t) against a sensor ``(W, H, P)``: integer fields, timestamps >= 0 and sorted, coordinates and
polarities inside the sensor. ``snnres.data`` runs it on every recording it reads and
``snnres.sim`` on every recording it simulates. ``check_file`` looks at a file before it is
decoded, for what decoding would hide: an empty or HTML file, a size that is no whole number of
records, NaN/inf and polarity values that Tonic's integer and bool casts would silently turn into
valid-looking events.
"""

from __future__ import annotations

from pathlib import Path

import numba as nb
import numpy as np


class EventError(ValueError):
    """Events that break a rule; ``problem`` says what is wrong, ``hint`` what the caller can do."""

    def __init__(self, problem: str, hint: str = ""):
        self.problem, self.hint = problem, hint
        super().__init__(f"{problem}; {hint}" if hint else problem)


def check_sensor_size(sensor_size) -> tuple[int, int, int]:
    try:
        width, height, polarities = (int(v) for v in sensor_size)
    except (TypeError, ValueError):
        raise ValueError(f"sensor_size must be Tonic's (W, H, P), got {sensor_size!r}") from None
    if min(width, height, polarities) < 1:
        raise ValueError(f"sensor_size (W, H, P) must be positive, got {sensor_size!r}")
    return width, height, polarities


def check_events(events, sensor_size: tuple[int, int, int], sort: bool = False) -> np.ndarray:
    """Validated events (a sorted copy when ``sort``); raises ``EventError`` (a ``ValueError``) or
    ``TypeError`` on bad input."""
    if not isinstance(events, np.ndarray) or events.dtype.names is None:
        raise TypeError(
            f"events must be a numpy structured array with fields x, y, p, t (Tonic's layout), "
            f"got {type(events).__name__}{'' if not hasattr(events, 'dtype') else ' of dtype ' + str(events.dtype)}"
        )
    names = events.dtype.names
    missing = [f for f in ("x", "p", "t") if f not in names]
    if missing:
        raise EventError(f"events lack the field(s) {missing}", f"expected x, y, p, t, got {list(names)}")
    for f in ("x", "y", "p", "t"):
        if f in names and events.dtype[f].kind not in "iub":  # integer or bool
            raise TypeError(
                f"events field {f!r} must be integer (p may be bool), got {events.dtype[f]}; "
                "timestamps are integer microseconds in Tonic"
            )
    width, height, polarities = sensor_size
    if "y" not in names and height != 1:
        raise EventError(f"events have no y field, so the sensor height must be 1, got sensor_size {sensor_size}")
    if len(events) == 0:
        return events
    has_y = "y" in names
    t_min, unsorted, (x_lo, x_hi), (y_lo, y_hi), (p_lo, p_hi) = _scan(
        events["t"], events["x"], events["y"] if has_y else events["x"], events["p"])
    if t_min < 0:
        raise EventError(f"events have negative timestamps (min {t_min})", "timestamps must be >= 0")
    if unsorted >= 0 and not sort:
        t = events["t"]
        raise EventError(
            f"event timestamps are not sorted (event {unsorted + 1} at t={int(t[unsorted + 1])} comes after "
            f"t={int(t[unsorted])})", "sort them by t or pass sort=True")
    if x_lo < 0 or (has_y and y_lo < 0) or x_hi >= width or (has_y and y_hi >= height):
        field, low, high, size = ("x", x_lo, x_hi, width) if x_lo < 0 or x_hi >= width else ("y", y_lo, y_hi, height)
        extent = f"{x_hi + 1}x{y_hi + 1}" if has_y else f"{x_hi + 1}"
        raise EventError(
            f"events outside the sensor: {field} spans [{low}, {high}], the sensor allows [0, {size - 1}] "
            f"(the events need a sensor of at least {extent}, this one is {width}x{height})",
            "check sensor_size (W, H, P)")
    if polarities == 1:
        if p_hi != p_lo:
            raise EventError("sensor_size has one polarity but the events have two", "use P=2")
    elif p_lo < 0 or p_hi >= polarities:
        raise EventError(f"polarity values span [{p_lo}, {p_hi}], the sensor allows [0, {polarities - 1}]",
                         "polarity is 0 (OFF) or 1 (ON)")
    if unsorted >= 0:
        events = events[np.argsort(events["t"], kind="stable")]
    return events


@nb.njit(cache=True)
def _scan(t, x, y, p):
    """One pass over the events: the least timestamp, the first event followed by an earlier one (-1:
    none), and the ranges of x, y and p."""
    unsorted = -1
    for e in range(t.size - 1):
        if t[e + 1] < t[e]:
            unsorted = e
            break
    return (np.int64(t.min()), unsorted, (np.int64(x.min()), np.int64(x.max())),
            (np.int64(y.min()), np.int64(y.max())), (np.int64(p.min()), np.int64(p.max())))


# What an HTML error page saved under a data file's name starts with (a failed or blocked download).
_HTML_STARTS = (b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")


def check_file(path: Path | str, suffix: str) -> str | None:
    """What is wrong with an event file before decoding, or None when it looks readable.

    ``suffix`` is the data set's format: ``.bin`` (N-MNIST / N-Caltech101 5-byte records),
    ``.npy`` (Tonic's DVS Gesture rows x, y, p, t), ``.aedat4``.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size == 0:
            return "the file is empty (0 bytes): an interrupted copy or download"
        with open(path, "rb") as file:
            head = file.read(64)
        if head.lstrip().lower().startswith(_HTML_STARTS):
            return "the file is an HTML page, not event data (a download that saved the server's page)"
        if suffix == ".bin" and size % 5:
            return f"{size} bytes is not a whole number of 5-byte event records (a truncated file?)"
        if suffix == ".aedat4" and not head.startswith(b"#!AER-DAT4"):
            return "no '#!AER-DAT4' header: not an AEDAT4 recording"
        if suffix == ".npy":
            return check_event_rows(np.load(path, mmap_mode="r", allow_pickle=False))
    except (OSError, ValueError, EOFError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def check_event_rows(rows: np.ndarray) -> str | None:
    """Tonic's DVS Gesture layout: an ``(N, 4)`` array of rows x, y, p, t (t in ms), N > 0, finite,
    polarity 0 or 1 (Tonic casts p to bool, so any other value would pass as ON)."""
    if rows.ndim != 2 or rows.shape[1] != 4:
        return f"expected an array of shape (N, 4) rows x, y, p, t; got {rows.shape}"
    if rows.shape[0] == 0:
        return "the recording holds no events"
    if rows.dtype.kind not in "iufb":
        return f"expected numbers, got {rows.dtype}"
    if rows.dtype.kind == "f" and not np.isfinite(rows).all():
        row, column = np.argwhere(~np.isfinite(rows))[0]
        return f"NaN or inf in {'xypt'[column]} (row {row}: {rows[row].tolist()})"
    return check_polarity(rows[:, 2])


def check_polarity(p: np.ndarray) -> str | None:
    bad = (p != 0) & (p != 1)
    if bad.any():
        values = np.unique(np.asarray(p)[bad])[:5].tolist()
        return f"polarity values {values} (expected 0 or 1) at {int(bad.sum())} event(s)"
    return None


def check_spike_times(times: np.ndarray) -> str | None:
    """SHD's per-sample spike times (float seconds): finite and >= 0."""
    if not np.isfinite(times).all():
        return f"NaN or inf among the spike times (first at spike {int(np.argmax(~np.isfinite(times)))})"
    return None

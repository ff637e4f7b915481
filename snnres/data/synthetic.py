"""`synthetic-dvs`: a generated event-camera data set whose classes only time can tell apart.

A bright Gaussian dot appears on a textured background, travels a straight segment and
disappears. A DVS pixel emits an ON (OFF) event each time its log-intensity rises (falls) by
the contrast threshold `C` from the level of its last event; we simulate exactly that on a fine
time grid, then add uniform shot-noise events.

The class is the pair (sense of travel, speed profile):
- the segment's axis has a random angle in [20, 160] degrees and a random centre; the dot runs
  along it with positive y (`+y`) or negative y (`-y`);
- the position along the segment follows one of five profiles (constant speed, speeding up,
  slowing down, slow-fast-slow, fast-slow-fast).

Why the time-summed frame carries no class information: the footprint (a segment of fixed
length, random axis and centre) has the same distribution for every class, and a DVS pixel's
event count depends on how bright it got, not on when or how fast, so each pixel emits as many
ON as OFF events whatever the sense and speed (its intensity starts and ends at the
background level). Only the order of events tells the sense (the ON edge leads), and only the
event counts per time bin tell the speed profile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .events import EVENT_DTYPE, EventFrameDataset, FrameAugment

SPEED_PROFILES = {
    "constant": lambda tau: tau,
    "speeding-up": lambda tau: tau**2,
    "slowing-down": lambda tau: 1 - (1 - tau) ** 2,
    "slow-fast-slow": lambda tau: tau - np.sin(2 * np.pi * tau) / (2 * np.pi),
    "fast-slow-fast": lambda tau: tau + np.sin(2 * np.pi * tau) / (2 * np.pi),
}
SENSES = ("+y", "-y")
CLASSES = tuple(f"{sense} {profile}" for sense in SENSES for profile in SPEED_PROFILES)


@dataclass(frozen=True)
class SyntheticDVSConfig:
    """Generation parameters; `num_samples=None` means 512 for train and 128 for test."""

    num_samples: int | None = None
    size: int = 32
    T: int = 8
    seed: int = 0
    duration_us: int = 100_000
    substeps: int = 64
    path_fraction: float = 0.55
    dot_sigma: float = 1.0
    dot_amplitude: float = 1.5
    contrast_threshold: float = 0.25
    noise_events_per_pixel: float = 0.1
    chunk: int = 64

    def __post_init__(self):
        if self.size < 8:
            raise ValueError(f"synthetic-dvs needs size >= 8 pixels, got {self.size}")
        if self.T < 1:
            raise ValueError(f"T must be a positive number of time bins, got {self.T}")
        if self.num_samples is not None and self.num_samples < 1:
            raise ValueError(f"num_samples must be positive, got {self.num_samples}")


def generate(config: SyntheticDVSConfig, train: bool):
    """All events of one split: (events sorted by sample then time, offsets [n+1], labels [n])."""
    n = config.num_samples or (512 if train else 128)
    rng = np.random.default_rng([config.seed, 0 if train else 1])
    labels = rng.permutation(np.arange(n) % len(CLASSES))
    sense = np.where(labels // len(SPEED_PROFILES) == 0, 1.0, -1.0)
    profile = labels % len(SPEED_PROFILES)

    size, sigma = config.size, config.dot_sigma
    length = config.path_fraction * size
    angle = np.deg2rad(rng.uniform(20, 160, n))
    axis = np.stack([np.cos(angle), np.sin(angle)], axis=1)  # (n, 2): x, y
    margin = 0.5 * length * np.abs(axis) + 2 * sigma
    centre = margin + rng.uniform(0, 1, (n, 2)) * (size - 1 - 2 * margin)
    background = rng.uniform(0.3, 1.0, (n, size, size)).astype(np.float32)

    tau = np.linspace(0.0, 1.0, config.substeps)
    travelled = np.stack([SPEED_PROFILES[name](tau) for name in SPEED_PROFILES])[profile]
    offset = (travelled - 0.5) * length * sense[:, None]  # (n, K) signed distance from centre
    position = centre[:, None, :] + offset[..., None] * axis[:, None, :]  # (n, K, 2)

    pieces = [
        _dvs_events(background[s], position[s], config, rng)
        for s in (slice(i, i + config.chunk) for i in range(0, n, config.chunk))
    ]
    sample = np.concatenate([p[0] + i * config.chunk for i, p in enumerate(pieces)])
    events = np.concatenate([p[1] for p in pieces])
    noise_sample, noise = _noise_events(n, config, rng)
    sample = np.concatenate([sample, noise_sample])
    events = np.concatenate([events, noise])
    order = np.lexsort((events["t"], sample))
    events, sample = events[order], sample[order]
    offsets = np.searchsorted(sample, np.arange(n + 1))
    return events, offsets, labels


def _dvs_events(background, position, config, rng):
    """Simulate DVS pixels for a chunk of samples; returns (sample index, events)."""
    n, K, _ = position.shape
    size, sigma, C = config.size, config.dot_sigma, config.contrast_threshold
    grid = np.arange(size, dtype=np.float32)
    gx = np.exp(-((grid - position[..., 0:1]) ** 2) / (2 * sigma**2)).astype(np.float32)
    gy = np.exp(-((grid - position[..., 1:2]) ** 2) / (2 * sigma**2)).astype(np.float32)
    # Log-intensity relative to the background, per substep: 0 before the dot appears, the dot
    # at K positions, 0 again after it vanishes.
    relative = np.log1p(config.dot_amplitude * gy[..., :, None] * gx[..., None, :] / background[:, None])
    relative = np.concatenate([relative, np.zeros_like(relative[:, :1])], axis=1) / C
    level = np.zeros((n, size, size), dtype=np.int32)  # last event's level, in units of C
    on = np.empty((n, K + 1, size, size), dtype=np.int32)
    off = np.empty_like(on)
    for k in range(K + 1):
        up = np.maximum(np.floor(relative[:, k] - level), 0).astype(np.int32)
        down = np.maximum(np.floor(level - relative[:, k]), 0).astype(np.int32)
        level += up - down
        on[:, k], off[:, k] = up, down
    step_us = config.duration_us / (K + 1)
    parts = []
    for counts, polarity in ((on, True), (off, False)):
        b, k, y, x = np.nonzero(counts)
        repeat = counts[b, k, y, x]
        b, k, y, x = (np.repeat(v, repeat) for v in (b, k, y, x))
        events = np.empty(len(b), dtype=EVENT_DTYPE)
        events["x"], events["y"], events["p"] = x, y, polarity
        events["t"] = ((k + rng.uniform(0, 1, len(b))) * step_us).astype(np.int64)
        parts.append((b, events))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _noise_events(n, config, rng):
    counts = rng.poisson(config.noise_events_per_pixel * config.size**2, n)
    total = int(counts.sum())
    events = np.empty(total, dtype=EVENT_DTYPE)
    events["x"] = rng.integers(0, config.size, total)
    events["y"] = rng.integers(0, config.size, total)
    events["p"] = rng.integers(0, 2, total).astype(bool)
    events["t"] = rng.integers(0, config.duration_us, total)
    return np.repeat(np.arange(n), counts), events


class SyntheticDVS(EventFrameDataset):
    """The generated split; `events(i)` gives sample i's raw events (Tonic's structured array)."""

    classes = CLASSES

    def __init__(self, config: SyntheticDVSConfig, train: bool = True, augment: bool = False):
        super().__init__(cache=None, augment=FrameAugment(flip=True, max_shift=2) if augment else None)
        self.config, self.train = config, train
        self.T = config.T
        self.sensor_size = (config.size, config.size, 2)
        self._events, self._offsets, labels = generate(config, train)
        self.targets = labels.tolist()

    def events(self, index: int) -> np.ndarray:
        return self._events[self._offsets[index] : self._offsets[index + 1]].copy()

    def cache_key(self, index: int) -> str:
        return f"synthetic-dvs/{self.config}/{self.train}/{index}"

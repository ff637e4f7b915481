"""Event data as frames: binning through Tonic, frame augmentation, and the shared Dataset base.

Every event data set (the generated `synthetic-dvs` and the Tonic ones) is a subclass of
`EventFrameDataset`: it supplies `events(i)` (a Tonic structured array with fields x, y, t, p),
`targets` and `sensor_size`; the base bins the events into `T` frames with Tonic's `ToFrame`,
caches the frames on disk when asked, and applies the training augmentation to the frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from tonic.transforms import ToFrame

from .cache import FrameCache

# Tonic's own event layout (tonic.io.events_struct); all our sources produce it.
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])


def frame_shape(sensor_size: tuple[int, int, int], T: int) -> tuple[int, int, int, int]:
    """`[T, C, H, W]` for a Tonic sensor size `(W, H, P)`."""
    width, height, polarities = sensor_size
    return (T, polarities, height, width)


def bin_events(events: np.ndarray, sensor_size: tuple[int, int, int], T: int) -> np.ndarray:
    """Events -> integer counts `[T, C, H, W]` with `ToFrame(sensor_size, n_time_bins=T)`.

    A recording without events gives zero frames (Tonic fails on it). Events without a `y`
    field (SHD: one row of 700 channels) come back with `H = 1`.
    """
    shape = frame_shape(sensor_size, T)
    if len(events) == 0:
        return np.zeros(shape, dtype=np.int16)
    frames = ToFrame(sensor_size=tuple(sensor_size), n_time_bins=T)(events)
    return frames.reshape(shape)


@dataclass(frozen=True)
class FrameAugment:
    """Training augmentation applied to count frames `[T, C, H, W]` (the same draw for all T).

    `drop_p` thins the counts binomially, which is the distribution that Tonic's `DropEvent(p)`
    gives when applied before binning (each event kept independently with probability 1 - p), so
    it can run after the frame cache. `max_shift` translates by up to that many pixels with zero
    fill (pad-and-random-crop); `flip` mirrors left-right with probability 1/2.
    """

    flip: bool = False
    max_shift: int = 0
    drop_p: float = 0.0

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        if self.drop_p > 0:
            frames = torch.binomial(frames, torch.full_like(frames, 1.0 - self.drop_p))
        if self.flip and torch.rand(()) < 0.5:
            frames = frames.flip(-1)
        if self.max_shift > 0:
            frames = _random_shift(frames, self.max_shift)
        return frames


def _random_shift(frames: torch.Tensor, max_shift: int) -> torch.Tensor:
    height, width = frames.shape[-2:]
    dy, dx = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,)))
    if height == 1:  # a one-row sensor (SHD) shifts along its channels only
        dy = 0
    padded = torch.nn.functional.pad(frames, (max_shift, max_shift, max_shift, max_shift))
    top, left = max_shift + dy, max_shift + dx
    return padded[..., top : top + height, left : left + width].contiguous()


class EventFrameDataset(torch.utils.data.Dataset):
    """Base: items are `(float32 frames [T, C, H, W], int label)`.

    Subclasses set `sensor_size`, `T`, `targets`, `classes` and implement `events(i)` and
    `cache_key(i)` (a string that changes when the source sample changes).
    """

    sensor_size: tuple[int, int, int]
    T: int
    targets: Sequence[int]
    classes: Sequence[str]

    def __init__(self, cache: FrameCache | None = None, augment: FrameAugment | None = None):
        self.cache = cache
        self.augment = augment

    def events(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def cache_key(self, index: int) -> str:
        raise NotImplementedError

    @property
    def frame_shape(self) -> tuple[int, int, int, int]:
        return frame_shape(self.sensor_size, self.T)

    def frames(self, index: int) -> np.ndarray:
        """Integer event counts `[T, C, H, W]`, from the cache when it holds a good copy."""
        if self.cache is None:
            return bin_events(self.events(index), self.sensor_size, self.T)
        key = self.cache_key(index)
        frames = self.cache.load(key)
        if frames is None:
            frames = bin_events(self.events(index), self.sensor_size, self.T)
            self.cache.store(key, frames)
        return frames

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a data set of {len(self)} samples")
        index = index % len(self)
        frames = torch.from_numpy(self.frames(index).astype(np.float32))
        if self.augment is not None:
            frames = self.augment(frames)
        return frames, int(self.targets[index])

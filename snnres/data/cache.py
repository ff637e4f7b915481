"""On-disk frame cache: one `.npy` file per sample, written atomically.

Writers save through `snnres.files.atomic_write` (a private temporary file in the cache folder,
renamed onto the final name), so a reader sees either no file or a complete one, and two processes building the same
entry at once both end with a good file (the contents are identical; the last rename wins).
Leftover temporary files from a killed writer are never read. A file that is nevertheless short or
of the wrong shape (a disk filled up, someone truncated it) fails the checks in `load`, is
treated as missing and is rebuilt.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..files import atomic_write

CACHE_FORMAT_VERSION = 1


def cache_folder(root: Path, dataset: str, split: str, binning: str) -> Path:
    """`root/.cache/<dataset>/<split>/<binning>`: the only place under root the loaders write."""
    return Path(root) / ".cache" / dataset / split / f"v{CACHE_FORMAT_VERSION}-{binning}"


def smallest_count_dtype(frames: np.ndarray) -> np.dtype:
    """Event counts are small non-negative integers; store them in the narrowest exact type."""
    peak = int(frames.max(initial=0))
    for dtype in (np.uint8, np.uint16, np.uint32):
        if peak <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


class FrameCache:
    """Frames keyed by a string (which names the source file and its size/mtime)."""

    def __init__(self, folder: Path, shape: tuple[int, ...]):
        self.folder = Path(folder)
        self.shape = tuple(shape)

    def path(self, key: str) -> Path:
        digest = hashlib.sha1(key.encode()).hexdigest()[:24]
        return self.folder / f"{digest}.npy"

    def load(self, key: str) -> np.ndarray | None:
        """The cached frames, or None when absent or not a complete file of the right shape."""
        path = self.path(key)
        try:
            frames = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if frames.shape != self.shape or frames.dtype.kind != "u":
            return None
        return frames

    def store(self, key: str, frames: np.ndarray) -> None:
        if frames.shape != self.shape:
            raise ValueError(f"cache expects frames of shape {self.shape}, got {frames.shape}")
        self.folder.mkdir(parents=True, exist_ok=True)
        compact = frames.astype(smallest_count_dtype(frames), copy=False)

        def save(tmp: Path) -> None:
            with open(tmp, "wb") as file:  # a file object: np.save would append .npy to a name
                np.save(file, compact, allow_pickle=False)

        atomic_write(self.path(key), save)

"""On-disk frame cache: one `.npy` file per sample, written atomically.

Writers save through `snnres.files.atomic_write` (a private temporary file in the cache folder,
renamed onto the final name), so a reader sees either no file or a complete one, and two processes building the same
entry at once both end with a good file (the contents are identical; the last rename wins).
Leftover temporary files from a killed writer are never read. A file that is nevertheless short or
of the wrong shape (a disk filled up, someone truncated it) fails the checks in `load`, is
treated as missing and is rebuilt.

The cache lives under the data root (`root/.cache/...`) when that can be written; a read-only data
folder (a shared mount, a container image) gets its cache under `$SNNRES_CACHE` or the platform's
user cache folder instead, in a sub-folder named after the data root, with a one-line notice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..files import atomic_write

CACHE_FORMAT_VERSION = 1


log = logging.getLogger(__name__)


def cache_folder(root: Path, dataset: str, split: str, binning: str) -> Path:
    """`root/.cache/<dataset>/<split>/<binning>`: the only place under root the loaders write."""
    return Path(root) / ".cache" / dataset / split / f"v{CACHE_FORMAT_VERSION}-{binning}"


def user_cache_root() -> Path:
    """`$SNNRES_CACHE`, else the platform's user cache folder + `snnres` (XDG on Linux)."""
    if os.environ.get("SNNRES_CACHE"):
        return Path(os.environ["SNNRES_CACHE"]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "snnres"


def writable(folder: Path) -> bool:
    """Whether files can be created in `folder` (made if missing): tried, not guessed from modes."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=folder, prefix=".", suffix=".probe")
        os.close(handle)
        os.unlink(name)
        return True
    except OSError:
        return False


def writable_cache_folder(root: Path, dataset: str, split: str, binning: str) -> Path | None:
    """`cache_folder(root, ...)` when it can be written, else the same folders under
    `user_cache_root()/<root name>-<hash of its absolute path>` (said in one line); None (no cache,
    also said) when neither can be written."""
    preferred = cache_folder(root, dataset, split, binning)
    if writable(preferred):
        return preferred
    absolute = Path(root).resolve()
    tag = f"{absolute.name or 'root'}-{hashlib.sha1(str(absolute).encode()).hexdigest()[:10]}"
    fallback = user_cache_root() / tag / preferred.relative_to(Path(root) / ".cache")
    if writable(fallback):
        log.warning("%s is read-only: frame cache in %s (set SNNRES_CACHE to choose)", root, fallback)
        return fallback
    log.warning("neither %s nor %s can be written: frames are not cached (set SNNRES_CACHE)", preferred, fallback)
    return None


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

"""What the runs of one network reuse (``Workspace``): kept beside the network, never in it.

- Scratch arrays (accumulators, site pointers, bit planes), one set per thread: a fresh array costs a
  page fault per 4 KiB on first write, more than the arithmetic at low activity. The kernels write
  every entry they read, so the arrays are handed out stale.
- The weights of gathered convs in register blocks (``gather.conv_blocks``, in huge pages), made once
  per width and shared by the threads (read only).
- The membranes of finished recordings, for the next recording to start from (``take_membranes``).
- A network's arrays on a CUDA device (``cuda.py``), copied once.
"""

from __future__ import annotations

import threading

import numpy as np

from . import gather
from .memory import HugePageArena, aligned_empty


class Workspace:
    def __init__(self):
        self._local = threading.local()
        self._lock = threading.Lock()
        self._blocks: dict[tuple[int, int], np.ndarray] = {}
        self._arena = HugePageArena()  # weight blocks are read at random rows: huge pages spare the TLB
        self.device_params: dict = {}  # cuda.py: (node, device) -> tensors

    @property
    def scratch(self) -> dict:
        """This thread's arrays by key (tests poison them to show nothing stale is read)."""
        if not hasattr(self._local, "arrays"):
            self._local.arrays, self._local.membranes = {}, []
        return self._local.arrays

    def buffer(self, key, shape: tuple[int, ...], dtype, zero: bool = False) -> np.ndarray:
        """This thread's reusable array for ``key``: stale, or zeroed if ``zero``."""
        store = self.scratch
        arr = store.get(key)
        if arr is None or arr.shape != shape or arr.dtype != dtype:
            arr = store[key] = aligned_empty(shape, dtype)
            zero = True
        if zero:
            arr.fill(0)
        return arr

    def growing(self, key, n: int, dtype, fill=None) -> np.ndarray:
        """This thread's reusable 1-D array for ``key`` cut to ``n`` entries, for sizes that follow the
        activity: made anew, twice as long, when too short; ``fill`` in every entry of a new one (its
        readers must not write it)."""
        store = self.scratch
        arr = store.get(key)
        if arr is None or arr.size < n or arr.dtype != dtype:
            arr = store[key] = aligned_empty((max(n, 2 * (0 if arr is None else arr.size)),), dtype)
            if fill is not None:
                arr.fill(fill)
        return arr[:n]

    def weight_blocks(self, index: int, w_t: np.ndarray, width: int) -> np.ndarray:
        """``gather.conv_blocks(w_t, width)`` of node ``index``, made once."""
        key = (index, width)
        with self._lock:
            if key not in self._blocks:
                self._blocks[key] = gather.conv_blocks(w_t, width, self._arena.empty)
            return self._blocks[key]

    def take_membranes(self) -> dict | None:
        """Membranes a finished recording left on this thread (``give_membranes``), or None."""
        self.scratch
        return self._local.membranes.pop() if self._local.membranes else None

    def give_membranes(self, membranes: dict) -> None:
        self.scratch
        self._local.membranes.append(membranes)

    @property
    def pooled_membranes(self) -> list:
        self.scratch
        return self._local.membranes

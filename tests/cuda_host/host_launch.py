"""A host build of a CUDA kernel source, called through ctypes as the backends' ``_launch`` calls
CuPy: ``launch_<name>(blocks, threads, args...)`` (``launch.h``) returns 0 when the grid ran."""

from __future__ import annotations

import ctypes
import shutil
from pathlib import Path

import numpy as np

HOST = Path(__file__).parent  # the stand-in headers and the launch_*.cpp files
CXX = shutil.which("g++")
ARG_TYPES = {np.uint64: ctypes.c_void_p, np.int64: ctypes.c_longlong, np.int32: ctypes.c_int,
             np.float32: ctypes.c_float}


def call(library: ctypes.CDLL, name: str, blocks: int, threads: int, args) -> None:
    """Run kernel ``name`` of ``library`` on ``blocks x threads``; ``args`` are the numpy scalars the
    backend would hand to CuPy (a uint64 is a device pointer)."""
    function = getattr(library, f"launch_{name}")
    function.restype = ctypes.c_int
    function.argtypes = [ctypes.c_uint, ctypes.c_uint] + [ARG_TYPES[type(a)] for a in args]
    values = [int(a) or None if isinstance(a, np.uint64) else a.item() for a in args]
    assert function(blocks, threads, *values) == 0

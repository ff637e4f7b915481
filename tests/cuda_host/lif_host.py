"""Fixtures that build ``kernels/lif.cu`` for the host and put it behind the cupy backend.

``host_kernels`` replaces CuPy's launch (``cupy_cuda._launch``) with the host build of the same
option set, so the cupy backend's Python side runs for real on CPU tensors (see
``tests/neurons/test_neurons_cuda_emulated.py``). Import both fixtures into a test module.
"""

from __future__ import annotations

import ctypes
import hashlib
import subprocess
from pathlib import Path

import pytest
from host_launch import CXX, HOST, call

from snnres.neurons.backends import cupy_cuda

_PROBE = "#include <barrier>\n#include <immintrin.h>\nint main() { return _cvtss_sh(1.0f, 0) == 0; }\n"


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lif_host")
    probe = folder / "probe.cpp"
    probe.write_text(_PROBE)
    result = subprocess.run([CXX, "-std=c++20", "-mf16c", "-pthread", str(probe), "-o", str(folder / "probe")],
                            capture_output=True, text=True)
    if result.returncode != 0:  # the stand-in needs C++20's <barrier> and x86 F16C conversions
        pytest.skip(f"g++ cannot build the host stand-in here (C++20 <barrier>, x86 F16C): {result.stderr[-300:]}")
    (folder / "lif.cu").write_text(cupy_cuda.kernel_source())  # the source the package ships
    return folder


@pytest.fixture
def host_kernels(monkeypatch, build_dir):
    """Replace CuPy's launch with the host build of the same option set."""
    libraries: dict[tuple[str, ...], ctypes.CDLL] = {}

    def library(defines: tuple[str, ...]) -> ctypes.CDLL:
        if defines not in libraries:
            name = hashlib.sha1(" ".join(defines).encode()).hexdigest()[:16]
            target = build_dir / f"lif_{name}.so"
            if not target.exists():
                cmd = [CXX, "-std=c++20", "-O1", "-ffp-contract=off", "-mf16c", "-fPIC", "-shared", "-pthread",
                       f"-I{HOST}", f"-I{build_dir}", *defines, str(HOST / "launch_lif.cpp"), "-o", str(target)]
                result = subprocess.run(cmd, capture_output=True, text=True)
                assert result.returncode == 0, result.stderr
            libraries[defines] = ctypes.CDLL(str(target))
        return libraries[defines]

    def launch(name, x, params, vec, n_threads, args):
        defines = tuple(o for o in cupy_cuda.compile_options(x.dtype, params, vec) if o.startswith("-D"))
        call(library(defines), name, *cupy_cuda.launch_shape(n_threads), args)

    monkeypatch.setattr(cupy_cuda, "_launch", launch)
    return cupy_cuda

"""Every option set the cupy backend can ask for compiles with nvcc (skipped where nvcc is absent)."""

import shutil
import subprocess

import pytest
import torch

from snnres.neurons.backends.cupy_cuda import compile_options, kernel_source
from snnres.neurons.functional import NeuronParams

nvcc = shutil.which("nvcc")


def option_sets():
    """A covering set: every dtype, level count, reset mode, decay_input, detach, surrogate and fire mode."""
    yield torch.float32, NeuronParams(), 1
    yield torch.float16, NeuronParams((0.6, 1.6, 2.6), 0.0, False, False, "rectangle", 1.0), 2
    yield torch.float32, NeuronParams((0.5,), None, False, True, "atan", 2.0), 1
    yield torch.float16, NeuronParams((1.0,), -0.25, True, True, "triangle", 1.0), 1
    yield torch.float32, NeuronParams(tuple(0.3 * k + 0.1 for k in range(8)), None, True, False, "sigmoid", 4.0), 1
    yield torch.float16, NeuronParams((0.6, 1.6, 2.6), 0.0, False, False, "rectangle", 1.0, "gt"), 2
    yield torch.float32, NeuronParams((0.5,), 0.0, False, True, "rectangle", 1.0, "gt"), 1


def test_kernel_source_ships_with_the_package():
    source = kernel_source()
    assert "snnres_lif_forward" in source and "snnres_lif_backward" in source


def test_threshold_is_passed_exactly():
    options = compile_options(torch.float32, NeuronParams((0.1,)), 1)
    assert "-DTHRESHOLD_0=0x1.99999a0000000p-4f" in options  # float32(0.1) as a hex float literal


@pytest.mark.skipif(nvcc is None, reason="nvcc not on PATH")
@pytest.mark.parametrize("dtype,params,vec", list(option_sets()))
def test_nvcc_compiles_option_set(tmp_path, dtype, params, vec):
    src = tmp_path / "lif.cu"
    src.write_text(kernel_source())
    flags = [o for o in compile_options(dtype, params, vec) if o.startswith("-D")]
    cmd = [nvcc, "--ptx", "-arch=sm_90", "--std=c++17", "--fmad=false", *flags, str(src), "-o", str(tmp_path / "lif.ptx")]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    ptx = (tmp_path / "lif.ptx").read_text()
    assert ".entry snnres_lif_forward" in ptx and ".entry snnres_lif_backward" in ptx

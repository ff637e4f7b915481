"""Fused CUDA kernels (``kernels/lif.cu``) through CuPy, on PyTorch's memory and stream.

The source is compiled with NVRTC once per option set (dtype, levels, thresholds, reset mode,
decay_input, detach_reset, surrogate, fire) and cached. fp32 and fp16 are native (fp16 uses half2
loads when the neuron count is even); bf16 and fp64 run in fp32 and are cast back.
"""

from __future__ import annotations

import functools
import sys
from importlib import resources

import numpy as np
import torch

from ..surrogate import surrogate_id
from .fused import input_grad_fused, rest_state, run_fused

THREADS = 256
MAX_T_IN_REGISTERS = 16  # the backward keeps H in registers up to this many steps


def _import_cupy():
    try:
        import cupy
    except ImportError as error:
        raise ImportError(
            f"CuPy is not installed ({error}); install the build for your CUDA: "
            "`pip install snnres[cuda12]` or `pip install snnres[cuda13]`"
        ) from None
    return cupy


def available() -> str | None:
    try:
        cupy = _import_cupy()
    except ImportError as error:
        return str(error)
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "CuPy sees no CUDA device"
    except Exception as error:  # cupy raises CUDARuntimeError without a driver
        return f"CuPy cannot reach a CUDA device ({error})"
    if not torch.cuda.is_available():
        return "PyTorch was built without CUDA or sees no device"
    return None


def kernel_source() -> str:
    return resources.files("snnres._kernels").joinpath("lif.cu").read_text()


def compile_options(dtype: torch.dtype, params, vec: int) -> tuple[str, ...]:
    """The -D options that specialise ``kernels/lif.cu`` (also used by the PTX check in CI)."""
    if params.levels > 8:
        raise ValueError(f"the cupy backend supports up to 8 levels, got {params.levels}")
    scalar = {torch.float32: "float", torch.float16: "__half"}[dtype]
    thresholds = tuple(
        f"-DTHRESHOLD_{k}={float(np.float32(th)).hex()}f" for k, th in enumerate(params.thresholds)
    )
    return (
        "--std=c++17", "--fmad=false", f"-DSCALAR={scalar}", f"-DVEC={vec}", f"-DLEVELS={params.levels}",
        *thresholds, f"-DHARD_RESET={int(params.v_reset is not None)}",
        f"-DDECAY_INPUT={int(params.decay_input)}", f"-DDETACH_RESET={int(params.detach_reset)}",
        f"-DSURROGATE={surrogate_id(params.surrogate)}", f"-DMAX_T={MAX_T_IN_REGISTERS}",
        f"-DFIRE_GT={int(params.strict)}",
    )


@functools.lru_cache(maxsize=128)
def _module(options: tuple[str, ...]):
    cupy = _import_cupy()
    return cupy.RawModule(code=kernel_source(), options=options)


def _ptr(t: torch.Tensor | None) -> np.uint64:
    return np.uint64(0 if t is None else t.data_ptr())


def launch_shape(n_threads: int) -> tuple[int, int]:
    """``(blocks, threads per block)`` for ``n_threads`` work items (the kernels loop over the rest)."""
    return max(1, min((n_threads + THREADS - 1) // THREADS, 65535)), THREADS


def _launch(name: str, x: torch.Tensor, params, vec: int, n_threads: int, args: tuple) -> None:
    """Run kernel ``name`` of the option set for (x.dtype, params, vec) on x's device and stream.

    ``args``: the kernel's parameters in order (pointers as ``np.uint64``, ``np.int64``, ``np.float32``).
    """
    cupy = _import_cupy()
    kernel = _module(compile_options(x.dtype, params, vec)).get_function(name)
    blocks, threads = launch_shape(n_threads)
    with cupy.cuda.Device(x.device.index):
        stream = cupy.cuda.ExternalStream(torch.cuda.current_stream(x.device).cuda_stream)
        kernel((blocks,), (threads,), args, stream=stream)


def _scalars(tau: float, params) -> tuple[np.float32, np.float32]:
    inv_tau = np.float32(1.0) / np.float32(tau)  # PyTorch's CUDA x / scalar is x * (1/scalar)
    return inv_tau, np.float32(params.rest)


def forward(x: torch.Tensor, v0: torch.Tensor | None, tau: float, params):
    T, N = x.shape
    v0 = rest_state(x, params) if v0 is None else v0
    spikes = torch.empty_like(x)
    v_last = torch.empty_like(v0)
    vec = 2 if x.dtype == torch.float16 and N % 2 == 0 else 1
    inv_tau, v_rest = _scalars(tau, params)
    args = (_ptr(x), _ptr(v0), _ptr(spikes), _ptr(v_last), np.int64(T), np.int64(N), inv_tau, v_rest)
    _launch("snnres_lif_forward", x, params, vec, N // vec, args)
    return spikes, v_last


def backward(x, v0, grad_spikes, grad_v_last, tau: float, params, need_tau: bool):
    T, N = x.shape
    at_rest = v0 is None
    v0 = rest_state(x, params) if at_rest else v0
    grad_x = torch.empty_like(x)
    grad_v0 = torch.empty_like(v0)
    scratch = None
    if T > MAX_T_IN_REGISTERS:
        scratch = torch.empty((params.levels, T, N), dtype=torch.float32, device=x.device)
    grad_tau = torch.zeros(1, dtype=torch.float32, device=x.device) if need_tau else None
    inv_tau, v_rest = _scalars(tau, params)
    args = (
        _ptr(x), _ptr(v0), _ptr(grad_spikes), _ptr(grad_v_last), _ptr(grad_x), _ptr(grad_v0), _ptr(scratch),
        _ptr(grad_tau), np.int64(T), np.int64(N), inv_tau, v_rest, np.float32(params.alpha),
        np.float32(0.5 / params.alpha),
    )
    _launch("snnres_lif_backward", x, params, 1, N, args)
    return grad_x, None if at_rest else grad_v0, float(grad_tau.item()) if need_tau else None


def run(x_seq: torch.Tensor, v: torch.Tensor, tau, params):
    compute = None if x_seq.dtype in (torch.float32, torch.float16) else torch.float32
    return run_fused(sys.modules[__name__], x_seq, v, tau, params, compute)


def input_grad(x_seq: torch.Tensor, grad_spikes: torch.Tensor, tau, params, need_tau: bool):
    compute = None if x_seq.dtype in (torch.float32, torch.float16) else torch.float32
    return input_grad_fused(sys.modules[__name__], x_seq, grad_spikes, tau, params, need_tau, compute)

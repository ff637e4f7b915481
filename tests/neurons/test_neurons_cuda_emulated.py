"""The CUDA kernel source, built for the host, against the torch reference on the CPU.

``test_neurons_cupy.py`` needs a GPU. These tests run the same ``kernels/lif.cu`` without one:
g++ compiles it with ``tests/cuda_host/cuda_fp16.h`` standing in for the CUDA built-ins (a warp's
lanes are host threads, so the backward's warp shuffle is exercised) and ``tests/cuda_host/launch_lif.cpp``
runs the grid. Everything on the Python side of the cupy backend is the real code: option sets,
launch shape, output and scratch allocation, the argument order, the half2 choice, autograd
glue; only CuPy's launch (``cupy_cuda._launch``) is replaced.

Division by ``tau``: the kernel multiplies by ``float(1 / tau)`` as PyTorch does on the GPU,
while PyTorch on the CPU divides. The two agree bit for bit when ``tau`` is a power of two, so
the exact comparisons use ``tau`` in {2, 4}; the MS-ResNet neuron's ``tau = 4/3`` is compared
within rounding.
"""

from __future__ import annotations

import pytest
import torch
from host_launch import CXX
from lif_host import build_dir, host_kernels  # noqa: F401  (pytest fixtures)

from snnres.functional import lif
from snnres.neurons.backends import cupy_cuda
from snnres.neurons.functional import NeuronParams, mlf_thresholds, run_neuron

pytestmark = pytest.mark.skipif(CXX is None, reason="g++ not on PATH: cannot build the kernel for the host")


def _lif_params(v_threshold=1.0, v_reset=0.0, decay_input=True, detach_reset=False, surrogate="sigmoid", alpha=4.0,
                fire="ge"):
    return NeuronParams((float(v_threshold),), v_reset, decay_input, detach_reset, surrogate, alpha, fire)


def _run(backend, x, g, params, tau, v0=None):
    """Spikes, last state and the gradients of ``sum(s * g) + sum(v_last)`` w.r.t. x (and v0)."""
    x = x.clone().requires_grad_()
    inputs = [x]
    if v0 is not None:
        v0 = v0.clone().requires_grad_()
        inputs.append(v0)
    if backend == "kernel":
        s, v = cupy_cuda.run(x, v0, tau, params)
    else:
        s, v = run_neuron(x, v0, tau, params, backend="torch")
    grads = torch.autograd.grad((s * g).sum() + v.sum(), inputs)
    return s.detach(), v.detach(), grads


GRID = [  # powers of two for tau: exact against PyTorch's CPU division (module docstring)
    dict(),
    dict(v_reset=None, surrogate="atan", alpha=2.0),
    dict(tau=4.0, decay_input=False, v_threshold=0.5, detach_reset=True, surrogate="rectangle", alpha=1.0),
    dict(tau=4.0, v_reset=-0.2, surrogate="triangle", alpha=1.5),
]


@pytest.mark.parametrize("T", [4, 16, 40])  # 40 > MAX_T: the backward's scratch buffer
@pytest.mark.parametrize("opts", GRID)
def test_fp32_equals_torch(host_kernels, opts, T):
    opts = dict(opts)
    tau = opts.pop("tau", 2.0)
    params = _lif_params(**opts)
    torch.manual_seed(0)
    x = torch.randn(T, 3, 1001) + 0.7
    g = torch.randn_like(x)
    s_ref, v_ref, (g_ref,) = _run("torch", x, g, params, tau)
    s, v, (gx,) = _run("kernel", x, g, params, tau)
    assert s.sum() > 0 and (s == 0).any()
    assert torch.equal(s, s_ref)
    assert torch.equal(v, v_ref)
    torch.testing.assert_close(gx, g_ref, rtol=1e-5, atol=1e-6)


def test_state_in_and_its_gradient(host_kernels):
    torch.manual_seed(4)
    params = _lif_params(surrogate="atan", alpha=2.0)
    x = torch.randn(6, 2, 777) + 0.5
    v0 = torch.rand(1, 2, 777) * 0.9
    g = torch.randn_like(x)
    s_ref, v_ref, (gx_ref, gv_ref) = _run("torch", x, g, params, 2.0, v0)
    s, v, (gx, gv) = _run("kernel", x, g, params, 2.0, v0)
    assert torch.equal(s, s_ref) and torch.equal(v, v_ref)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gv, gv_ref, rtol=1e-5, atol=1e-6)


def test_mlf_equals_torch(host_kernels):
    torch.manual_seed(1)
    params = NeuronParams(mlf_thresholds(), 0.0, False, False, "rectangle", 1.0)
    x = torch.rand(8, 4097) * 3.5 - 0.3
    g = torch.randn_like(x)
    s_ref, v_ref, (g_ref,) = _run("torch", x, g, params, 4.0)
    s, v, (gx,) = _run("kernel", x, g, params, 4.0)
    assert set(s.unique().tolist()) == {0.0, 1.0, 2.0, 3.0}  # every level fires somewhere
    assert torch.equal(s, s_ref) and torch.equal(v, v_ref)
    torch.testing.assert_close(gx, g_ref, rtol=1e-5, atol=1e-6)


def test_ms_resnet_neuron_within_rounding(host_kernels):
    # tau = 4/3: x * float(0.75) on the kernel's side, x / float(4/3) on PyTorch's CPU side.
    torch.manual_seed(5)
    params = _lif_params(v_threshold=0.5, decay_input=False, surrogate="rectangle", alpha=1.0)
    x = torch.randn(8, 5000) * 0.6
    g = torch.randn_like(x)
    s_ref, v_ref, (g_ref,) = _run("torch", x.double(), g.double(), params, 4 / 3)
    s, v, (gx,) = _run("kernel", x, g, params, 4 / 3)
    assert (s.double() != s_ref).float().mean() < 1e-3
    same = (s.double() == s_ref).all(0)  # neurons whose spike trains agree
    assert same.float().mean() > 0.99
    torch.testing.assert_close(v[0].double()[same], v_ref[0][same], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gx.double()[:, same], g_ref[:, same], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("T", [5, 20])  # registers, scratch
@pytest.mark.parametrize("levels", [1, 3])
@pytest.mark.parametrize("v_reset", [0.0, None])
@pytest.mark.parametrize("fire", ["ge", "gt"])
def test_fire_modes_on_ties(host_kernels, fire, v_reset, levels, T):
    # Inputs on a grid of 1/4 with tau = 2: H is a short binary fraction, so H == V_th often; the
    # kernel's FIRE_GT build must decide those ties as the reference does, forward and backward.
    thresholds = (1.0,) if levels == 1 else (0.5, 1.5, 2.5)
    params = NeuronParams(thresholds, v_reset, True, False, "sigmoid", 4.0, fire)
    gen = torch.Generator().manual_seed(9)
    x = torch.randint(-2, 13, (T, 2, 515), generator=gen).float() / 4
    g = torch.randn(x.shape, generator=gen)
    s_ref, v_ref, (g_ref,) = _run("torch", x, g, params, 2.0)
    s, v, (gx,) = _run("kernel", x, g, params, 2.0)
    assert torch.equal(s, s_ref) and torch.equal(v, v_ref)
    torch.testing.assert_close(gx, g_ref, rtol=1e-5, atol=1e-6)
    other = NeuronParams(thresholds, v_reset, True, False, "sigmoid", 4.0, "gt" if fire == "ge" else "ge")
    assert not torch.equal(cupy_cuda.run(x, None, 2.0, other)[0], s)  # ties were there to decide


@pytest.mark.parametrize("n", [4096, 4097])  # even: half2 loads (VEC=2); odd: one neuron per thread
def test_fp16_equals_fp32_on_the_rounded_input(host_kernels, n):
    # fp16 is storage only: the kernel widens the half input to fp32, computes in fp32 and rounds
    # what it stores. So the oracle is the fp32 reference on the same half-rounded input and
    # upstream gradient: spikes identical, state and input gradient within one half rounding.
    # (Against the unrounded fp32 input a few spikes flip, and a flipped spike changes that
    # neuron's gradient by O(1): no elementwise tolerance holds there.)
    torch.manual_seed(2)
    params = _lif_params()
    x16 = (torch.randn(8, n) + 0.7).half()
    g16 = torch.randn(8, n).half()
    s_ref, v_ref, (g_ref,) = _run("torch", x16.float(), g16.float(), params, 2.0)
    s, v, (gx,) = _run("kernel", x16, g16, params, 2.0)
    assert s.dtype == v.dtype == gx.dtype == torch.float16
    assert torch.equal(s.float(), s_ref)
    torch.testing.assert_close(v.float(), v_ref, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(gx.float(), g_ref, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("T", [6, 20])  # registers, scratch
def test_learnable_tau_gradient(host_kernels, T):
    # The tau gradient is summed per warp with __shfl_down_sync, then atomically per warp.
    torch.manual_seed(3)
    params = _lif_params()
    x = torch.rand(T, 5000) * 2
    weight = torch.linspace(-1, 1, 5000)
    grads = []
    for backend in ("torch", "kernel"):
        tau = torch.tensor(2.5, requires_grad=True)
        s, _ = cupy_cuda.run(x, None, tau, params) if backend == "kernel" else run_neuron(x, None, tau, params, "torch")
        (s * weight).sum().backward()
        grads.append(tau.grad.item())
    assert grads[0] != 0
    assert grads[1] == pytest.approx(grads[0], rel=1e-4)


def test_non_contiguous_input(host_kernels):
    x = (torch.randn(5, 64, 48) + 0.7).transpose(1, 2)
    s, v = cupy_cuda.run(x, None, 2.0, _lif_params())
    s_ref, v_ref = lif(x, backend="torch")
    assert torch.equal(s, s_ref) and torch.equal(v[0], v_ref)


def test_emulation_catches_a_wrong_argument_order(host_kernels, monkeypatch):
    # The harness is a real check: swapping v_rest and inv_tau in the launch changes the spikes.
    real = cupy_cuda._scalars
    monkeypatch.setattr(cupy_cuda, "_scalars", lambda tau, params: tuple(reversed(real(tau, params))))
    x = torch.randn(4, 1000) + 0.7
    s, _ = cupy_cuda.run(x, None, 2.0, _lif_params(v_reset=-0.3))
    assert not torch.equal(s, lif(x, v_reset=-0.3, backend="torch")[0])

"""The fused CUDA kernels against the torch reference on the GPU (skipped without one)."""

import pytest
import torch

from snnres.functional import lif, mlf
from snnres.neurons import LIF
from snnres.neurons.backends import unavailable_reason

pytestmark = pytest.mark.gpu
_reason = unavailable_reason("cupy", "cuda")
if _reason is not None:
    pytest.skip(f"cupy backend unavailable: {_reason}", allow_module_level=True)

GRID = [
    dict(),
    dict(v_reset=None, surrogate="atan", alpha=2.0),
    dict(tau=4 / 3, decay_input=False, v_threshold=0.5, detach_reset=True, surrogate="rectangle", alpha=1.0),
    dict(tau=3.0, v_reset=-0.2, surrogate="triangle", alpha=1.5),
]


def _run(fn, backend, x, g, **kw):
    x = x.clone().requires_grad_()
    s, v = fn(x, backend=backend, **kw)
    (gx,) = torch.autograd.grad((s * g).sum() + v.sum(), x)
    return s.detach(), v.detach(), gx


@pytest.mark.parametrize("T", [4, 16, 40])  # 40 > MAX_T: the scratch-buffer backward
@pytest.mark.parametrize("opts", GRID)
def test_fp32_equals_torch(opts, T):
    torch.manual_seed(0)
    x = torch.randn(T, 3, 1001, device="cuda") + 0.7
    g = torch.randn_like(x)
    s_ref, v_ref, g_ref = _run(lif, "torch", x, g, **opts)
    s, v, gx = _run(lif, "cupy", x, g, **opts)
    assert torch.equal(s, s_ref)
    assert torch.equal(v, v_ref)
    torch.testing.assert_close(gx, g_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fire", ["ge", "gt"])
@pytest.mark.parametrize("levels", [1, 3])
def test_fire_modes_on_ties(fire, levels):
    # tau = 2 and inputs on a grid of 1/4: many exact ties H == V_th (see test_neurons_fire.py).
    gen = torch.Generator().manual_seed(9)
    x = (torch.randint(-2, 13, (6, 2, 515), generator=gen).float() / 4).cuda()
    g = torch.randn(x.shape, generator=gen).cuda()
    fn, kw = (lif, {}) if levels == 1 else (mlf, dict(thresholds=(0.5, 1.5, 2.5), tau=2.0, decay_input=True))
    s_ref, v_ref, g_ref = _run(fn, "torch", x, g, fire=fire, **kw)
    s, v, gx = _run(fn, "cupy", x, g, fire=fire, **kw)
    assert torch.equal(s, s_ref) and torch.equal(v, v_ref)
    torch.testing.assert_close(gx, g_ref, rtol=1e-5, atol=1e-6)


def test_mlf_fp32_equals_torch():
    torch.manual_seed(1)
    x = torch.rand(8, 4097, device="cuda") * 3.5 - 0.3
    g = torch.randn_like(x)
    s_ref, v_ref, g_ref = _run(mlf, "torch", x, g)
    s, v, gx = _run(mlf, "cupy", x, g)
    assert torch.equal(s, s_ref) and torch.equal(v, v_ref)
    torch.testing.assert_close(gx, g_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", [4096, 4097])  # even: half2 loads; odd: one neuron per thread
def test_fp16_equals_fp32_on_the_rounded_input(n):
    # fp16 is storage only: the kernel computes in fp32 from the half input and rounds what it
    # stores, so it equals the fp32 reference on the half-rounded input and upstream gradient:
    # spikes identical, state and gradient within one half rounding (the same check runs on the
    # CPU in test_neurons_cuda_emulated.py).
    torch.manual_seed(2)
    x16 = (torch.randn(8, n, device="cuda") + 0.7).half()
    g16 = torch.randn(8, n, device="cuda").half()
    s_ref, v_ref, g_ref = _run(lif, "torch", x16.float(), g16.float())
    s, v, gx = _run(lif, "cupy", x16, g16)
    assert s.dtype == v.dtype == gx.dtype == torch.float16
    assert torch.equal(s.float(), s_ref)
    torch.testing.assert_close(v.float(), v_ref, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(gx.float(), g_ref, rtol=1e-3, atol=1e-4)


def test_learnable_tau_gradient_on_gpu():
    torch.manual_seed(3)
    x = torch.rand(6, 5000, device="cuda") * 2
    grads = []
    for backend in ("torch", "cupy"):
        neuron = LIF(tau=2.5, learn_tau=True, backend=backend).cuda()
        neuron(x).mul(torch.linspace(-1, 1, 5000, device="cuda")).sum().backward()
        grads.append(neuron.tau_logit.grad.item())
    assert grads[1] == pytest.approx(grads[0], rel=1e-4)


def test_non_contiguous_and_auto_backend():
    x = (torch.randn(5, 64, 48, device="cuda") + 0.7).transpose(1, 2)
    assert torch.equal(lif(x)[0], lif(x, backend="torch")[0])

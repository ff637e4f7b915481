"""A neuron's backward from its input alone (``input_grad``) against autograd through the torch
reference: what layers that keep only a neuron's input (the memory plans) rely on."""

import pytest
import torch
from host_launch import CXX
from lif_host import build_dir, host_kernels  # noqa: F401  (pytest fixtures)

from snnres.neurons import LIF, MLF
from snnres.neurons.functional import NeuronParams, run_neuron, run_neuron_input_grad

CASES = [
    dict(thresholds=(0.5,), v_reset=0.0, decay_input=False, detach_reset=True, surrogate="rectangle", alpha=1.0),
    dict(thresholds=(1.0,), v_reset=None, decay_input=True, detach_reset=False, surrogate="sigmoid", alpha=4.0),
    dict(thresholds=(0.6, 1.6, 2.6), v_reset=0.0, decay_input=False, detach_reset=False, surrogate="rectangle",
         alpha=1.0),
]


def _oracle(x, g, tau, params):
    """``(dL/dx, dL/dtau)`` by autograd through the torch reference, ``L = sum(spikes * g)``."""
    x = x.clone().requires_grad_()
    tau = torch.tensor(tau, requires_grad=True)
    spikes, _ = run_neuron(x, None, tau, params, "torch")
    return torch.autograd.grad((spikes * g).sum(), (x, tau))


@pytest.mark.parametrize("backend", ["torch", "numba"])
@pytest.mark.parametrize("case", CASES, ids=["ms", "soft-sigmoid", "mlf"])
def test_input_grad_equals_autograd(backend, case):
    torch.manual_seed(0)
    params = NeuronParams(**case)
    x = torch.randn(5, 3, 700) * 1.5 + 0.6
    g = torch.randn_like(x)
    gx_ref, gtau_ref = _oracle(x, g, 2.0, params)
    gx, gtau = run_neuron_input_grad(x, g, 2.0, params, backend)
    assert gtau is None  # a float tau has no gradient
    torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-6)
    tau = torch.tensor(2.0, requires_grad=True)
    gx, gtau = run_neuron_input_grad(x, g, tau, params, backend)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-6)
    assert gtau.shape == tau.shape and gtau_ref != 0
    torch.testing.assert_close(gtau, gtau_ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_module_input_grad_covers_learned_tau(backend):
    torch.manual_seed(1)
    neuron = LIF(tau=2.0, learn_tau=True, backend=backend)
    x = torch.randn(4, 2, 300) + 0.8
    g = torch.randn_like(x)
    leaf = x.clone().requires_grad_()
    gx_ref, glogit_ref = torch.autograd.grad((neuron(leaf) * g).sum(), (leaf, neuron.tau_logit))
    gx, (glogit,) = neuron.input_grad(x, g)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(glogit, glogit_ref, rtol=1e-4, atol=1e-6)
    assert MLF().max_count == 3 and LIF().max_count == 1


@pytest.mark.skipif(CXX is None, reason="g++ not on PATH: cannot build the kernel for the host")
@pytest.mark.parametrize("case", CASES[1:], ids=["soft-sigmoid", "mlf"])
def test_cuda_kernel_input_grad_in_host_emulation(host_kernels, case):
    # tau = 2: the kernel's x * (1/tau) equals the CPU's x / tau (tests/neurons/test_neurons_cuda_emulated.py)
    torch.manual_seed(2)
    params = NeuronParams(**case)
    x = torch.randn(6, 2, 513) * 1.5 + 0.6
    g = torch.randn_like(x)
    gx_ref, gtau_ref = _oracle(x, g, 2.0, params)
    gx, gtau = host_kernels.input_grad(x, g, 2.0, params, True)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-6)
    assert gtau == pytest.approx(float(gtau_ref), rel=1e-4)

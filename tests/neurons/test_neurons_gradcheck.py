"""torch.autograd.gradcheck in float64 where the surrogate plays no part.

With ``detach_reset=True`` the final state ``V[T-1]`` is a piecewise-linear function of the input,
the start state and tau, so its analytic gradient is the true one (away from thresholds): gradcheck
verifies the charge, leak and tau terms of both the reference and the fused numba backward.
"""

import pytest
import torch
from torch.autograd import gradcheck

from snnres.functional import lif, mlf


def _v_last(fn, backend, **kw):
    def f(x, v0, tau):
        return fn(x, v0, tau=tau, backend=backend, detach_reset=True, **kw)[1]
    return f


@pytest.mark.parametrize("backend", ["torch", "numba"])
@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("v_reset", [0.0, None])
def test_lif_state_gradcheck(backend, decay_input, v_reset):
    torch.manual_seed(3)
    x = (torch.rand(5, 12, dtype=torch.float64) * 1.6).requires_grad_()
    v0 = (torch.rand(12, dtype=torch.float64) * 0.3).requires_grad_()
    tau = torch.tensor(2.3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(_v_last(lif, backend, decay_input=decay_input, v_reset=v_reset), (x, v0, tau), eps=1e-7)


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_mlf_state_gradcheck(backend):
    torch.manual_seed(4)
    x = (torch.rand(4, 9, dtype=torch.float64) * 2.5).requires_grad_()
    v0 = (torch.rand(3, 9, dtype=torch.float64) * 0.2).requires_grad_()
    tau = torch.tensor(1.6, dtype=torch.float64, requires_grad=True)
    assert gradcheck(_v_last(mlf, backend), (x, v0, tau), eps=1e-7)


def test_surrogate_spike_gradient_matches_its_formula():
    # d spikes / dx at t=0 for a single step equals g'(x/tau - V_th) / tau (decay_input, V=0).
    x = torch.linspace(0.0, 4.0, 41, dtype=torch.float64).reshape(1, -1).requires_grad_()
    s, _ = lif(x, tau=2.0, surrogate="sigmoid", alpha=4.0, backend="torch")
    (g,) = torch.autograd.grad(s.sum(), x)
    sig = torch.sigmoid(4.0 * (x.detach() / 2.0 - 1.0))
    torch.testing.assert_close(g, 4.0 * sig * (1 - sig) / 2.0)

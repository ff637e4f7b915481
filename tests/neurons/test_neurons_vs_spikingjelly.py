"""The torch reference against SpikingJelly 2.0's multi-step LIFNode, run side by side."""

import pytest
import torch

from snnres.functional import lif

sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")

# snnres surrogate name -> SpikingJelly class taking the same alpha (see snnres.neurons.surrogate)
SJ_SURROGATES = {
    "sigmoid": sj_surrogate.Sigmoid,
    "atan": sj_surrogate.ATan,
    "triangle": sj_surrogate.PiecewiseQuadratic,
    "rectangle": sj_surrogate.Rect,
}

GRID = [
    dict(tau=2.0, v_reset=0.0, decay_input=True, detach_reset=False, surrogate="sigmoid", alpha=4.0),
    dict(tau=2.0, v_reset=None, decay_input=True, detach_reset=False, surrogate="atan", alpha=2.0),
    dict(tau=4 / 3, v_reset=0.0, decay_input=False, detach_reset=True, surrogate="rectangle", alpha=1.0),
    dict(tau=3.5, v_reset=-0.2, decay_input=False, detach_reset=False, surrogate="triangle", alpha=1.5),
    dict(tau=1.5, v_reset=None, decay_input=False, detach_reset=True, surrogate="sigmoid", alpha=2.0),
    dict(tau=8.0, v_reset=0.1, decay_input=True, detach_reset=True, surrogate="atan", alpha=3.0),
]


def _spikingjelly(x, opts, v_threshold):
    node = sj_neuron.LIFNode(
        tau=float(opts["tau"]), decay_input=opts["decay_input"], v_threshold=v_threshold,
        v_reset=opts["v_reset"], surrogate_function=SJ_SURROGATES[opts["surrogate"]](alpha=opts["alpha"]),
        detach_reset=opts["detach_reset"], step_mode="m",
    )
    return node(x), node.v


@pytest.mark.parametrize("backend", ["torch", "numba"])
@pytest.mark.parametrize("opts", GRID, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_lif_matches_spikingjelly(opts, backend):
    torch.manual_seed(5)
    v_threshold = 0.8
    x = (torch.randn(8, 4, 64) * 1.2 + 0.6).requires_grad_()
    grad_out = torch.randn_like(x)

    s_sj, v_sj = _spikingjelly(x, opts, v_threshold)
    (g_sj,) = torch.autograd.grad((s_sj * grad_out).sum(), x)

    s, v = lif(x, v_threshold=v_threshold, backend=backend, **opts)
    (g,) = torch.autograd.grad((s * grad_out).sum(), x)

    assert torch.equal(s.detach(), s_sj.detach())
    assert torch.equal(v.detach(), v_sj.detach())
    torch.testing.assert_close(g, g_sj, rtol=1e-5, atol=1e-6)

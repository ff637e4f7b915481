"""``fire="ge"|"gt"``: what a tie ``H == V_th`` does, worked by hand, in every CPU backend, and the
"ge" convention against SpikingJelly on inputs full of ties (the CUDA source: test_neurons_cuda_emulated)."""

import pytest
import torch

from snnres.functional import lif, mlf
from snnres.neurons import LIF, MLF, NeuronParams

BACKENDS = ["torch", "numba"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_tie_fires_with_ge_only(backend):
    # MS-ResNet's neuron, u = 0.25 u (1 - s) + x, V_th = 0.5.
    # t0: u = 0.5: a tie (ge: spike, reset to 0; gt: no spike, u stays 0.5)
    # t1: ge: u = 0 + 0.375 = 0.375 (no spike);  gt: u = 0.125 + 0.375 = 0.5: a tie again (no spike)
    # t2: ge: u = 0.09375 + 0.40625 = 0.5: a tie (spike);  gt: u = 0.125 + 0.40625 = 0.53125 (spike)
    x = torch.tensor([[0.5], [0.375], [0.40625]])
    ms = dict(tau=4 / 3, decay_input=False, v_threshold=0.5, detach_reset=True, surrogate="rectangle", alpha=1.0)
    s_ge, v_ge = lif(x, fire="ge", backend=backend, **ms)
    s_gt, v_gt = lif(x, fire="gt", backend=backend, **ms)
    assert s_ge.flatten().tolist() == [1.0, 0.0, 1.0]
    assert s_gt.flatten().tolist() == [0.0, 0.0, 1.0]
    assert v_ge.item() == 0.0 and v_gt.item() == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_soft_reset_tie(backend):
    # tau=2, decay_input, soft reset, V_th=1: x = 2 gives H = 1 (a tie): ge fires and keeps V = 0,
    # gt keeps V = 1; next x = 0: H = V / 2 -> 0 (ge) or 0.5 (gt).
    x = torch.tensor([[2.0], [0.0]])
    s_ge, v_ge = lif(x, tau=2.0, v_reset=None, fire="ge", backend=backend)
    s_gt, v_gt = lif(x, tau=2.0, v_reset=None, fire="gt", backend=backend)
    assert s_ge.flatten().tolist() == [1.0, 0.0] and v_ge.item() == 0.0
    assert s_gt.flatten().tolist() == [0.0, 0.0] and v_gt.item() == 0.5


@pytest.mark.parametrize("backend", BACKENDS)
def test_mlf_level_tie(backend):
    # One step, x = 1.6: level 0.6 fires; level 1.6 ties (fires only with ge); 2.6 does not.
    x = torch.tensor([[1.6]])
    assert mlf(x, fire="ge", backend=backend)[0].item() == 2.0
    assert mlf(x, fire="gt", backend=backend)[0].item() == 1.0
    assert MLF(backend=backend)(x).item() == 1.0  # the authors' default: u > V_th


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_at_a_tie(backend):
    # tau=2, decay_input, V_th=1, hard reset kept in the graph, sigmoid(alpha=4): g'(0) = 1.
    # x = 2: H = 1 = V_th. V = S V_r + (1 - S) H, so dV/dH = (1 - S) + (V_r - H) g'(0) = (1 - S) - 1:
    # ge (S = 1): dV/dH = -1, dV/dx = -1/2;  gt (S = 0): dV/dH = 0. dS/dx = g'(0) / 2 = 1/2 in both.
    for fire, dv_dx in (("ge", -0.5), ("gt", 0.0)):
        x = torch.tensor([[2.0]], requires_grad=True)
        s, v = lif(x, tau=2.0, fire=fire, backend=backend)
        (g_v,) = torch.autograd.grad(v.sum(), x, retain_graph=True)
        (g_s,) = torch.autograd.grad(s.sum(), x)
        assert g_v.item() == dv_dx, fire
        assert g_s.item() == 0.5, fire


def test_fire_is_checked():
    with pytest.raises(ValueError, match="fire='>='.*'ge'.*'gt'"):
        LIF(fire=">=")
    with pytest.raises(ValueError, match="expected 'ge'"):
        NeuronParams(fire="gte")


def test_module_shows_and_keeps_the_option():
    neuron = LIF(fire="gt")
    assert neuron.params.fire == "gt" and neuron.params.strict
    assert "fire=gt" in repr(neuron)


def _tie_rich(seed, shape=(12, 3, 200)):
    """Inputs on a grid of 1/4: with tau = 2 every H is a short binary fraction, so many equal V_th."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(-2, 9, shape, generator=gen).float() / 4


@pytest.mark.parametrize("opts", [
    dict(tau=2.0, v_threshold=1.0),
    dict(tau=2.0, v_threshold=0.5, v_reset=None, decay_input=False, surrogate="atan", alpha=2.0),
    dict(tau=4.0, v_threshold=0.75, v_reset=-0.25, detach_reset=True, surrogate="triangle", alpha=1.0),
])
@pytest.mark.parametrize("fire", ["ge", "gt"])
def test_numba_equals_torch_on_ties(opts, fire):
    x = _tie_rich(3).requires_grad_()
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    out = {}
    for backend in BACKENDS:
        s, v = lif(x, fire=fire, backend=backend, **opts)
        (gx,) = torch.autograd.grad((s * g).sum() + v.sum(), x)
        out[backend] = (s.detach(), v.detach(), gx)
    (s_ref, v_ref, g_ref), (s, v, gx) = out["torch"], out["numba"]
    assert torch.equal(s, s_ref) and torch.equal(v, v_ref)
    torch.testing.assert_close(gx, g_ref, rtol=1e-5, atol=1e-6)


def test_the_two_conventions_differ_on_ties_only():
    x = _tie_rich(5)
    ge, _ = lif(x, tau=2.0, fire="ge", backend="torch")
    gt, _ = lif(x, tau=2.0, fire="gt", backend="torch")
    assert (ge != gt).any()  # the grid makes ties: the option matters here
    assert torch.equal(lif(x + 1e-3, tau=2.0, fire="ge")[0], lif(x + 1e-3, tau=2.0, fire="gt")[0])


def test_gt_matches_the_authors_loop():
    # The MS-ResNet authors' neuron, written out: mem = mem_old * 0.25 * (1 - spike) + x; spike = mem > 0.5.
    x = _tie_rich(6) / 2
    mem_old, spike, expected = torch.zeros_like(x[0]), torch.zeros_like(x[0]), []
    for t in range(x.shape[0]):
        mem = mem_old * 0.25 * (1 - spike) + x[t] if t else x[t]
        spike = (mem > 0.5).float()
        mem_old = mem
        expected.append(spike)
    expected = torch.stack(expected)
    ms = dict(tau=4 / 3, decay_input=False, v_threshold=0.5, detach_reset=True, surrogate="rectangle", alpha=1.0)
    assert torch.equal(lif(x, fire="gt", backend="torch", **ms)[0], expected)
    assert torch.equal(lif(x, fire="gt", backend="numba", **ms)[0], expected)
    assert not torch.equal(lif(x, fire="ge", **ms)[0], expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ge_matches_spikingjelly_on_ties(backend):
    sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
    sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")
    x = _tie_rich(7).requires_grad_()
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(8))
    node = sj_neuron.LIFNode(tau=2.0, v_threshold=1.0, surrogate_function=sj_surrogate.Sigmoid(alpha=4.0),
                             step_mode="m")
    s_sj = node(x)
    (g_sj,) = torch.autograd.grad((s_sj * g).sum(), x)
    s, v = lif(x, tau=2.0, fire="ge", backend=backend)
    (gx,) = torch.autograd.grad((s * g).sum(), x)
    assert torch.equal(s.detach(), s_sj.detach()) and torch.equal(v.detach(), node.v.detach())
    torch.testing.assert_close(gx, g_sj, rtol=1e-5, atol=1e-6)
    assert not torch.equal(lif(x.detach(), tau=2.0, fire="gt", backend=backend)[0], s_sj.detach())

"""Hand-worked 3-step cases: the equations of snnres.neurons.functional evaluated on paper."""

import pytest
import torch

from snnres.functional import lif, mlf

BACKENDS = ["torch", "numba"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_hard_reset_decay_input(backend):
    # tau=2, V_th=1, V_reset=0: H = V + (X - V)/2.
    # t0: H = 0 + (1.5 - 0)/2 = 0.75 -> no spike, V = 0.75
    # t1: H = 0.75 + (1.5 - 0.75)/2 = 1.125 -> spike, V = 0
    # t2: H = 0 + (0.5 - 0)/2 = 0.25 -> no spike, V = 0.25
    x = torch.tensor([[1.5], [1.5], [0.5]])
    s, v = lif(x, tau=2.0, backend=backend)
    assert s.flatten().tolist() == [0.0, 1.0, 0.0]
    assert v.item() == pytest.approx(0.25)


@pytest.mark.parametrize("backend", BACKENDS)
def test_soft_reset_no_decay_input(backend):
    # tau=2, V_th=1, soft reset: H = V - V/2 + X; V = H - S.
    # t0: H = 0 + 1.2 = 1.2 -> spike, V = 0.2
    # t1: H = 0.2 - 0.1 + 0.95 = 1.05 -> spike, V = 0.05
    # t2: H = 0.05 - 0.025 + 0.1 = 0.125 -> no spike, V = 0.125
    x = torch.tensor([[1.2], [0.95], [0.1]], dtype=torch.float64)
    s, v = lif(x, tau=2.0, v_reset=None, decay_input=False, backend=backend)
    assert s.flatten().tolist() == [1.0, 1.0, 0.0]
    assert v.item() == pytest.approx(0.125)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ms_resnet_neuron_is_quarter_leak(backend):
    # MS-ResNet: u = 0.25 u (1 - s) + x, s = u > 0.5.
    x = torch.tensor([[0.4], [0.45], [0.3], [0.2]], dtype=torch.float64)
    s, _ = lif(x, tau=4 / 3, decay_input=False, v_threshold=0.5, v_reset=0.0, surrogate="rectangle",
               alpha=1.0, detach_reset=True, backend=backend)
    u, expected = 0.0, []
    for xt in x.flatten().tolist():
        u = 0.25 * u + xt
        fired = u > 0.5
        expected.append(float(fired))
        u = 0.0 if fired else u
    # u: 0.4, 0.55 (spike), 0.3, 0.275
    assert expected == [0.0, 1.0, 0.0, 0.0]
    assert s.flatten().tolist() == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_mlf_equals_independent_lifs(backend):
    torch.manual_seed(0)
    x = torch.rand(6, 50) * 3
    s, v = mlf(x, backend=backend)
    total = torch.zeros_like(x)
    for k, th in enumerate((0.6, 1.6, 2.6)):
        sk, vk = lif(x, tau=4 / 3, decay_input=False, v_threshold=th, fire="gt", backend="torch")
        total += sk
        assert torch.equal(v[k], vk)
    assert torch.equal(s, total)
    assert s.max() == 3 and s.min() == 0


def test_mlf_hand_computed_levels():
    # One step, x = 1.7: levels 0.6 and 1.6 fire, 2.6 does not -> output 2.
    s, v = mlf(torch.tensor([[1.7]]), backend="torch")
    assert s.item() == 2.0
    assert v.flatten().tolist() == pytest.approx([0.0, 0.0, 1.7])


@pytest.mark.parametrize("backend", BACKENDS)
def test_state_starts_at_v_reset(backend):
    # Zero input with v_reset=-0.5: the state stays at -0.5 and never fires.
    s, v = lif(torch.zeros(3, 4), v_reset=-0.5, backend=backend)
    assert s.sum() == 0 and torch.all(v == -0.5)

"""numba against the torch reference: identical spikes and states, gradients within fp32 tolerance."""

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from snnres.functional import lif, mlf
from snnres.neurons import LIF, MLF


def _grads(fn, backend, x, v, g_s, g_v, **kw):
    x = x.clone().requires_grad_()
    v = None if v is None else v.clone().requires_grad_()
    s, v_last = fn(x, v, backend=backend, **kw)
    loss = (s * g_s).sum() + (v_last * g_v).sum()
    inputs = [x] if v is None else [x, v]
    return s.detach(), v_last.detach(), torch.autograd.grad(loss, inputs)


def assert_backends_agree(fn, x, v=None, rtol=1e-5, **kw):
    g_s = torch.randn_like(x)
    g_v = torch.randn(fn(x, v, backend="torch", **kw)[1].shape, dtype=x.dtype)
    s_ref, v_ref, grads_ref = _grads(fn, "torch", x, v, g_s, g_v, **kw)
    s, v_last, grads = _grads(fn, "numba", x, v, g_s, g_v, **kw)
    assert torch.equal(s, s_ref), "spikes differ"
    assert torch.equal(v_last, v_ref), "final states differ"
    for g, g_ref in zip(grads, grads_ref):
        # fp32 tolerance: relative 1e-5, plus an absolute floor for gradients that are small by
        # cancellation (numba accumulates in float64, the reference in float32).
        scale = max(1.0, g_ref.abs().max().item())
        torch.testing.assert_close(g, g_ref, rtol=rtol, atol=rtol * 0.1 * scale)


options = st.fixed_dictionaries({
    "tau": st.floats(1.0, 10.0),
    "v_threshold": st.floats(0.2, 2.0),
    "v_reset": st.one_of(st.none(), st.floats(-0.5, 0.3)),
    "decay_input": st.booleans(),
    "detach_reset": st.booleans(),
    "surrogate": st.sampled_from(["sigmoid", "atan", "triangle", "rectangle"]),
    "alpha": st.floats(0.5, 5.0),
    "fire": st.sampled_from(["ge", "gt"]),
})


@settings(max_examples=60, deadline=None, derandomize=True)
@given(opts=options, T=st.integers(1, 9), n=st.integers(1, 300), seed=st.integers(0, 2**16),
       with_state=st.booleans())
def test_lif_numba_equals_torch(opts, T, n, seed, with_state):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(T, n, generator=gen) * 1.5 + 0.5
    v = torch.randn(n, generator=gen) * 0.5 if with_state else None
    assert_backends_agree(lif, x, v, **opts)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(opts=options, levels=st.integers(1, 4), T=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_mlf_numba_equals_torch(opts, levels, T, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(T, 2, 37, generator=gen) * 4 - 0.5
    opts = dict(opts)
    opts.pop("v_threshold")
    assert_backends_agree(mlf, x, None, levels=levels, **opts)


def test_large_layer_spans_many_blocks():
    # More neurons than one numba block (at least 1024), odd count, 4-d leading shape.
    x = torch.randn(4, 3, 5, 17, 41) + 0.8
    assert_backends_agree(lif, x)


@pytest.mark.parametrize("T", [3, 20])  # T = 20: the backward's H budget cuts its blocks to 64 neurons
def test_tiny_blocks_with_a_partial_last_one(monkeypatch, T):
    """Blocks of 64-192 neurons with a ragged last one: block edges must not change any number."""
    from snnres.neurons.backends import numba_cpu

    monkeypatch.setattr(numba_cpu, "MIN_BLOCK", 64)
    monkeypatch.setattr(numba_cpu, "MAX_BLOCK", 192)
    monkeypatch.setattr(numba_cpu, "H_BUDGET", 4 * 192 * 4)
    torch.manual_seed(3)
    x = torch.randn(T, 4, 500) + 0.6
    assert_backends_agree(lif, x, torch.randn(4, 500) * 0.3, surrogate="sigmoid")
    assert_backends_agree(mlf, x, levels=3)
    grads = {}
    for backend in ["torch", "numba"]:  # the tau gradient is summed per block, then over blocks
        neuron = LIF(tau=2.5, learn_tau=True, backend=backend)
        (neuron(x) * torch.linspace(-1, 1, 2000).view(4, 500)).sum().backward()
        grads[backend] = neuron.tau_logit.grad.item()
    assert grads["numba"] == pytest.approx(grads["torch"], rel=1e-5)


def test_non_contiguous_input():
    x = torch.randn(5, 64, 48).transpose(1, 2) + 0.7
    assert not x.is_contiguous()
    assert_backends_agree(lif, x, surrogate="atan", alpha=2.0)


def test_float64_agrees_to_double_precision():
    x = torch.randn(6, 500, dtype=torch.float64) + 0.7
    assert_backends_agree(lif, x, rtol=1e-12)


def test_half_input_runs_in_float32_on_cpu():
    x = (torch.randn(4, 100) + 0.8).half().requires_grad_()
    s = LIF(backend="numba")(x)
    assert s.dtype == torch.float16
    ref = LIF(backend="torch")(x.detach().float())
    assert torch.equal(s.float(), ref)
    s.sum().backward()
    assert x.grad.dtype == torch.float16


@pytest.mark.parametrize("module", [LIF, MLF])
def test_learnable_tau_gradient(module):
    torch.manual_seed(1)
    x = torch.rand(6, 300) * 2
    grads = {}
    for backend in ["torch", "numba"]:
        neuron = module(tau=2.5, learn_tau=True, backend=backend)
        (neuron(x) * torch.linspace(-1, 1, 300)).sum().backward()
        grads[backend] = neuron.tau_logit.grad.item()
    assert grads["torch"] != 0.0
    assert grads["numba"] == pytest.approx(grads["torch"], rel=1e-5)


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_streaming_in_chunks_equals_one_shot(backend):
    torch.manual_seed(2)
    x = (torch.randn(10, 3, 30) + 0.6).requires_grad_()
    s_full, v_full = lif(x, backend=backend)
    s1, v1 = lif(x[:4], backend=backend)
    s2, v2 = lif(x[4:], v1, backend=backend)
    assert torch.equal(torch.cat([s1, s2]), s_full)
    assert torch.equal(v2, v_full)
    # The gradient flows back through the carried state.
    g = torch.randn_like(s_full)
    (g_full,) = torch.autograd.grad((s_full * g).sum(), x)
    (g_chunk,) = torch.autograd.grad((torch.cat([s1, s2]) * g).sum(), x)
    torch.testing.assert_close(g_chunk, g_full, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("use", ["spikes", "state"])
@pytest.mark.parametrize("with_state", [False, True])
def test_gradient_through_one_output_only(use, with_state):
    """Autograd hands the fused backward None for the unused output (no zero tensor is made)."""
    torch.manual_seed(4)
    x = torch.randn(5, 300) + 0.6
    v = torch.randn(300) * 0.3 if with_state else None
    grads = {}
    for backend in ["torch", "numba"]:
        xb = x.clone().requires_grad_()
        vb = None if v is None else v.clone().requires_grad_()
        s, v_last = lif(xb, vb, backend=backend)
        out = s if use == "spikes" else v_last
        (out * torch.linspace(-1, 1, 300)).sum().backward()
        grads[backend] = (xb.grad, None if vb is None else vb.grad)
    torch.testing.assert_close(grads["numba"][0], grads["torch"][0], rtol=1e-5, atol=1e-6)
    if with_state:
        torch.testing.assert_close(grads["numba"][1], grads["torch"][1], rtol=1e-5, atol=1e-6)

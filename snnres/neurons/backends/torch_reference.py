"""The readable reference: one PyTorch op per term of the equations, autograd for the backward."""

from __future__ import annotations

import torch

from ..surrogate import spike


def available() -> str | None:
    return None


def charge(x, v, tau, decay_input: bool, v_rest: float):
    """``H[t]`` from ``V[t-1]`` and ``X[t]`` (same op order as SpikingJelly)."""
    if decay_input:
        return v + (x - (v - v_rest)) / tau
    return v - (v - v_rest) / tau + x


def reset(h, s, v_threshold: float, v_reset: float | None):
    """``V[t]`` after the spike ``S[t]``: hard reset to ``v_reset``, or soft (subtract)."""
    if v_reset is None:
        return h - s * v_threshold
    return s * v_reset + (1.0 - s) * h


def run(x_seq: torch.Tensor, v: torch.Tensor | None, tau, params) -> tuple[torch.Tensor, torch.Tensor]:
    if v is None:
        v = torch.full((params.levels, *x_seq.shape[1:]), params.rest, dtype=x_seq.dtype, device=x_seq.device)
    levels = list(v.unbind(0))
    spikes = []
    for x in x_seq:
        total = None
        for k, threshold in enumerate(params.thresholds):
            h = charge(x, levels[k], tau, params.decay_input, params.rest)
            s = spike(h - threshold, params.surrogate, params.alpha, params.fire)
            levels[k] = reset(h, s.detach() if params.detach_reset else s, threshold, params.v_reset)
            total = s if total is None else total + s
        spikes.append(total)
    return torch.stack(spikes), torch.stack(levels)


def input_grad(x_seq: torch.Tensor, grad_spikes: torch.Tensor, tau, params, need_tau: bool):
    """The reference run again from ``x_seq``, differentiated by autograd."""
    x = x_seq.detach().requires_grad_()
    tau_leaf = tau.detach().requires_grad_() if need_tau else tau  # need_tau: tau is a tensor
    with torch.enable_grad():
        spikes, _ = run(x, None, tau_leaf, params)
        grads = torch.autograd.grad(spikes, (x, tau_leaf) if need_tau else (x,), grad_spikes)
    return grads[0], float(grads[1]) if need_tau else None

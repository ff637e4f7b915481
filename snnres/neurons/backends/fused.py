"""The autograd glue shared by the fused backends (numba on the CPU, CuPy on the GPU).

A fused backend provides ``forward(x [T, N], v0 [K, N] | None, tau, params) -> (spikes [T, N],
v_last [K, N])`` and ``backward(x, v0 | None, grad_spikes, grad_v_last | None, tau, params,
need_tau) -> (grad_x, grad_v0 | None, grad_tau | None)``; ``v0 = None`` is the resting state
(every level at ``params.rest``, never materialised by the numba backend) and then ``grad_v0`` is
None. The forward saves only ``x`` and a given ``v0`` (one tensor of the input's size); the
backward kernel recomputes the membrane potentials from them, which costs the same memory traffic
as reading a stored ``H`` and keeps training memory at one copy per neuron layer.
"""

from __future__ import annotations

from types import ModuleType

import torch


class FusedNeuronFunction(torch.autograd.Function):
    """``(x [T, N], v0 [K, N] | None, tau tensor | None) -> (spikes [T, N], v_last [K, N])``.

    Saved for the backward: ``x``, plus ``v0`` only when the caller passed a state. Gradients that
    autograd does not have (an unused ``v_last``) arrive as None rather than as zero tensors.
    """

    @staticmethod
    def forward(ctx, x2d, v0, tau_tensor, kernels: ModuleType, params, tau_value: float):
        ctx.set_materialize_grads(False)
        spikes, v_last = kernels.forward(x2d, v0, tau_value, params)
        ctx.save_for_backward(x2d, v0)
        ctx.kernels, ctx.params, ctx.tau_value = kernels, params, tau_value
        ctx.tau_like = tau_tensor.detach() if tau_tensor is not None else None
        return spikes, v_last

    @staticmethod
    def backward(ctx, grad_spikes, grad_v_last):
        x2d, v0 = ctx.saved_tensors
        if grad_spikes is None:
            grad_spikes = torch.zeros_like(x2d)
        need_tau = ctx.needs_input_grad[2]
        grad_x, grad_v0, grad_tau = ctx.kernels.backward(
            x2d, v0, grad_spikes.contiguous(),
            None if grad_v_last is None else grad_v_last.contiguous(),
            ctx.tau_value, ctx.params, need_tau,
        )
        if need_tau:
            grad_tau = torch.full_like(ctx.tau_like, float(grad_tau))
        return grad_x, grad_v0 if ctx.needs_input_grad[1] else None, grad_tau, None, None, None


def rest_state(x2d: torch.Tensor, params) -> torch.Tensor:
    """The resting state ``[K, N]`` as a tensor, for backends whose kernels need one."""
    return torch.full((params.levels, x2d.shape[1]), params.rest, dtype=x2d.dtype, device=x2d.device)


def _as_rows(t: torch.Tensor, compute_dtype: torch.dtype | None) -> torch.Tensor:
    """``[T, ...]`` as a contiguous ``[T, N]`` in the kernels' dtype (a copy only where needed)."""
    if compute_dtype is not None and t.dtype != compute_dtype:
        t = t.to(compute_dtype)
    return t.reshape(t.shape[0], -1).contiguous()


@torch.compiler.disable
def input_grad_fused(kernels: ModuleType, x_seq: torch.Tensor, grad_spikes: torch.Tensor, tau, params,
                     need_tau: bool, compute_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, float | None]:
    """The backward kernel alone, for a run from rest: ``(dL/dx_seq, dL/dtau or None)`` given
    ``dL/dspikes``. A caller that kept only the neuron's input (or can recompute it) needs nothing else."""
    tau_value = float(tau.detach()) if isinstance(tau, torch.Tensor) else float(tau)
    grad_x, _, grad_tau = kernels.backward(_as_rows(x_seq.detach(), compute_dtype), None,
                                           _as_rows(grad_spikes, compute_dtype), None, tau_value, params, need_tau)
    return grad_x.reshape(x_seq.shape).to(x_seq.dtype), grad_tau


@torch.compiler.disable  # numba / CuPy launches are opaque to dynamo: a graph break around them
def run_fused(kernels: ModuleType, x_seq: torch.Tensor, v: torch.Tensor | None, tau, params,
              compute_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten to ``[T, N]`` (a copy only if ``x_seq`` is not contiguous), run, restore shapes.

    ``compute_dtype``: the kernels run in this dtype when the input's is not supported
    (the result is cast back, and autograd casts the gradient).
    """
    dtype = x_seq.dtype
    if compute_dtype is not None and dtype != compute_dtype:
        x_seq = x_seq.to(compute_dtype)
        v = None if v is None else v.to(compute_dtype)
    x2d = x_seq.reshape(x_seq.shape[0], -1).contiguous()
    v2d = None if v is None else v.reshape(v.shape[0], -1).contiguous()
    tau_tensor = tau if isinstance(tau, torch.Tensor) else None
    tau_value = float(tau.detach()) if tau_tensor is not None else float(tau)
    spikes, v_last = FusedNeuronFunction.apply(x2d, v2d, tau_tensor, kernels, params, tau_value)
    spikes = spikes.reshape(x_seq.shape)
    v_last = v_last.reshape(params.levels, *x_seq.shape[1:])
    return spikes.to(dtype), v_last.to(dtype)

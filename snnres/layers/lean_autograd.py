"""Autograd functions that keep less for the backward than the layers they stand for, with the
same forward results and the same gradients (to float rounding).

- ``StoredInputConv``: ``conv(x)`` keeping ``x`` as bits or bytes (``spike_storage``) when it is
  a spike tensor, for the weight gradient; the conv's backward (``conv_grad.conv2d_backward``)
  runs on the restored input, so nothing is recomputed.
- ``NormNeuron``: ``neuron(bn(c))`` keeping only ``c``, which BatchNorm's backward needs anyway;
  the neuron's input ``bn(c)`` is recomputed (the same BN forward without its running-statistics
  update) and the neuron's backward runs from it (``input_grad``).
- ``RecomputedUnit``: ``neuron(bn(conv(x)))`` keeping only ``x`` (compactly): the conv and BN are
  recomputed in the backward, the neuron's backward runs from its recomputed input. A conv fed
  by an image repeated over time and followed by no neuron is recomputed once per image
  (``conv_grad.repeated_conv``): equal to rounding, which only BatchNorm's backward then sees.

The modules' parameters are passed to ``apply`` (so that autograd asks for their gradients, in
the order ``conv, norm, neuron``) but not saved: the recomputation differentiates the modules' own
tensors. Recomputation repeats the forward's operations on the same values, so the recomputed
tensors are bit for bit the forward's; BatchNorm is run on cloned buffers (``stateless``) so its running
statistics move once per step, as in the plain path. The autocast state of the forward is
restored around every recomputation.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.func import functional_call

from .batch_norm_parts import batch_norm_backward, batch_norm_forward, batch_norm_output, plain_batch_norm
from .tdbn_parts import outside_tdbn, tdbn_backward, tdbn_forward, tdbn_output
from .conv_grad import conv2d_backward, is_repeated_over_time, repeated_conv
from .spike_storage import restore, store


def autocast_state(device_type: str) -> tuple[str, torch.dtype | None]:
    """``(device type, autocast dtype or None)``: what ``recompute_context`` re-enters."""
    if torch.is_autocast_enabled(device_type):
        return device_type, torch.get_autocast_dtype(device_type)
    return device_type, None


def autocast_like(state: tuple[str, torch.dtype | None]):
    """The forward's autocast state again, for a recomputation inside a backward."""
    device_type, dtype = state
    if dtype is None and not torch.is_autocast_enabled(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype, enabled=dtype is not None)


def recompute_context(state: tuple[str, torch.dtype | None]):
    """Grad mode on, and the forward's autocast state, for a recomputation under autograd."""
    stack = contextlib.ExitStack()
    stack.enter_context(torch.enable_grad())
    stack.enter_context(autocast_like(state))
    return stack


def stateless(module: nn.Module, *args: torch.Tensor) -> torch.Tensor:
    """``module(*args)`` on cloned buffers: a BatchNorm's running statistics stay as they are."""
    buffers = {name: buffer.clone() for name, buffer in module.named_buffers()}
    return functional_call(module, buffers, args)


def neuron_input_grad(neuron: nn.Module, y: torch.Tensor, grad_out: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    """``(dL/dy, dL/dp for p in neuron.parameters())`` for ``out = neuron(y)``, from ``y`` alone.

    snnres neurons run their backward kernel (``input_grad``); any other neuron module is run
    again under autograd.
    """
    if hasattr(neuron, "input_grad"):
        return neuron.input_grad(y, grad_out)
    params = tuple(neuron.parameters())
    with torch.enable_grad():
        leaf = y.detach().requires_grad_()
        grads = torch.autograd.grad(neuron(leaf), (leaf, *params), grad_out, allow_unused=True)
    return grads[0], grads[1:]


def _grads_for(outputs: torch.Tensor, grad: torch.Tensor, inputs: list[torch.Tensor | None]) -> list:
    """``autograd.grad`` over the inputs that are tensors requiring grad; None for the others."""
    wanted = [t for t in inputs if t is not None and t.requires_grad]
    found = iter(torch.autograd.grad(outputs, wanted, grad, allow_unused=True) if wanted else ())
    return [next(found) if t is not None and t.requires_grad else None for t in inputs]


def _restore_input(stored: torch.Tensor, max_count, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """The unit's input back from ``store``, in ``dtype``; a repeated input stays a repeated view."""
    if is_repeated_over_time(stored):
        return stored[0].to(dtype).unsqueeze(0).expand(shape)
    return restore(stored, max_count, shape, dtype)


def _conv_input_grads(grad_c: torch.Tensor, x_seq: torch.Tensor, conv: nn.Conv2d, dtype: torch.dtype,
                      needs: tuple[bool, bool, bool]) -> tuple:
    """``conv2d_backward`` in the dtype the forward ran in (autocast), gradients cast back."""
    weight = conv.weight
    grad_x, grad_w, grad_b = conv2d_backward(grad_c.reshape(-1, *grad_c.shape[2:]).to(dtype), x_seq,
                                             weight.to(dtype), conv, needs)
    return (None if grad_x is None else grad_x, None if grad_w is None else grad_w.to(weight.dtype),
            None if grad_b is None else grad_b.to(weight.dtype))


class StoredInputConv(torch.autograd.Function):
    """``conv(x_seq)`` over ``[T, B, C, H, W]`` (``conv`` a time-merged module around ``inner``, a
    zero-padded ``nn.Conv2d``) keeping ``x_seq`` in the form ``spike_storage.store`` gives."""

    @staticmethod
    def forward(ctx, x_seq, weight, bias, conv: nn.Module, inner: nn.Conv2d, max_count):
        c = conv(x_seq)  # the module itself, so that its hooks see the call
        ctx.conv, ctx.max_count = inner, max_count
        ctx.x_shape, ctx.x_dtype, ctx.compute_dtype = x_seq.shape, x_seq.dtype, c.dtype
        ctx.save_for_backward(store(x_seq, max_count))
        return c

    @staticmethod
    def backward(ctx, grad_c):
        (stored,) = ctx.saved_tensors
        x = _restore_input(stored, ctx.max_count, ctx.x_shape, ctx.compute_dtype)
        grad_x, grad_w, grad_b = _conv_input_grads(grad_c, x, ctx.conv, ctx.compute_dtype,
                                                   tuple(ctx.needs_input_grad[:3]))
        return (None if grad_x is None else grad_x.to(ctx.x_dtype)), grad_w, grad_b, None, None, None


#: norms with exact parts: (which, forward -> (y, stats), output from stats, backward from stats)
NORM_PARTS = ((plain_batch_norm, batch_norm_forward, batch_norm_output, batch_norm_backward),
              (outside_tdbn, tdbn_forward, tdbn_output, tdbn_backward))


def _parts(norm: nn.Module, x: torch.Tensor):
    """``(bn, forward, output, backward)`` for a norm with exact parts, else None."""
    for which, *parts in NORM_PARTS:
        bn = which(norm, x)
        if bn is not None:
            return (bn, *parts)
    return None


def _norm_forward(norm: nn.Module, c_seq: torch.Tensor) -> tuple[torch.Tensor, tuple | None]:
    """``(norm(c_seq), statistics for the backward)``; the statistics are None for norms that take
    the general path (recomputed through autograd on cloned buffers)."""
    parts = _parts(norm, c_seq)
    if parts is None:
        return norm(c_seq), None
    bn, forward, _, _ = parts
    y, stats = forward(bn, c_seq.reshape(-1, *c_seq.shape[2:]))
    return y.view(c_seq.shape), stats


def _norm_neuron_backward(c_seq: torch.Tensor, norm: nn.Module, neuron: nn.Module | None, grad_out: torch.Tensor,
                          state, need_c: bool, stats: tuple | None) -> tuple:
    """``(dL/dc, dL/d norm params..., dL/d neuron params...)`` for ``out = neuron(norm(c))``
    (``norm(c)`` alone without a neuron), recomputing ``norm(c)`` without touching its buffers."""
    neuron_grads: tuple = ()
    parts = _parts(norm, c_seq) if stats is not None else None
    if parts is not None:
        bn, _, output, backward = parts
        c2d = c_seq.reshape(-1, *c_seq.shape[2:])
        grad_y = grad_out
        if neuron is not None:
            grad_y, neuron_grads = neuron_input_grad(neuron, output(bn, c2d, stats).view(c_seq.shape), grad_out)
        needs = (need_c, bn.weight is not None and bn.weight.requires_grad,
                 bn.bias is not None and bn.bias.requires_grad)
        grad_c, grad_w, grad_b = backward(bn, grad_y.reshape(c2d.shape), c2d, stats, needs)
        norm_grads = tuple(g for g, p in ((grad_w, bn.weight), (grad_b, bn.bias)) if p is not None)
        return (None if grad_c is None else grad_c.view(c_seq.shape), *norm_grads, *neuron_grads)
    with recompute_context(state):
        c_leaf = c_seq.detach().requires_grad_(need_c)
        y = stateless(norm, c_leaf)
    grad_y = grad_out
    if neuron is not None:
        grad_y, neuron_grads = neuron_input_grad(neuron, y.detach(), grad_out)
    return (*_grads_for(y, grad_y, [c_leaf, *norm.parameters()]), *neuron_grads)


class NormNeuron(torch.autograd.Function):
    """``neuron(norm(c_seq))`` keeping only ``c_seq`` (see the module docstring)."""

    @staticmethod
    def forward(ctx, c_seq, norm: nn.Module, neuron: nn.Module, state, *params):
        y, ctx.stats = _norm_forward(norm, c_seq)
        ctx.norm, ctx.neuron, ctx.state = norm, neuron, state
        ctx.save_for_backward(c_seq)
        return neuron(y)

    @staticmethod
    def backward(ctx, grad_spikes):
        (c_seq,) = ctx.saved_tensors
        grads = _norm_neuron_backward(c_seq, ctx.norm, ctx.neuron, grad_spikes, ctx.state, ctx.needs_input_grad[0],
                                      ctx.stats)
        return (grads[0], None, None, None, *grads[1:])


class RecomputedUnit(torch.autograd.Function):
    """``neuron(norm(conv(x_seq)))`` (``neuron`` may be None) keeping only ``x_seq``, compactly.

    ``inner``: the time-merged conv's ``nn.Conv2d`` when it is a plain one (its output is then
    recomputed without autograd and ``conv2d_backward`` runs), else None (the conv module is run
    again under autograd).
    """

    @staticmethod
    def forward(ctx, x_seq, conv: nn.Module, inner: nn.Conv2d | None, norm: nn.Module, neuron, max_count, state,
                *params):
        c = conv(x_seq)
        y, ctx.stats = _norm_forward(norm, c) if inner is not None else (norm(c), None)
        ctx.conv, ctx.inner, ctx.norm, ctx.neuron, ctx.max_count, ctx.state = conv, inner, norm, neuron, max_count, state
        ctx.x_shape, ctx.x_dtype, ctx.compute_dtype = x_seq.shape, x_seq.dtype, c.dtype
        ctx.save_for_backward(store(x_seq, max_count))
        return y if neuron is None else neuron(y)

    @staticmethod
    def backward(ctx, grad_out):
        (stored,) = ctx.saved_tensors
        need_x = ctx.needs_input_grad[0]
        if ctx.inner is None:
            return RecomputedUnit._backward_by_autograd(ctx, stored, grad_out, need_x)
        inner, T = ctx.inner, ctx.x_shape[0]
        x = _restore_input(stored, ctx.max_count, ctx.x_shape, ctx.x_dtype)
        with autocast_like(ctx.state):
            if is_repeated_over_time(x) and ctx.neuron is None:
                c = repeated_conv(inner, x)  # BN's backward alone sees it: rounding is harmless
            else:
                c = inner._conv_forward(x.reshape(-1, *x.shape[2:]), inner.weight, inner.bias)
        grad_c, *rest = _norm_neuron_backward(c.view(T, -1, *c.shape[1:]), ctx.norm, ctx.neuron, grad_out,
                                              ctx.state, True, ctx.stats)
        needs = (need_x, inner.weight.requires_grad, inner.bias is not None and inner.bias.requires_grad)
        grad_x, grad_w, grad_b = _conv_input_grads(grad_c, x.to(c.dtype), inner, c.dtype, needs)
        conv_grads = (grad_w,) if inner.bias is None else (grad_w, grad_b)
        return (None if grad_x is None else grad_x.to(ctx.x_dtype), None, None, None, None, None, None,
                *conv_grads, *rest)

    @staticmethod
    def _backward_by_autograd(ctx, stored, grad_out, need_x):
        x = restore(stored, ctx.max_count, ctx.x_shape, ctx.x_dtype)
        with recompute_context(ctx.state):
            x_leaf = x.detach().requires_grad_(need_x)
            y = stateless(ctx.norm, ctx.conv(x_leaf))
        neuron_grads: tuple = ()
        grad_y = grad_out
        if ctx.neuron is not None:
            grad_y, neuron_grads = neuron_input_grad(ctx.neuron, y.detach(), grad_out)
        grads = _grads_for(y, grad_y, [x_leaf, *ctx.conv.parameters(), *ctx.norm.parameters()])
        return (grads[0], None, None, None, None, None, None, *grads[1:], *neuron_grads)

"""Leaf layers -> NIR nodes: convolutions, linear maps, BatchNorm (folded), pools, flatten, neurons.

Each converter gets ``(tracer, module, path, value, in_tensor, out_tensor)`` and returns the
``Value`` of the layer's output. ``converter_for(module)`` is the table lookup the tracer uses;
``"unsupported"`` marks layers that must fail with their name (max-pool, attention).
"""

from __future__ import annotations

import math
import warnings

import nir
import numpy as np
import torch
from torch import nn

from ..neurons import SpikingNeuron
from .errors import ExportError
from .fold import batchnorm_scale_shift, fold_into, to_numpy
from .graph import Value


def _single_lead(value: Value, path: str, module: nn.Module, ndim: int) -> None:
    if len(value.lead) != 1 or len(value.shape) != ndim:
        raise ExportError(
            f"layer {path!r} ({type(module).__name__}) gets a tensor with leading dims {value.lead} "
            f"and features {value.shape}; expected one (time-merged) batch dim and {ndim} feature dims"
        )


def _pair(x) -> tuple[int, int]:
    return (int(x), int(x)) if isinstance(x, int) else (int(x[0]), int(x[1]))


def convert_conv2d(tr, conv: nn.Conv2d, path, value, in_tensor, out_tensor) -> Value:
    _single_lead(value, path, conv, 3)
    if conv.padding_mode != "zeros":
        raise ExportError(f"layer {path!r}: padding_mode={conv.padding_mode!r}; NIR convolutions pad with zeros")
    padding = conv.padding
    if isinstance(padding, str):
        k, d = _pair(conv.kernel_size), _pair(conv.dilation)
        total = [di * (ki - 1) for ki, di in zip(k, d)]
        if padding == "valid":
            padding = (0, 0)
        elif any(t % 2 for t in total):
            raise ExportError(f"layer {path!r}: padding='same' is asymmetric for kernel {k}; NIR pads symmetrically")
        else:
            padding = tuple(t // 2 for t in total)
    weight = to_numpy(conv.weight)
    bias = to_numpy(conv.bias, like=weight, size=conv.out_channels)
    if conv.groups > 1:  # NIR 1.0.8 types a conv's input as weight.shape[1] channels: expand the groups
        weight = _dense_grouped_weight(weight, conv.groups)
    node = nir.Conv2d(input_shape=value.shape[1:], weight=weight, stride=_pair(conv.stride), padding=_pair(padding),
                      dilation=_pair(conv.dilation), groups=1, bias=bias,
                      metadata={"snnres_layer": path})
    name = tr.builder.add(path, node, value)
    return value.with_(sources=(name,), shape=tuple(out_tensor.shape[1:]))


def _dense_grouped_weight(weight: np.ndarray, groups: int) -> np.ndarray:
    """The block-diagonal ``[C_out, C_in, kh, kw]`` weight of a grouped convolution."""
    c_out, c_in_group = weight.shape[:2]
    dense = np.zeros((c_out, c_in_group * groups, *weight.shape[2:]), dtype=weight.dtype)
    per_group = c_out // groups
    for g in range(groups):
        rows = slice(g * per_group, (g + 1) * per_group)
        dense[rows, g * c_in_group:(g + 1) * c_in_group] = weight[rows]
    return dense


def convert_linear(tr, linear: nn.Linear, path, value, in_tensor, out_tensor) -> Value:
    if len(value.shape) != 1:
        raise ExportError(f"layer {path!r} (Linear) gets features {value.shape}; flatten them first (NIR Affine is 1-D)")
    weight = to_numpy(linear.weight)
    bias = to_numpy(linear.bias, like=weight, size=linear.out_features)
    name = tr.builder.add(path, nir.Affine(weight=weight, bias=bias, metadata={"snnres_layer": path}), value)
    return value.with_(sources=(name,), shape=(linear.out_features,))


def convert_batchnorm(tr, bn: nn.modules.batchnorm._BatchNorm, path, value, in_tensor, out_tensor) -> Value:
    ndim = 3 if isinstance(bn, nn.BatchNorm2d) else 1
    _single_lead(value, path, bn, ndim)
    scale, shift = batchnorm_scale_shift(bn, path)
    builder = tr.builder
    src = value.sources[0] if len(value.sources) == 1 else None
    node = builder.nodes.get(src) if src is not None else None
    if isinstance(node, (nir.Conv2d, nir.Affine)) and not builder.has_consumers(src):
        node.weight, node.bias = fold_into(node.weight, node.bias, scale, shift)
        node.metadata["snnres_folded"] = path
        tr.bind(in_tensor, f"the output of {src!r} was used after BatchNorm {path!r} was folded into it")
        return value
    # Not right after a conv/linear (or its output is also used elsewhere): a per-channel affine map.
    dtype = builder.dtype
    if ndim == 3:  # a dense 1x1 conv: NIR 1.0.8's type check ignores groups, so no depthwise conv
        weight = np.diag(scale).astype(dtype)[:, :, None, None]
        node = nir.Conv2d(input_shape=value.shape[1:], weight=weight, stride=1, padding=0, dilation=1,
                          groups=1, bias=shift.astype(dtype), metadata={"snnres_layer": path})
    else:
        node = nir.Affine(weight=np.diag(scale).astype(dtype), bias=shift.astype(dtype), metadata={"snnres_layer": path})
    name = builder.add(path, node, value)
    return value.with_(sources=(name,))


def convert_avgpool(tr, pool: nn.AvgPool2d, path, value, in_tensor, out_tensor) -> Value:
    _single_lead(value, path, pool, 3)
    padding = _pair(pool.padding)
    if pool.ceil_mode or pool.divisor_override is not None or (any(padding) and not pool.count_include_pad):
        raise ExportError(f"layer {path!r}: ceil_mode, divisor_override and count_include_pad=False have no NIR equivalent")
    kernel = _pair(pool.kernel_size)
    stride = _pair(pool.stride if pool.stride is not None else pool.kernel_size)
    return _pool(tr, path, value, out_tensor, nir.AvgPool2d, kernel, stride, padding)


def convert_adaptive_avgpool(tr, pool: nn.AdaptiveAvgPool2d, path, value, in_tensor, out_tensor) -> Value:
    _single_lead(value, path, pool, 3)
    (h, w), (oh, ow) = value.shape[1:], tuple(out_tensor.shape[-2:])
    if h % oh or w % ow:
        raise ExportError(f"layer {path!r}: adaptive pooling {h}x{w} -> {oh}x{ow} uses uneven windows; NIR pools are regular")
    if (h, w) == (oh, ow):
        return value
    kernel = (h // oh, w // ow)
    return _pool(tr, path, value, out_tensor, nir.AvgPool2d, kernel, kernel, (0, 0))


def convert_lppool(tr, pool: nn.LPPool2d, path, value, in_tensor, out_tensor) -> Value:
    _single_lead(value, path, pool, 3)
    if float(pool.norm_type) != 1.0 or pool.ceil_mode:
        raise ExportError(f"layer {path!r}: LPPool2d with norm_type={pool.norm_type} is not a sum pool (norm_type=1)")
    kernel = _pair(pool.kernel_size)
    stride = _pair(pool.stride if pool.stride is not None else pool.kernel_size)
    return _pool(tr, path, value, out_tensor, nir.SumPool2d, kernel, stride, (0, 0))


def _pool(tr, path, value, out_tensor, kind, kernel, stride, padding) -> Value:
    node = kind(kernel_size=np.array(kernel), stride=np.array(stride), padding=np.array(padding),
                metadata={"snnres_layer": path})
    name = tr.builder.add(path, node, value)
    return value.with_(sources=(name,), shape=tuple(out_tensor.shape[1:]))


def convert_reshape_layer(tr, module, path, value, in_tensor, out_tensor) -> Value:
    """``nn.Flatten`` / ``nn.Unflatten``: the shapes say what happened."""
    return tr.relabel(value, tuple(in_tensor.shape), tuple(out_tensor.shape), f"layer {path!r}")


def convert_identity(tr, module, path, value, in_tensor, out_tensor) -> Value:
    return value


def convert_neuron(tr, neuron: SpikingNeuron, path, value, in_tensor, out_tensor) -> Value:
    """One ``nir.LIF`` (or ``nir.IF``) per level (an MLF neuron has several), all fed the same edges.

    snnres: ``H = V + (X - (V - V_r)) / tau`` (decay_input) or ``H = V - (V - V_r) / tau + X``,
    i.e. ``H = beta V + (1 - beta) V_r + g X`` with ``beta = 1 - 1/tau``, ``g = 1/tau`` or 1.
    NIR's LIF ``tau_n dv/dt = (v_leak - v) + r I`` stepped by Euler with ``dt`` is
    ``v = (1 - dt/tau_n) v + dt/tau_n (v_leak + r I)``, so ``tau_n = dt / (1 - beta) = dt tau``,
    ``v_leak = V_r`` and ``r = g tau`` (1 with decay_input, tau without). ``tau = inf`` without
    decay_input is integrate-and-fire, ``H = V + X``: NIR's IF ``dv/dt = r I`` stepped by Euler,
    ``v = v + dt r I``, so ``r = 1/dt``. NIR's neurons fire on ``v > v_threshold``: exactly a
    ``fire="gt"`` neuron; a ``"ge"`` one differs on exact ties only (the node's metadata keeps
    ``fire``, so ``from_nir`` rebuilds the same neuron).
    """
    if value.readout is not None:
        raise ExportError(f"neuron {path!r} comes after the mean over time; NIR cannot express it")
    if not value.lead or value.lead[0] != "T" or any("T" in label for label in value.lead[1:]):
        raise ExportError(
            f"neuron {path!r} gets a tensor with leading dims {value.lead}; a neuron needs time "
            "first ([T, B, ...]): reshape the time-merged [T*B, ...] back with view(T, B, ...)"
        )
    p, dt, dtype = neuron.params, tr.options["dt"], tr.builder.dtype
    tau = float(neuron.tau.detach()) if isinstance(neuron.tau, torch.Tensor) else float(neuron.tau)
    if p.v_reset is None:
        if not tr.options["allow_lossy"]:
            raise ExportError(
                f"neuron {path!r} uses a soft reset (v_reset=None, V -= V_th on a spike); NIR has "
                "only hard reset. Pass allow_lossy=True (CLI: --allow-lossy) to export it as a hard "
                "reset to 0, which changes the dynamics"
            )
        warnings.warn(f"neuron {path!r}: soft reset exported as a hard reset to 0 (lossy)", stacklevel=2)
        tr.notes.setdefault("lossy", []).append(f"{path}: soft reset exported as hard reset to 0")
        tr.notes.setdefault("reset", set()).add("soft (exported as hard)")
    else:
        tr.notes.setdefault("reset", set()).add("hard")
    tr.notes.setdefault("fire", set()).add(p.fire)
    v_reset = 0.0 if p.v_reset is None else float(p.v_reset)
    integrate_and_fire = math.isinf(tau) and tau > 0 and not p.decay_input
    fields = {"tau": tau, "v_reset": v_reset, **{f"v_threshold (level {k})": t for k, t in enumerate(p.thresholds)}}
    for field, x in fields.items():
        if not (math.isfinite(x) or (field == "tau" and integrate_and_fire)):
            raise ExportError(
                f"neuron {path!r}: {field} = {x}; NIR neurons need finite parameters "
                "(tau = inf is integrate-and-fire only with decay_input=False: with decay_input=True "
                "the input is divided by tau and never reaches the membrane)"
            )
    full = lambda x: np.full(value.shape, x, dtype=dtype)  # noqa: E731 - NIR wants full-shape arrays
    sources = []
    for level, threshold in enumerate(p.thresholds):
        meta = {"snnres_layer": path, "level": level, "levels": p.levels, "fire": p.fire}
        if integrate_and_fire:
            node = nir.IF(r=full(1.0 / dt), v_threshold=full(threshold), v_reset=full(v_reset), metadata=meta)
        else:
            node = nir.LIF(tau=full(dt * tau), r=full(1.0 if p.decay_input else tau), v_leak=full(v_reset),
                           v_threshold=full(threshold), v_reset=full(v_reset), metadata=meta)
        base = path if p.levels == 1 else f"{path}.level{level}"
        sources.append(tr.builder.add(base, node, value))
    return value.with_(sources=tuple(sources))


_UNSUPPORTED = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
                nn.MultiheadAttention, nn.FractionalMaxPool2d)

CONVERTERS = (
    (SpikingNeuron, convert_neuron),
    (nn.Conv2d, convert_conv2d),
    (nn.Linear, convert_linear),
    ((nn.BatchNorm1d, nn.BatchNorm2d), convert_batchnorm),
    (nn.AvgPool2d, convert_avgpool),
    (nn.AdaptiveAvgPool2d, convert_adaptive_avgpool),
    (nn.LPPool2d, convert_lppool),
    ((nn.Flatten, nn.Unflatten), convert_reshape_layer),
    ((nn.Identity, nn.Dropout, nn.Dropout2d), convert_identity),
)


def converter_for(module: nn.Module):
    """The converter of a leaf layer, ``"unsupported"``, or None (a container: trace inside)."""
    if isinstance(module, _UNSUPPORTED) or "attention" in type(module).__name__.lower():
        return "unsupported"
    for kinds, converter in CONVERTERS:
        if isinstance(module, kinds):
            return converter
    return None

"""Turn a model into a ``Graph``: one handler per layer type, BatchNorm folded on the way.

``trace(module, name, graph, src)`` appends the nodes of ``module`` reading node ``src`` and
returns the index of its output node. An ``nn.Sequential`` is read as a per-step feed-forward
chain (synaptic and pooling layers act on each time step, neurons carry their state across
steps), with a BatchNorm folded into the conv/linear layer right before it. Residual blocks of
``snnres.models`` register their own handlers (``blocks.py``) with ``register``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from torch import nn

from ..neurons import LIF, MLF
from .fold import BATCHNORMS, fold_batchnorm
from .graph import (
    ConvNode, Graph, LinearNode, NeuronNode, PoolNode, UnsupportedLayerError, as_f32, chw_to_hwc_rows, spatial_out,
)
from .memory import aligned

Handler = Callable[[nn.Module, str, Graph, int], int]
HANDLERS: dict[type | str, Handler] = {}  # by class, or by "module.QualName" (no import needed)
PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Dropout2d)


def register(*types: type | str) -> Callable[[Handler], Handler]:
    """Decorator: ``handler(module, name, graph, src) -> output node`` for modules of ``types``
    (classes, or their ``"module.QualName"`` so that the simulator need not import them)."""
    def wrap(handler: Handler) -> Handler:
        for t in types:
            HANDLERS[t] = handler
        return handler
    return wrap


def trace(module: nn.Module, name: str, graph: Graph, src: int) -> int:
    """Append ``module``'s nodes reading ``src``; returns the output node's index."""
    if isinstance(module, PASS_THROUGH):
        return src
    for cls in type(module).__mro__:
        handler = HANDLERS.get(cls) or HANDLERS.get(f"{cls.__module__}.{cls.__qualname__}")
        if handler is not None:
            return handler(module, name, graph, src)
    raise UnsupportedLayerError(
        f"the event-driven simulator does not support layer {name or '<model>'!r} "
        f"({type(module).__name__}); supported: Conv2d, Linear, BatchNorm (after conv/linear), LIF, MLF, "
        "AvgPool2d, AdaptiveAvgPool2d, MaxPool2d, Flatten, Dropout, Identity, nn.Sequential and the "
        "residual blocks of snnres.models"
    )


def child_name(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def is_time_merged(module: nn.Module) -> bool:
    """``snnres.layers.SeqToANN``: a per-step layer applied to ``[T*B, ...]`` (the same thing here)."""
    return type(module).__name__ == "SeqToANN" and hasattr(module, "module")


def flat_children(module: nn.Module, name: str) -> list[tuple[str, nn.Module]]:
    """``(qualified name, child)`` in order, with time-merge wrappers and nested Sequentials
    opened up, so that a BatchNorm finds the conv/linear layer before it."""
    out = []
    for key, child in module.named_children():
        key = child_name(name, key)
        if is_time_merged(child):
            key, child = f"{key}.module", child.module
        if type(child) is nn.Sequential:
            out += flat_children(child, key)
        else:
            out.append((key, child))
    return out


@register(nn.Sequential)
def sequential(module: nn.Sequential, name: str, graph: Graph, src: int) -> int:
    """Children in order; a BatchNorm right after a Conv2d/Linear is folded into it."""
    children = flat_children(module, name)
    i = 0
    while i < len(children):
        key, child = children[i]
        following = children[i + 1][1] if i + 1 < len(children) else None
        if isinstance(child, (nn.Conv2d, nn.Linear)) and isinstance(following, BATCHNORMS):
            src = synapse(child, key, graph, src, bn=following)
            i += 2
            continue
        if isinstance(child, BATCHNORMS):
            raise UnsupportedLayerError(
                f"BatchNorm {key!r} does not follow a Conv2d/Linear layer, so it cannot be folded"
            )
        src = trace(child, key, graph, src)
        i += 1
    return src


def synapse(layer: nn.Module, name: str, graph: Graph, src: int, bn: nn.Module | None = None) -> int:
    """A Conv2d or Linear layer, with ``bn`` (if given) folded into its weight and bias."""
    weight, bias = layer.weight, layer.bias
    if bn is not None:
        weight, bias = fold_batchnorm(weight, bias, bn)
    if isinstance(layer, nn.Conv2d):
        return conv_node(layer, name, graph, src, weight, bias)
    return linear_node(layer, name, graph, src, weight, bias)


def _nonzero_bias(bias) -> np.ndarray | None:
    if bias is None:
        return None
    b = as_f32(bias)
    return b if np.any(b != 0) else None


def conv_node(conv: nn.Conv2d, name: str, graph: Graph, src: int, weight, bias) -> int:
    shape = graph.nodes[src].shape
    if len(shape) != 3 or src in graph.flat_chw:
        raise UnsupportedLayerError(f"Conv2d {name!r} needs a (C, H, W) input, got shape {shape}")
    if shape[0] != conv.in_channels:
        raise ValueError(f"Conv2d {name!r} expects {conv.in_channels} input channels, the input has {shape[0]}")
    if conv.groups != 1 or isinstance(conv.padding, str) or conv.padding_mode != "zeros":
        raise UnsupportedLayerError(
            f"Conv2d {name!r}: groups={conv.groups}, padding={conv.padding!r}, padding_mode={conv.padding_mode!r}; "
            "the simulator supports groups=1 with integer zero padding"
        )
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = conv.kernel_size, conv.stride, conv.padding, conv.dilation
    h_out, w_out = spatial_out(shape[1], kh, sh, ph, dh), spatial_out(shape[2], kw, sw, pw, dw)
    geometry = np.array([shape[0], shape[2], h_out, w_out, sh, sw, ph, pw, dh, dw], dtype=np.int64)
    node = ConvNode(name, (src,), (conv.out_channels, h_out, w_out), w_t=as_f32(weight.permute(1, 2, 3, 0)),
                    bias=_nonzero_bias(bias), geometry=geometry)
    return graph.add(node)


def linear_node(linear: nn.Linear, name: str, graph: Graph, src: int, weight, bias) -> int:
    shape = graph.nodes[src].shape
    size = int(np.prod(shape))
    if len(shape) != 1 and src not in graph.flat_chw and not (len(shape) == 3 and shape[1:] == (1, 1)):
        raise UnsupportedLayerError(
            f"Linear {name!r} reads a {shape} tensor; put an nn.Flatten before it (the simulator "
            "does not apply a Linear to the last axis of an image)"
        )
    if size != linear.in_features:
        raise ValueError(f"Linear {name!r} expects {linear.in_features} inputs, its input has {size}")
    rows = chw_to_hwc_rows(size, graph.flat_chw.get(src))
    w_t = as_f32(weight.t())[rows]
    return graph.add(LinearNode(name, (src,), (linear.out_features,), w_t=aligned(w_t),
                                bias=_nonzero_bias(bias)))


@register(nn.Conv2d, nn.Linear)
def plain_synapse(layer: nn.Module, name: str, graph: Graph, src: int) -> int:
    return synapse(layer, name, graph, src)


def firing_thresholds(params) -> np.ndarray:
    """The least float32 ``H`` that fires, per level: ``V_th`` for ``fire="ge"``, the next float32
    above it for ``"gt"`` (for float32 ``H``, ``H > V_th`` exactly when ``H >= nextafter(V_th)``), so
    every kernel tests ``H >= threshold``. (A soft reset subtracts ``V_th`` itself: ``consts[3:]``.)"""
    thresholds = np.array(params.thresholds, dtype=np.float32)
    return np.nextafter(thresholds, np.float32(np.inf)) if params.strict else thresholds


@register(LIF, MLF)
def neuron(module: nn.Module, name: str, graph: Graph, src: int) -> int:
    p = module.params
    tau = float(module.tau)
    rest = p.rest
    thresholds = firing_thresholds(p)
    node = NeuronNode(
        name, (src,), graph.nodes[src].shape,
        thresholds=thresholds,
        consts=np.array([tau, rest, 0.0, *p.thresholds], dtype=np.float32),
        decay_input=p.decay_input, hard=p.v_reset is not None,
        always=bool(thresholds.min() <= np.float32(rest)), fire=p.fire,
    )
    index = graph.add(node)
    if src in graph.flat_chw:
        graph.flat_chw[index] = graph.flat_chw[src]
    return index


@register(nn.Flatten)
def flatten(module: nn.Flatten, name: str, graph: Graph, src: int) -> int:
    """A view: the neurons keep their order; a following Linear reorders its weight rows."""
    shape = graph.nodes[src].shape
    if module.start_dim != 1 or module.end_dim != -1:
        raise UnsupportedLayerError(f"Flatten {name!r}: only Flatten(1, -1) is supported")
    if len(shape) == 3:
        graph.flat_chw[src] = shape  # the node itself is unchanged; Linear reads its layout from here
    return src


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def pool_node(name: str, graph: Graph, src: int, kernel, stride, padding, use_max: bool, divisor: float) -> int:
    shape = graph.nodes[src].shape
    if len(shape) != 3:
        raise UnsupportedLayerError(f"pooling layer {name!r} needs a (C, H, W) input, got {shape}")
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride if stride is not None else kernel), _pair(padding)
    h_out, w_out = spatial_out(shape[1], kh, sh, ph), spatial_out(shape[2], kw, sw, pw)
    geometry = np.array([shape[0], shape[2], h_out, w_out, kh, kw, sh, sw, ph, pw], dtype=np.int64)
    node = PoolNode(name, (src,), (shape[0], h_out, w_out), use_max=use_max, divisor=divisor, geometry=geometry)
    node.integer = use_max and graph.nodes[src].integer  # an average of spikes is a real value
    return graph.add(node)


@register(nn.AvgPool2d)
def avg_pool(module: nn.AvgPool2d, name: str, graph: Graph, src: int) -> int:
    kh, kw = _pair(module.kernel_size)
    padded = _pair(module.padding) != (0, 0)
    if module.ceil_mode or (padded and not module.count_include_pad):
        raise UnsupportedLayerError(
            f"AvgPool2d {name!r}: ceil_mode=True or count_include_pad=False with padding is not supported"
        )
    divisor = module.divisor_override or kh * kw
    return pool_node(name, graph, src, (kh, kw), module.stride, module.padding, False, float(divisor))


@register(nn.AdaptiveAvgPool2d)
def adaptive_avg_pool(module: nn.AdaptiveAvgPool2d, name: str, graph: Graph, src: int) -> int:
    shape = graph.nodes[src].shape
    out = _pair(module.output_size)
    out = tuple(shape[1 + i] if o is None else o for i, o in enumerate(out))
    if len(shape) != 3 or shape[1] % out[0] or shape[2] % out[1]:
        raise UnsupportedLayerError(
            f"AdaptiveAvgPool2d {name!r}: output {out} must divide the input {shape[1:]} evenly"
        )
    kernel = (shape[1] // out[0], shape[2] // out[1])
    return pool_node(name, graph, src, kernel, kernel, 0, False, float(kernel[0] * kernel[1]))


@register(nn.MaxPool2d)
def max_pool(module: nn.MaxPool2d, name: str, graph: Graph, src: int) -> int:
    if module.ceil_mode or _pair(module.dilation) != (1, 1):
        raise UnsupportedLayerError(f"MaxPool2d {name!r}: ceil_mode and dilation are not supported")
    node = graph.nodes[src]
    if node.emits != "events" or not node.integer:
        raise UnsupportedLayerError(
            f"MaxPool2d {name!r} reads real values; the simulator max-pools spikes only"
        )
    return pool_node(name, graph, src, module.kernel_size, module.stride, module.padding, True, 1.0)

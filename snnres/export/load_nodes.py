"""One NIR node -> a module and its output shape, with the node's fields checked against its input.

``build(name, node, in_shape, options)`` gets the shape of one sample at one step that the node's
edges bring (``in_shape``) and returns a ``Built``: the module (None: the node passes the sum of
its inputs through) and the shape it gives. Stateless layers run time-merged (``SeqToANN``);
neurons and delays run whole sequences with state (``load_neurons``). Every mismatch raises
``ExportError`` naming the node, the field and both shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import nir
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..layers import SeqToANN
from .errors import ExportError
from .load_neurons import (NEURON_FIELDS, Delay, Heaviside, NIRNeuron, delay_steps, fire_mode, neuron_coefficients,
                           neuron_parameters, parameter, snnres_lif)


@dataclass
class Options:
    dt: float
    dtype: torch.dtype
    backend: str
    strategy: str           # "auto": snnres LIF where exact; "reference": NIRNeuron everywhere
    absorbed: frozenset     # Delay nodes whose cut output edges carry one of their steps


@dataclass
class Built:
    module: nn.Module | None
    shape: tuple[int, ...]


class SumPool2d(nn.Module):
    """Sum over each window (zero padding), NIR's SumPool2d."""

    def __init__(self, kernel_size, stride, padding):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, divisor_override=1)


class Scale(nn.Module):
    def __init__(self, scale: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def _array(name: str, node, field: str, ndim: int | None = None) -> np.ndarray:
    raw = getattr(node, field, None)
    if raw is None:
        raise ExportError(f"{type(node).__name__} {name!r}: field {field} is missing")
    value = np.asarray(raw)
    if ndim is not None and value.ndim != ndim:
        raise ExportError(f"{type(node).__name__} {name!r}: {field} has shape {value.shape}; expected {ndim}-d")
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise ExportError(f"{type(node).__name__} {name!r}: {field} has {int((~np.isfinite(value)).sum())} "
                          "NaN or infinite values")
    return value


def _ints(name: str, node, field: str, n: int) -> tuple[int, ...]:
    value = np.atleast_1d(_array(name, node, field)).astype(np.int64).reshape(-1)
    if value.size == 1:
        value = np.repeat(value, n)
    if value.size != n:
        raise ExportError(f"{type(node).__name__} {name!r}: {field} = {value.tolist()}; expected {n} values")
    return tuple(int(v) for v in value)


def _expect(name: str, node, in_shape, ndim: int, what: str) -> None:
    if len(in_shape) != ndim:
        raise ExportError(f"{type(node).__name__} {name!r} gets inputs of shape {tuple(in_shape)}; expected {what}")


def _declared(name: str, node, key: str, shape) -> None:
    """A type the node states itself (Conv input_shape, Flatten input_type, Output) must match."""
    types = getattr(node, "input_type" if key == "input" else "output_type", None) or {}
    declared = next(iter(types.values()), None) if types else None
    if declared is not None and tuple(int(s) for s in np.asarray(declared).reshape(-1)) != tuple(shape):
        raise ExportError(f"{type(node).__name__} {name!r} declares {key} type {np.asarray(declared).tolist()}, "
                          f"but its edges bring shape {list(shape)}")


def _tensor(a: np.ndarray, options: Options) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a)).to(options.dtype).clone()


def _conv(name, node, in_shape, options, dims: int) -> Built:
    weight = _array(name, node, "weight", dims + 2)
    groups = int(np.asarray(node.groups))
    c_out, c_in = weight.shape[0], weight.shape[1] * groups
    _expect(name, node, in_shape, dims + 1, f"[C={c_in}, {'H, W' if dims == 2 else 'L'}]")
    if in_shape[0] != c_in:
        raise ExportError(f"{type(node).__name__} {name!r}: weight {list(weight.shape)} with groups={groups} takes "
                          f"{c_in} input channels, but its edges bring {in_shape[0]} (shape {list(in_shape)})")
    if groups < 1 or c_out % groups:
        raise ExportError(f"{type(node).__name__} {name!r}: {c_out} output channels do not split into {groups} groups")
    if getattr(node, "input_shape", None) is not None:
        declared = tuple(int(s) for s in np.atleast_1d(node.input_shape))
        if declared != tuple(in_shape[1:]):
            raise ExportError(f"{type(node).__name__} {name!r} declares input_shape {list(declared)}, but its "
                              f"edges bring {list(in_shape[1:])}")
    stride, dilation = _ints(name, node, "stride", dims), _ints(name, node, "dilation", dims)
    kernel = weight.shape[2:]
    padding = node.padding
    if isinstance(padding, np.ndarray) and padding.dtype.kind in "SUO":
        padding = padding.reshape(-1)[0]
    padding = padding.decode() if isinstance(padding, bytes) else padding
    if isinstance(padding, str):
        if padding not in ("same", "valid") or (padding == "same" and any(s != 1 for s in stride)):
            raise ExportError(f"{type(node).__name__} {name!r}: padding {padding!r} with stride {list(stride)} is "
                              "not supported; expected 'valid', 'same' (stride 1) or numbers")
        padding_arg, pads = padding, (0,) * dims
    else:
        padding_arg = pads = _ints(name, node, "padding", dims)
    spatial = tuple(in_shape[1:])
    out = tuple(spatial[i] if padding_arg == "same" else
                (spatial[i] + 2 * pads[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(dims))
    if any(o < 1 for o in out):
        raise ExportError(f"{type(node).__name__} {name!r}: kernel {list(kernel)} does not fit its input {list(in_shape)}")
    bias = _array(name, node, "bias") if getattr(node, "bias", None) is not None else np.zeros(c_out)
    if bias.shape != (c_out,):
        raise ExportError(f"{type(node).__name__} {name!r}: bias has shape {bias.shape}; expected ({c_out},)")
    kind = nn.Conv2d if dims == 2 else nn.Conv1d
    conv = kind(c_in, c_out, tuple(kernel), stride=stride, padding=padding_arg, dilation=dilation, groups=groups,
                dtype=options.dtype)
    conv.weight.data, conv.bias.data = _tensor(weight, options), _tensor(bias, options)
    return Built(SeqToANN(conv), (c_out, *out))


def _affine(name, node, in_shape, options) -> Built:
    weight = _array(name, node, "weight", 2)
    c_out, c_in = weight.shape
    if not in_shape or in_shape[-1] != c_in:
        raise ExportError(f"{type(node).__name__} {name!r}: weight {list(weight.shape)} takes {c_in} input features, "
                          f"but its edges bring shape {list(in_shape)}")
    has_bias = isinstance(node, nir.Affine)
    linear = nn.Linear(c_in, c_out, bias=has_bias, dtype=options.dtype)
    linear.weight.data = _tensor(weight, options)
    if has_bias:
        bias = _array(name, node, "bias")
        if bias.shape != (c_out,):
            raise ExportError(f"Affine {name!r}: bias has shape {bias.shape}; expected ({c_out},)")
        linear.bias.data = _tensor(bias, options)
    return Built(linear, (*in_shape[:-1], c_out))  # acts on the last dim: no time merging needed


def _pool(name, node, in_shape, options) -> Built:
    _expect(name, node, in_shape, 3, "[C, H, W]")
    kernel, stride = _ints(name, node, "kernel_size", 2), _ints(name, node, "stride", 2)
    padding = _ints(name, node, "padding", 2)
    out = tuple((in_shape[1 + i] + 2 * padding[i] - kernel[i]) // stride[i] + 1 for i in range(2))
    if any(o < 1 for o in out) or any(2 * p > k for p, k in zip(padding, kernel)):
        raise ExportError(f"{type(node).__name__} {name!r}: kernel {kernel}, padding {padding} do not fit input {list(in_shape)}")
    pool = nn.AvgPool2d(kernel, stride, padding) if isinstance(node, nir.AvgPool2d) else SumPool2d(kernel, stride, padding)
    return Built(SeqToANN(pool), (in_shape[0], *out))


def _flatten(name, node, in_shape, options) -> Built:
    _declared(name, node, "input", in_shape)
    n = len(in_shape)
    start, end = int(np.asarray(node.start_dim)), int(np.asarray(node.end_dim))
    start, end = start + n if start < 0 else start, end + n if end < 0 else end
    if not 0 <= start <= end < n:
        raise ExportError(f"Flatten {name!r}: start_dim={node.start_dim}, end_dim={node.end_dim} do not fit "
                          f"its input {list(in_shape)} (dims counted without the batch)")
    out = (*in_shape[:start], int(np.prod(in_shape[start:end + 1])), *in_shape[end + 1:])
    return Built(SeqToANN(nn.Flatten(start + 1, end + 1)), out)  # +1: past the merged T*B dim


def _scale(name, node, in_shape, options) -> Built:
    return Built(Scale(_tensor(parameter(name, node, "scale", in_shape), options)), in_shape)


def _threshold(name, node, in_shape, options) -> Built:
    return Built(Heaviside(parameter(name, node, "threshold", in_shape), options.dtype), in_shape)


def _neuron(name, node, in_shape, options) -> Built:
    kind, p = neuron_parameters(name, node, in_shape)
    coefficients, fire = neuron_coefficients(name, node, kind, p, options.dt), fire_mode(name, node)
    fast = snnres_lif(kind, p, options.dt, options.backend, fire) if options.strategy == "auto" else None
    return Built(fast if fast is not None else NIRNeuron(kind, coefficients, options.dtype, fire), in_shape)


def _delay(name, node, in_shape, options) -> Built:
    return Built(Delay(delay_steps(name, node, in_shape, options.dt, name in options.absorbed)), in_shape)


def _passthrough(name, node, in_shape, options) -> Built:
    if isinstance(node, nir.Output):
        _declared(name, node, "output", in_shape)
    return Built(None, in_shape)


BUILDERS = {
    nir.Conv2d: lambda *a: _conv(*a, dims=2),
    nir.Conv1d: lambda *a: _conv(*a, dims=1),
    nir.Affine: _affine,
    nir.Linear: _affine,
    nir.AvgPool2d: _pool,
    nir.SumPool2d: _pool,
    nir.Flatten: _flatten,
    nir.Scale: _scale,
    nir.Threshold: _threshold,
    nir.Delay: _delay,
    nir.Input: _passthrough,
    nir.Output: _passthrough,
    **dict.fromkeys(NEURON_FIELDS, _neuron),
}


def build(name: str, node: nir.NIRNode, in_shape: tuple[int, ...], options: Options) -> Built:
    builder = BUILDERS.get(type(node))
    if builder is None:
        supported = ", ".join(sorted(t.__name__ for t in BUILDERS))
        raise ExportError(f"NIR node {name!r} is a {type(node).__name__}, which from_nir cannot run (supported: {supported})")
    return builder(name, node, tuple(int(s) for s in in_shape), options)


def is_stateful(node: nir.NIRNode) -> bool:
    return type(node) in NEURON_FIELDS or isinstance(node, nir.Delay)

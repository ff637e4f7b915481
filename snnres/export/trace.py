"""Walk a model's forward pass once, on a sample input, and record it as NIR nodes.

Layers we know (convolutions, BatchNorm, linear maps, pools, neurons: ``layers.CONVERTERS``) are
leaves: a hook converts each call into NIR nodes. Between them a ``TorchFunctionMode`` sees every
tensor operation the model's own code performs; the ones that only move time and batch around
(``flatten(0, 1)``, ``view(T, B, ...)``, ``unsqueeze(0).repeat(T, ...)``, ``transpose``), feature
flattens, additions (shortcuts), scalar scaling and the final mean over time are understood, and
anything else applied to traced data is an error naming the operation and the layer it ran in.
Running the real code (rather than tracing it symbolically) lets models branch on shapes freely.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import nir
import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from .errors import ExportError
from .graph import GraphBuilder, Value


def _atoms(label: str) -> list[str]:
    return [a for a in label.split("*") if a != "1"]


class Tracer(TorchFunctionMode):
    """Follows traced tensors through one forward pass; ``converters`` turn leaf layers into nodes."""

    def __init__(self, builder: GraphBuilder, converters: Callable[[nn.Module], Any], T: int | None, B: int,
                 options: dict[str, Any]):
        super().__init__()
        self.builder = builder
        self.converter_for = converters
        self.sizes = {"T": T, "B": B}
        self.options = options
        self.notes: dict[str, Any] = {}
        self._values: dict[int, tuple[torch.Tensor, Value | str]] = {}
        self._stack: list[tuple[str, nn.Module]] = []
        self._leaf_depth = 0
        self._leaf_inputs: list[Any] = []

    # ----------------------------------------------------------------- bookkeeping
    def bind(self, tensor: torch.Tensor, value: Value | str) -> None:
        """Attach a value (or, as a string, the reason it may no longer be used) to a tensor."""
        self._values[id(tensor)] = (tensor, value)  # holding the tensor keeps its id unique

    def value_of(self, tensor: Any) -> Value | None:
        if not isinstance(tensor, torch.Tensor):
            return None
        entry = self._values.get(id(tensor))
        if entry is None or entry[0] is not tensor:
            return None
        if isinstance(entry[1], str):
            raise ExportError(entry[1])
        return entry[1]

    @property
    def where(self) -> str:
        if not self._stack:
            return "the model's forward"
        path, module = self._stack[-1]
        return f"layer {path or '<model>'!r} ({type(module).__name__})"

    def size(self, label: str) -> int | None:
        n = 1
        for atom in _atoms(label):
            if self.sizes.get(atom) is None:
                return None
            n *= self.sizes[atom]
        return n

    # ----------------------------------------------------------------- module hooks
    def attach(self, model: nn.Module) -> list[Any]:
        handles = []
        for path, module in model.named_modules():
            handles.append(module.register_forward_pre_hook(self._make_pre_hook(path)))
            handles.append(module.register_forward_hook(self._make_post_hook(path)))
        return handles

    def _make_pre_hook(self, path: str):
        def pre_hook(module, args):
            self._stack.append((path, module))
            converter = self.converter_for(module)
            if converter is None:
                return
            if self._leaf_depth == 0:
                value = self.value_of(args[0]) if args else None
                self._leaf_inputs.append((args[0] if args else None, value))
                if value is not None and converter == "unsupported":
                    raise ExportError(
                        f"layer {path!r} ({type(module).__name__}) has no NIR equivalent "
                        "(NIR has no max-pooling, attention or other non-linear layers except "
                        "spiking neurons); replace it (e.g. max-pool -> avg-pool) and retrain"
                    )
            self._leaf_depth += 1

        return pre_hook

    def _make_post_hook(self, path: str):
        def post_hook(module, args, output):
            converter = self.converter_for(module)
            if converter is not None:
                self._leaf_depth -= 1
                if self._leaf_depth == 0:
                    in_tensor, value = self._leaf_inputs.pop()
                    if value is not None:
                        if not isinstance(output, torch.Tensor):
                            raise ExportError(f"layer {path!r} returned {type(output).__name__}, expected a tensor")
                        self.bind(output, converter(self, module, path, value, in_tensor, output))
            self._stack.pop()

        return post_hook

    # ----------------------------------------------------------------- tensor operations
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self._leaf_depth:
            return out
        tracked = [(t, v) for t in tree_leaves((args, kwargs)) if (v := self.value_of(t)) is not None]
        if not tracked:
            return out
        name = getattr(func, "__name__", str(func))
        if isinstance(out, (tuple, list)) and any(isinstance(o, torch.Tensor) for o in out):
            raise ExportError(f"{name!r} splits traced data in {self.where}; NIR graphs cannot express it")
        if not isinstance(out, torch.Tensor):
            return out  # shape, dtype, size() and other questions about the tensor
        handler = _OPS.get(name)
        if handler is None:
            raise ExportError(
                f"operation {name!r} in {self.where} has no NIR equivalent; supported between "
                "layers: reshapes of time/batch, feature flatten, add (shortcuts), scaling by a "
                "constant and a mean over time at the end"
            )
        self.bind(out, handler(self, name, args, kwargs, out, tracked))
        return out

    # ----------------------------------------------------------------- layout helpers
    def relabel(self, value: Value, in_shape: tuple[int, ...], out_shape: tuple[int, ...], where: str) -> Value:
        """The value after a reshape from ``in_shape`` to ``out_shape`` (both full tensor shapes)."""
        n_lead = len(in_shape) - len(value.shape)
        lead_n = math.prod(in_shape[:n_lead])
        feat = tuple(value.shape)
        splits = [k for k in range(len(out_shape) + 1)
                  if math.prod(out_shape[:k]) == lead_n and math.prod(out_shape[k:]) == math.prod(feat)]
        if not splits:
            raise ExportError(
                f"reshape {tuple(in_shape)} -> {tuple(out_shape)} in {where} mixes the time/batch "
                f"dims {value.lead} with the features {feat}; NIR works on one sample at a time"
            )
        k = next((k for k in splits if tuple(out_shape[k:]) == feat), splits[0])
        lead = self._group_lead(value.lead, tuple(out_shape[:k]), where)
        new_feat = tuple(out_shape[k:])
        if new_feat == feat:
            return value.with_(lead=lead)
        if len(new_feat) == 0 or len(feat) == 0:
            return value.with_(lead=lead, shape=new_feat)  # only size-1 feature dims come or go
        candidates = [(start, last) for start in range(len(feat)) for last in range(start, len(feat))
                      if feat[:start] + (math.prod(feat[start:last + 1]),) + feat[last + 1:] == new_feat]
        if not candidates:
            raise ExportError(
                f"reshape of the features {feat} -> {new_feat} in {where} is not a flatten; NIR "
                "has only Flatten"
            )
        start, last = candidates[0]
        node = nir.Flatten(input_type={"input": np.array(feat)}, start_dim=start,
                           end_dim=-1 if last == len(feat) - 1 else last)
        name = self.builder.add(self._stack[-1][0] + ".flatten" if self._stack else "flatten", node, value)
        return value.with_(sources=(name,), shape=new_feat, lead=lead)

    def _group_lead(self, lead: tuple[str, ...], sizes: tuple[int, ...], where: str) -> tuple[str, ...]:
        """Labels for leading dims of ``sizes`` that regroup the atoms of ``lead`` in order."""
        if sizes == tuple(self.size(label) for label in lead):
            return lead
        atoms = [a for label in lead for a in _atoms(label)]
        labels = []
        for s in sizes:
            group, n = [], 1
            while atoms and self.sizes[atoms[0]] is not None and n * self.sizes[atoms[0]] <= s \
                    and (n != s or self.sizes[atoms[0]] == 1):
                n *= self.sizes[atoms[0]]
                group.append(atoms.pop(0))
            if n != s:
                raise ExportError(f"cannot follow the time/batch dims {lead} through a reshape to {sizes} in {where}")
            labels.append("*".join(group) or "1")
        if atoms:
            raise ExportError(f"cannot follow the time/batch dims {lead} through a reshape to {sizes} in {where}")
        return tuple(labels)


# --------------------------------------------------------------------- operation handlers
def _self_value(tracked, args) -> Value:
    for t, v in tracked:
        if args and t is args[0]:
            return v
    return tracked[0][1]


def _identity(tr: Tracer, name, args, kwargs, out, tracked) -> Value:
    value = _self_value(tracked, args)
    if len(tracked) != 1 or tuple(out.shape) != tuple(args[0].shape):
        raise ExportError(f"{name!r} in {tr.where} changes traced data in a way NIR cannot express")
    return value


def _reshape(tr: Tracer, name, args, kwargs, out, tracked) -> Value:
    if len(tracked) != 1:
        raise ExportError(f"{name!r} in {tr.where} combines several traced tensors")
    return tr.relabel(tracked[0][1], tuple(tracked[0][0].shape), tuple(out.shape), tr.where)


def _expand(tr: Tracer, name, args, kwargs, out, tracked) -> Value:
    """``unsqueeze(0).repeat(T, ...)`` / ``expand``: the same input at every time step."""
    tensor, value = tracked[0]
    if len(tracked) != 1 or tensor is not args[0]:
        raise ExportError(f"{name!r} in {tr.where} combines several traced tensors")
    n_lead = len(value.lead)
    if out.ndim != tensor.ndim or tuple(out.shape[n_lead:]) != value.shape:
        raise ExportError(f"{name!r} in {tr.where} broadcasts features {value.shape} -> {tuple(out.shape[n_lead:])}")
    lead = list(value.lead)
    for i, (a, b) in enumerate(zip(tensor.shape[:n_lead], out.shape[:n_lead])):
        if a == b:
            continue
        if lead[i] != "1" or "T" in value.lead:
            raise ExportError(f"{name!r} in {tr.where} repeats dim {i} ({value.lead[i]}); only a new time dim may be repeated")
        _set_T(tr, b, name)
        lead[i] = "T"
    return value.with_(lead=tuple(lead))


def _set_T(tr: Tracer, n: int, name: str) -> None:
    if tr.sizes["T"] is None:
        tr.sizes["T"] = n
    elif tr.sizes["T"] != n:
        raise ExportError(f"{name!r} in {tr.where} makes {n} time steps, but the model has T={tr.sizes['T']}")


def _stack(tr: Tracer, name, args, kwargs, out, tracked) -> Value:
    seq = args[0]
    dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
    values = [tr.value_of(t) for t in seq]
    if any(v is None or v != values[0] for v in values) or dim < 0 or dim > len(values[0].lead):
        raise ExportError(f"{name!r} in {tr.where}: only stacking one tensor T times along a time dim is supported")
    _set_T(tr, len(values), name)
    lead = list(values[0].lead)
    lead.insert(dim, "T")
    return values[0].with_(lead=tuple(lead))


def _permute(tr: Tracer, name, args, kwargs, out, tracked) -> Value:
    tensor, value = tracked[0]
    n = tensor.ndim
    if name == "permute":
        dims = args[1:] if len(args) > 2 or not isinstance(args[1], (tuple, list)) else args[1]
        dims = [d % n for d in (kwargs.get("dims") or dims)]
    else:
        d0, d1 = (args[1], args[2]) if len(args) > 2 else (kwargs["dim0"], kwargs["dim1"])
        dims = list(range(n))
        dims[d0 % n], dims[d1 % n] = dims[d1 % n], dims[d0 % n]
    n_lead = len(value.lead)
    if sorted(dims[:n_lead]) != list(range(n_lead)) or dims[n_lead:] != list(range(n_lead, n)):
        raise ExportError(f"{name!r} in {tr.where} moves feature dims {dims}; only time/batch dims may be permuted")
    return value.with_(lead=tuple(value.lead[d] for d in dims[:n_lead]))


def _reduce_time(tr: Tracer, name, args, kwargs, out, tracked) -> Value:
    """``mean(0)`` over time at the end (the readout); ``sum`` is T times the mean."""
    tensor, value = tracked[0]
    dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
    keepdim = kwargs.get("keepdim", args[2] if len(args) > 2 else False)
    if isinstance(dim, (tuple, list)) and len(dim) == 1:
        dim = dim[0]
    d = dim % tensor.ndim if isinstance(dim, int) else None
    if d is None or d >= len(value.lead) or value.lead[d] != "T":
        raise ExportError(f"{name!r} over dim {dim} in {tr.where}: only a reduction over the time dim is supported")
    lead = list(value.lead)
    if keepdim:
        lead[d] = "1"
    else:
        del lead[d]
    if name == "sum":
        scale = np.full(value.shape, float(tr.sizes["T"]), dtype=tr.builder.dtype)
        src = tr.builder.add(f"{tr._stack[-1][0] if tr._stack else ''}_time_sum", nir.Scale(scale=scale), value)
        value = value.with_(sources=(src,))
    return value.with_(lead=tuple(lead), readout="mean")


def _add(tr: Tracer, name, args, kwargs, out, tracked) -> Value:
    if kwargs.get("alpha", 1) != 1 or len(args) > 2:
        raise ExportError(f"{name!r} with alpha in {tr.where} is not supported")
    others = [a for a in args if tr.value_of(a) is None]
    if any(not (isinstance(o, (int, float)) and o == 0) for o in others):
        raise ExportError(
            f"{name!r} in {tr.where} adds a constant to traced data; NIR has no constant inputs "
            "(fold it into the bias of the layer before)"
        )
    values = [v for _, v in tracked]
    if len(tracked) == 2 and tracked[0][0] is tracked[1][0]:
        values = [values[0], values[0]]
    first = values[0]
    for v in values[1:]:
        if v.shape != first.shape or v.readout != first.readout:
            raise ExportError(f"{name!r} in {tr.where} adds tensors of features {first.shape} and {v.shape}")
    if tuple(out.shape) != tuple(args[0].shape) or len({tuple(a.shape) for a in args if isinstance(a, torch.Tensor)}) > 1:
        raise ExportError(f"{name!r} in {tr.where} broadcasts; NIR edges add tensors of one shape")
    return first.with_(sources=tuple(s for v in values for s in v.sources))


def _scale(tr: Tracer, name, args, kwargs, out, tracked) -> Value:
    tensor, value = tracked[0]
    other = args[1] if args[0] is tensor else args[0]
    if len(tracked) != 1 or len(args) != 2 or not isinstance(other, (int, float)):
        raise ExportError(f"{name!r} in {tr.where}: only scaling traced data by a Python number is supported")
    factor = 1.0 / other if name in ("div", "__truediv__", "div_", "__itruediv__") else float(other)
    if args[0] is not tensor and "div" in name:
        raise ExportError(f"{name!r} in {tr.where} divides by traced data")
    src = tr.builder.add((tr._stack[-1][0] if tr._stack else "") + "_scale",
                         nir.Scale(scale=np.full(value.shape, factor, dtype=tr.builder.dtype)), value)
    return value.with_(sources=(src,))


_OPS: dict[str, Callable] = {
    **dict.fromkeys(["contiguous", "clone", "detach", "float", "double", "to", "type", "cpu", "cuda",
                     "requires_grad_", "dropout", "dropout2d", "alpha_dropout", "feature_alpha_dropout",
                     "type_as"], _identity),
    **dict.fromkeys(["flatten", "reshape", "view", "view_as", "reshape_as", "unsqueeze", "squeeze",
                     "unflatten"], _reshape),
    **dict.fromkeys(["repeat", "expand", "expand_as", "broadcast_to"], _expand),
    "stack": _stack,
    **dict.fromkeys(["permute", "transpose", "swapaxes", "swapdims"], _permute),
    **dict.fromkeys(["mean", "sum"], _reduce_time),
    **dict.fromkeys(["add", "__add__", "__radd__", "add_", "__iadd__"], _add),
    **dict.fromkeys(["mul", "__mul__", "__rmul__", "mul_", "__imul__", "div", "__truediv__", "div_",
                     "__itruediv__"], _scale),
}

"""``from_nir(graph)``: a NIR graph as an snnres module that runs whole sequences.

Nodes run in topological order on ``[T, B, ...]``; the edges into a node are summed. Stateless
nodes (Conv2d, Affine, Linear, Scale, pools, Flatten) run time-merged, ``nir.LIF`` becomes an
snnres ``LIF`` with ``tau = tau_nir / dt``, ``decay_input`` from ``r`` (1: decay_input, ``tau``:
not; anything else: not, with the input scaled by ``r / tau``). A NIR LIF fires on
``v > v_threshold``: ``fire="gt"``, unless the node's metadata says which ``fire`` the snnres
neuron it was exported from had. Recurrent graphs, nested
graphs and neuron types other than LIF have no snnres equivalent and raise ``ExportError``.
"""

from __future__ import annotations

import math
from pathlib import Path

import nir
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..neurons import LIF
from .errors import ExportError


class TimeMerged(nn.Module):
    """Apply a per-sample layer to ``[T, B, ...]`` as ``[T*B, ...]``."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        y = self.layer(x_seq.flatten(0, 1))
        return y.view(x_seq.shape[0], x_seq.shape[1], *y.shape[1:])


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


class ScaledInputLIF(nn.Module):
    """A LIF whose input is first multiplied by a constant gain (NIR ``r`` other than 1 or tau)."""

    def __init__(self, gain: float, neuron: LIF):
        super().__init__()
        self.gain, self.neuron = gain, neuron

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        return self.neuron(x_seq * self.gain)


class NIRNetwork(nn.Module):
    """A feed-forward NIR graph over sequences; ``forward`` follows the models' input contract."""

    def __init__(self, layers: dict[str, nn.Module], order: list[str], inputs: dict[str, list[str]],
                 input_name: str, output_name: str, input_shape: tuple[int, ...], T: int | None, readout: str):
        super().__init__()
        # ModuleDict keys may not contain dots; NIR node names may.
        self.keys = {name: f"{i}_{name}".replace(".", "_") for i, name in enumerate(order)}
        self.layers = nn.ModuleDict({self.keys[name]: layer for name, layer in layers.items()})
        self.order, self.inputs = order, inputs
        self.input_name, self.output_name = input_name, output_name
        self.input_shape, self.T, self.readout = input_shape, T, readout

    def run_sequence(self, x_seq: torch.Tensor) -> torch.Tensor:
        """``x_seq [T, B, *input_shape]`` -> the Output node's ``[T, B, ...]``, one value per step."""
        if tuple(x_seq.shape[2:]) != self.input_shape:
            raise ValueError(f"expected [T, B, {', '.join(map(str, self.input_shape))}], got {tuple(x_seq.shape)}")
        values = {self.input_name: x_seq}
        for name in self.order:
            srcs = self.inputs[name]
            x = values[srcs[0]]
            for src in srcs[1:]:
                x = x + values[src]
            key = self.keys[name]
            values[name] = self.layers[key](x) if key in self.layers else x
        return values[self.output_name]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, *input_shape]`` (repeated T times) or ``[B, T, *input_shape]``; returns the readout."""
        n = len(self.input_shape)
        if x.ndim == n + 1:
            if self.T is None:
                raise ValueError("a static input needs T: pass from_nir(..., T=...)")
            x_seq = x.unsqueeze(0).expand(self.T, *x.shape)
        elif x.ndim == n + 2:
            x_seq = x.transpose(0, 1)
        else:
            raise ValueError(f"expected [B, {self.input_shape}] or [B, T, {self.input_shape}], got {tuple(x.shape)}")
        y = self.run_sequence(x_seq)
        return y.mean(0) if self.readout == "mean" else y


def _uniform(node_name: str, field: str, array: np.ndarray) -> float:
    flat = np.asarray(array).reshape(-1)
    if flat.size == 0 or not np.all(flat == flat[0]):
        raise ExportError(f"LIF {node_name!r}: {field} varies across neurons; snnres neurons share one value per layer")
    return float(flat[0])


def _lif(name: str, node: nir.LIF, dt: float, backend: str) -> nn.Module:
    tau = _uniform(name, "tau", node.tau) / dt
    r = _uniform(name, "r", node.r)
    v_leak = _uniform(name, "v_leak", node.v_leak)
    v_reset = _uniform(name, "v_reset", node.v_reset)
    threshold = _uniform(name, "v_threshold", node.v_threshold)
    if not tau >= 1.0 - 1e-9:
        raise ExportError(f"LIF {name!r}: tau/dt = {tau:.4g} < 1; the discrete snnres LIF needs tau >= dt (check dt)")
    tau = max(tau, 1.0)
    if not math.isclose(v_leak, v_reset, rel_tol=1e-6, abs_tol=1e-12):
        raise ExportError(f"LIF {name!r}: v_leak={v_leak} differs from v_reset={v_reset}; snnres neurons leak to v_reset")
    decay_input = math.isclose(r, 1.0, rel_tol=1e-6)
    fire = (node.metadata or {}).get("fire", "gt")  # NIR's own test is v > v_threshold
    fire = fire.decode() if isinstance(fire, bytes) else str(fire)
    neuron = LIF(tau=tau, v_threshold=threshold, v_reset=v_reset, decay_input=decay_input, backend=backend,
                 fire=fire)
    if decay_input or math.isclose(r, tau, rel_tol=1e-6):
        return neuron
    return ScaledInputLIF(r / tau, neuron)


def _pair(x) -> tuple[int, int]:
    arr = np.atleast_1d(np.asarray(x)).astype(int).reshape(-1)
    return (int(arr[0]), int(arr[-1]))


def _layer(name: str, node: nir.NIRNode, dt: float, backend: str, dtype: torch.dtype) -> nn.Module | None:
    as_tensor = lambda a: torch.as_tensor(np.asarray(a)).to(dtype).clone()  # noqa: E731
    if isinstance(node, (nir.Input, nir.Output)):
        return None
    if isinstance(node, nir.LIF):
        return _lif(name, node, dt, backend)
    if isinstance(node, nir.Conv2d):
        weight = as_tensor(node.weight)
        padding = node.padding if isinstance(node.padding, str) else _pair(node.padding)
        conv = nn.Conv2d(weight.shape[1] * int(node.groups), weight.shape[0], tuple(weight.shape[2:]),
                         stride=_pair(node.stride), padding=padding, dilation=_pair(node.dilation),
                         groups=int(node.groups), dtype=dtype)
        conv.weight.data, conv.bias.data = weight, as_tensor(node.bias)
        return TimeMerged(conv)
    if isinstance(node, (nir.Affine, nir.Linear)):
        weight = as_tensor(node.weight)
        bias = isinstance(node, nir.Affine)
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias, dtype=dtype)
        linear.weight.data = weight
        if bias:
            linear.bias.data = as_tensor(node.bias)
        return linear  # acts on the last dim, so it needs no time merging
    if isinstance(node, nir.Scale):
        return Scale(as_tensor(node.scale))
    if isinstance(node, nir.SumPool2d):
        return TimeMerged(SumPool2d(_pair(node.kernel_size), _pair(node.stride), _pair(node.padding)))
    if isinstance(node, nir.AvgPool2d):
        return TimeMerged(nn.AvgPool2d(_pair(node.kernel_size), _pair(node.stride), _pair(node.padding)))
    if isinstance(node, nir.Flatten):
        start, end = int(node.start_dim), int(node.end_dim)
        return TimeMerged(nn.Flatten(start + 1, end + 1 if end >= 0 else end))  # NIR dims exclude the batch
    raise ExportError(f"NIR node {name!r} ({type(node).__name__}) has no snnres equivalent")


def _topological_order(nodes, edges) -> list[str]:
    indegree = {name: 0 for name in nodes}
    for _, dst in edges:
        indegree[dst] += 1
    ready = [name for name, d in indegree.items() if d == 0]
    order = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for src, dst in edges:
            if src == name:
                indegree[dst] -= 1
                if indegree[dst] == 0:
                    ready.append(dst)
    if len(order) != len(nodes):
        raise ExportError("the NIR graph has a cycle (recurrence); from_nir loads feed-forward graphs only")
    return order


def from_nir(graph: nir.NIRGraph | str | Path, dt: float | None = None, T: int | None = None,
             backend: str = "auto", dtype: torch.dtype | None = None) -> NIRNetwork:
    """Load ``graph`` (a ``nir.NIRGraph`` or a ``.nir`` file); ``dt`` and ``T`` default to its metadata."""
    if isinstance(graph, (str, Path)):
        graph = nir.read(str(graph))
    meta = graph.metadata or {}
    dt = float(dt if dt is not None else meta.get("dt", 0) or 0)
    if not dt > 0:
        raise ValueError("the graph's metadata has no dt: pass from_nir(graph, dt=...) (the time step its LIF taus assume)")
    T = T if T is not None else (int(meta["T"]) if int(meta.get("T", 0) or 0) > 0 else None)
    readout = "mean" if str(meta.get("readout", "")).startswith("mean") else "none"
    if dtype is None:
        weights = [np.asarray(getattr(n, "weight")) for n in graph.nodes.values() if hasattr(n, "weight")]
        dtype = torch.float64 if weights and weights[0].dtype == np.float64 else torch.float32
    if any(isinstance(n, nir.NIRGraph) for n in graph.nodes.values()):
        raise ExportError("nested NIR graphs (subgraphs) are not supported by from_nir")
    inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    outputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ExportError(f"from_nir needs one Input and one Output node, got {inputs} and {outputs}")
    order = [k for k in _topological_order(graph.nodes, graph.edges) if k != inputs[0]]
    sources = {name: [s for s, d in graph.edges if d == name] for name in order}
    for name in order:
        if not sources[name]:
            raise ExportError(f"NIR node {name!r} has no inputs")
    layers = {}
    for name in order:
        layer = _layer(name, graph.nodes[name], dt, backend, dtype)
        if layer is not None:
            layers[name] = layer
    input_shape = tuple(int(s) for s in np.asarray(graph.nodes[inputs[0]].input_type["input"]).reshape(-1))
    return NIRNetwork(layers, order, sources, inputs[0], outputs[0], input_shape, T, readout)

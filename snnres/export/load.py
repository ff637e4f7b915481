"""``from_nir(graph)``: a NIR graph as an snnres module that runs whole sequences.

The graph is read (``load_graph.read_graph``), its subgraphs inlined, its structure checked, every
node's input shape worked out from the Input and checked against the node's fields
(``load_nodes``), and each node turned into a module: stateless layers run time-merged, neurons
follow NIR's equations stepped by forward Euler with ``dt`` (``load_neurons``), the edges into a
node are summed. A feed-forward graph runs each node once over the whole sequence; a graph with
cycles runs one time step at a time, every cycle cut at one edge with a one-step delay
(``load_graph``). Neurons fire on ``v > v_threshold``, as NIR defines (``v >= v_threshold`` where
snnres's metadata records a ``fire="ge"`` neuron).
"""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import torch
from torch import nn

from .errors import ExportError
from .load_graph import check_structure, cut_cycles, flatten, needed_nodes, read_graph
from .load_neurons import NIRNeuron
from .load_nodes import Options, build, is_stateful

STRATEGIES = ("auto", "reference")
DEFAULT_DT = 1e-4  # SpikingJelly's and snnTorch's default when a graph does not say


class NIRNetwork(nn.Module):
    """A NIR graph over sequences; ``forward`` follows the models' input contract."""

    def __init__(self, layers: dict[str, nn.Module], order: list[str], inputs: dict[str, list[str]],
                 delayed: dict[str, list[str]], shapes: dict[str, tuple[int, ...]], input_name: str,
                 output_name: str, T: int | None, readout: str, dt: float, dtype: torch.dtype):
        super().__init__()
        # ModuleDict keys may not contain dots; NIR node names may.
        self.keys = {name: f"{i}_{name}".replace(".", "_") for i, name in enumerate(order)}
        self.layers = nn.ModuleDict({self.keys[name]: layer for name, layer in layers.items()})
        self.order, self.inputs, self.delayed, self.shapes = order, inputs, delayed, shapes
        self.input_name, self.output_name = input_name, output_name
        self.input_shape = shapes[input_name]
        self.T, self.readout, self.dt, self.dtype = T, readout, dt, dtype

    @property
    def recurrent(self) -> bool:
        return any(self.delayed.values())

    def layer(self, name: str) -> nn.Module | None:
        """The module of NIR node ``name`` (None for pass-through nodes)."""
        key = self.keys.get(name)
        return self.layers[key] if key in self.layers else None

    def run_sequence(self, x_seq: torch.Tensor, state: dict | None = None, return_state: bool = False,
                     record: dict | None = None):
        """``x_seq [T, B, *input_shape]`` -> the Output node's ``[T, B, ...]``, one value per step.

        ``state`` (from a previous call with ``return_state=True``) continues a stream where it
        stopped; ``record`` (a dict) receives every node's ``[T, B, ...]`` output by name.
        """
        if x_seq.ndim < 2 or tuple(x_seq.shape[2:]) != self.input_shape:
            raise ValueError(f"expected [T, B, {', '.join(map(str, self.input_shape))}], got {tuple(x_seq.shape)}")
        x_seq = x_seq.to(self.dtype)
        state = state or {"nodes": {}, "previous": {}}
        chunks = x_seq.split(1) if self.recurrent else (x_seq,)
        outputs = []
        for chunk in chunks:
            values = self._step(chunk, state)
            outputs.append(values[self.output_name])
            if record is not None:
                for name, value in values.items():
                    record.setdefault(name, []).append(value)
        if record is not None:
            for name in list(record):
                record[name] = torch.cat(record[name]) if isinstance(record[name], list) else record[name]
        y = torch.cat(outputs)
        return (y, state) if return_state else y

    def _step(self, x_seq: torch.Tensor, state: dict) -> dict[str, torch.Tensor]:
        """Every node once over ``x_seq``; updates ``state`` (neuron states, delayed edges' values)."""
        values = {self.input_name: x_seq}
        batch = x_seq.shape[1]
        for name in self.order:
            terms = [values[src] for src in self.inputs[name]]
            terms += [self._previous(src, batch, x_seq, state) for src in self.delayed[name]]
            x = terms[0]
            for term in terms[1:]:
                x = x + term
            layer = self.layer(name)
            if layer is None:
                values[name] = x
            elif hasattr(layer, "run"):
                values[name], state["nodes"][name] = layer.run(x, state["nodes"].get(name))
            else:
                values[name] = layer(x)
        for sources in self.delayed.values():
            for src in sources:
                state["previous"][src] = values[src][-1:]
        return values

    def _previous(self, src: str, batch: int, like: torch.Tensor, state: dict) -> torch.Tensor:
        """A delayed edge's value: ``src``'s output of the step before (its resting output at t=0)."""
        if src in state["previous"]:
            return state["previous"][src]
        zeros = like.new_zeros((1, batch, *self.shapes[src]))
        layer = self.layer(src)
        return layer.rest_output(zeros[0]).unsqueeze(0) if isinstance(layer, NIRNeuron) else zeros

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


def from_nir(graph: nir.NIRGraph | str | Path, dt: float | None = None, T: int | None = None,
             backend: str = "auto", dtype: torch.dtype | None = None, strategy: str = "auto") -> NIRNetwork:
    """Load ``graph`` (a ``nir.NIRGraph`` or a ``.nir`` file).

    ``dt`` (the step the time constants assume) defaults to ``metadata["dt"]``, else 1e-4 (the
    convention of SpikingJelly and snnTorch); ``T`` to ``metadata["T"]``. ``strategy="auto"`` runs
    neuron nodes that map onto snnres's LIF with it (its fused backends), ``"reference"`` runs
    every neuron through the plain ``NIRNeuron``; the spikes are the same.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    graph = read_graph(graph)
    meta = graph.metadata or {}
    dt = float(dt if dt is not None else meta.get("dt", 0) or DEFAULT_DT)
    if not (dt > 0 and np.isfinite(dt)):
        raise ValueError(f"dt must be finite and > 0 (the NIR time step in seconds), got {dt}")
    T = T if T is not None else (int(meta["T"]) if int(meta.get("T", 0) or 0) > 0 else None)
    readout = "mean" if str(meta.get("readout", "")).startswith("mean") else "none"

    nodes, edges, passthrough = flatten(graph)
    input_name, output_name = check_structure(nodes, edges, passthrough)
    keep = set(needed_nodes(nodes, edges, input_name, output_name))
    nodes = {k: n for k, n in nodes.items() if k in keep}
    edges = [(s, d) for s, d in edges if s in keep and d in keep]
    order, delayed, absorbed = cut_cycles(nodes, edges, input_name, lambda k: is_stateful(nodes[k]),
                                          lambda k: _whole_step_delay(nodes[k], dt))
    if dtype is None:
        weights = [np.asarray(n.weight) for n in nodes.values() if getattr(n, "weight", None) is not None]
        dtype = torch.float64 if weights and weights[0].dtype == np.float64 else torch.float32
    options = Options(dt, dtype, backend, strategy, frozenset(absorbed))
    layers, shapes = _build_all(nodes, edges, input_name, options)
    order = [k for k in order if k != input_name]
    inputs = {k: [s for s, d in edges if d == k and (s, d) not in delayed] for k in order}
    late = {k: [s for s, d in edges if d == k and (s, d) in delayed] for k in order}
    return NIRNetwork(layers, order, inputs, late, shapes, input_name, output_name, T, readout, dt, dtype)


def _whole_step_delay(node: nir.NIRNode, dt: float) -> bool:
    if not isinstance(node, nir.Delay):
        return False
    delay = np.asarray(node.delay, dtype=np.float64)
    return delay.size > 0 and bool(np.all(np.isfinite(delay))) and float(delay.min()) >= dt * (1 - 1e-6)


def _build_all(nodes, edges, input_name: str, options: Options):
    """Modules and output shapes of every node, each built once the shape of an input is known;
    then every edge is checked to bring the shape its destination was built for."""
    raw = np.asarray(nodes[input_name].input_type["input"]).reshape(-1)
    shapes: dict[str, tuple[int, ...]] = {input_name: tuple(int(s) for s in raw)}
    in_shapes: dict[str, tuple[int, ...]] = {}
    layers: dict[str, nn.Module] = {}
    pending = [k for k in nodes if k != input_name]
    while pending:
        ready = [k for k in pending if any(s in shapes for s, d in edges if d == k)]
        if not ready:
            raise ExportError(f"cannot tell the input shape of NIR nodes {pending}: they are fed only by each other")
        for name in ready:
            src = next(s for s, d in edges if d == name and s in shapes)
            in_shapes[name] = shapes[src]
            built = build(name, nodes[name], shapes[src], options)
            shapes[name] = built.shape
            if built.module is not None:
                layers[name] = built.module
        pending = [k for k in pending if k not in ready]
    for src, dst in edges:
        if shapes[src] != in_shapes[dst]:
            others = [s for s, d in edges if d == dst and shapes[s] == in_shapes[dst]]
            raise ExportError(f"NIR node {dst!r} ({type(nodes[dst]).__name__}) sums edges of different shapes: "
                              f"{src!r} gives {list(shapes[src])}, {others[0]!r} gives {list(in_shapes[dst])}")
    return layers, shapes

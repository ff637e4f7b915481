"""``EventSimulator``: run a trained network on events, touching only what the events reach.

Per time step, every event (an input pixel's count, a neuron's spike) adds its weight column or
kernel slice into the accumulators of the neurons it reaches (``kernels.conv_scatter``); neurons
that got input or sit away from rest are updated; their spikes are the next layer's events. A
chunk of steps runs layer by layer (a layer at step t needs only its inputs at steps <= t, so
this equals running the steps one by one); the neuron state is carried between chunks, so a
stream can be fed in pieces (``stream()``). See ``README.md`` for the mapping to hardware.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn


from . import kernels

from .graph import AddNode, ConvNode, Graph, InputNode, LinearNode, NeuronNode, PoolNode, UnsupportedLayerError
from .trace import trace

NEURON_BLOCK = 4096


@dataclass
class Signal:
    """One chunk of a node's output: CSR events ``(ptr, idx, val)`` or a dense current ``[T, N]``."""

    ptr: np.ndarray | None = None
    idx: np.ndarray | None = None
    val: np.ndarray | None = None
    current: np.ndarray | None = None
    integer: bool = True

    @property
    def steps(self) -> int:
        return len(self.ptr) - 1 if self.current is None else self.current.shape[0]


@dataclass
class SimState:
    """Everything carried between chunks: membranes, counters, the summed output."""

    membranes: dict[int, np.ndarray] = field(default_factory=dict)
    steps: int = 0
    out_sum: np.ndarray | None = None
    sops: dict[str, float] = field(default_factory=dict)
    macs: dict[str, float] = field(default_factory=dict)
    spikes: dict[str, int] = field(default_factory=dict)
    updates: dict[str, int] = field(default_factory=dict)
    trains: dict[str, list[np.ndarray]] | None = None


@dataclass
class SimResult:
    """``logits [classes]`` (time-mean of the output layer); counts keyed by module name.

    ``sops``: synaptic operations of layers fed by spikes (events x fan-out at each event's
    position, an event of count k counting k times); ``macs``: layers fed by real values
    (non-zero inputs x fan-out); ``neuron_updates``: neuron-steps that were computed;
    ``spike_trains``: ``[T, C, H, W]`` spikes per neuron layer when run with ``record=True``.
    """

    logits: torch.Tensor
    spikes_per_layer: dict[str, int]
    sops: dict[str, float]
    macs: dict[str, float]
    neuron_updates: dict[str, int]
    steps: int
    spike_trains: dict[str, torch.Tensor] | None = None

    @property
    def prediction(self) -> int:
        return int(self.logits.argmax())

    @property
    def total_sops(self) -> float:
        return float(sum(self.sops.values()))


def as_events(sig: Signal) -> Signal:
    if sig.current is None:
        return sig
    ptr, idx, val = kernels.compact(sig.current)
    return Signal(ptr, idx, val, integer=False)


def as_current(sig: Signal, size: int) -> np.ndarray:
    if sig.current is not None:
        return sig.current
    out = np.zeros((sig.steps, size), dtype=np.float32)
    kernels.densify(sig.ptr, sig.idx, sig.val, out)
    return out


def _accumulator(node, steps: int) -> np.ndarray:
    if node.bias is None:
        return np.zeros((steps, node.size), dtype=np.float32)
    positions = node.size // node.bias.size
    return np.tile(node.bias, (steps, positions))


def _count(state: SimState, node, sig: Signal, weighted: np.ndarray, plain: np.ndarray) -> None:
    table, value = (state.sops, weighted.sum()) if sig.integer else (state.macs, plain.sum())
    table[node.name] = table.get(node.name, 0.0) + float(value)


def run_conv(node: ConvNode, inputs: list[Signal], state: SimState, index: int) -> Signal:
    sig = as_events(inputs[0])
    out = _accumulator(node, sig.steps)
    weighted, plain = np.zeros(sig.steps), np.zeros(sig.steps)
    kernels.conv_scatter(sig.ptr, sig.idx, sig.val, node.geometry, node.w_t, out, weighted, plain)
    _count(state, node, sig, weighted, plain)
    return Signal(current=out)


def run_linear(node: LinearNode, inputs: list[Signal], state: SimState, index: int) -> Signal:
    sig = as_events(inputs[0])
    out = _accumulator(node, sig.steps)
    weighted, plain = np.zeros(sig.steps), np.zeros(sig.steps)
    kernels.linear_scatter(sig.ptr, sig.idx, sig.val, node.w_t, out, weighted, plain)
    _count(state, node, sig, weighted, plain)
    return Signal(current=out)


def run_neuron(node: NeuronNode, inputs: list[Signal], state: SimState, index: int) -> Signal:
    current = as_current(inputs[0], node.size)
    if index not in state.membranes:
        state.membranes[index] = np.full((len(node.thresholds), node.size), node.consts[1], dtype=np.float32)
    spikes = np.empty(current.shape, dtype=np.uint8)
    updates = kernels.neuron_update(current, state.membranes[index], spikes, node.thresholds, node.consts,
                                    node.decay_input, node.hard, node.always, NEURON_BLOCK)
    ptr, idx, val = kernels.compact(spikes)
    state.spikes[node.name] = state.spikes.get(node.name, 0) + int(val.sum())
    state.updates[node.name] = state.updates.get(node.name, 0) + int(updates.sum())
    if state.trains is not None:
        state.trains.setdefault(node.name, []).append(spikes)
    return Signal(ptr, idx, val, integer=True)


def run_pool(node: PoolNode, inputs: list[Signal], state: SimState, index: int) -> Signal:
    sig = as_events(inputs[0])
    out = np.zeros((sig.steps, node.size), dtype=np.float32)
    kernels.pool_scatter(sig.ptr, sig.idx, sig.val, node.geometry, out, node.use_max)
    ptr, idx, val = kernels.compact(out, node.divisor)
    return Signal(ptr, idx, val, integer=node.integer)


def run_add(node: AddNode, inputs: list[Signal], state: SimState, index: int) -> Signal:
    a, b = (as_current(s, node.size) for s in inputs)
    if node.mode == "add":
        total = a + b
    elif node.mode == "and":
        total = a * b
    else:  # "iand"
        total = (np.float32(1) - a) * b
    if all(s.current is None and s.integer for s in inputs):  # spikes in, spike counts out (SEW)
        ptr, idx, val = kernels.compact(total)
        return Signal(ptr, idx, val, integer=True)
    return Signal(current=total)


RUNNERS: dict[type, Callable] = {
    ConvNode: run_conv, LinearNode: run_linear, NeuronNode: run_neuron, PoolNode: run_pool, AddNode: run_add,
}


def run_chunk(graph: Graph, state: SimState, chunk: Signal) -> None:
    """Advance ``state`` by the chunk's steps: every node in order, each over all the steps."""
    signals: dict[int, Signal] = {0: chunk}
    last_use = graph.last_use()
    for j, node in enumerate(graph.nodes[1:], start=1):
        signals[j] = RUNNERS[type(node)](node, [signals[i] for i in node.inputs], state, j)
        for i in node.inputs:
            if last_use[i] <= j and i != graph.output:
                signals.pop(i, None)
    out = signals[graph.output]
    total = as_current(out, graph.nodes[graph.output].size).sum(axis=0, dtype=np.float64)
    state.out_sum = total if state.out_sum is None else state.out_sum + total
    state.steps += chunk.steps


def result(graph: Graph, state: SimState) -> SimResult:
    if state.steps == 0:
        raise ValueError("no time step has been simulated yet")
    logits = torch.from_numpy((state.out_sum / state.steps).astype(np.float32))
    trains = None
    if state.trains is not None:
        trains = {}
        for name, parts in state.trains.items():
            node = next(n for n in graph.nodes if n.name == name)
            flat = np.concatenate(parts).astype(np.float32)
            trains[name] = _to_torch_layout(flat, node.shape)
    return SimResult(logits, dict(state.spikes), dict(state.sops), dict(state.macs), dict(state.updates),
                     state.steps, trains)


def _to_torch_layout(flat: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
    """``[T, N]`` channels-last -> ``[T, C, H, W]`` (or ``[T, F]``)."""
    if len(shape) == 3:
        c, h, w = shape
        return torch.from_numpy(np.ascontiguousarray(flat.reshape(-1, h, w, c).transpose(0, 3, 1, 2)))
    return torch.from_numpy(flat.reshape(-1, *shape))


class EventSimulator:
    """Event-driven inference of a trained SNN (eval-mode BatchNorm folded into the weights).

    ``run(events, sensor_size, T)`` bins Tonic events like ``ToFrame(sensor_size, n_time_bins=T)``;
    ``run(frames)`` takes a ``[T, C, H, W]`` frame tensor. ``stream(...)`` feeds chunks.
    """

    def __init__(self, model: nn.Module):
        if not isinstance(model, nn.Module):
            raise TypeError(f"EventSimulator needs an nn.Module, got {type(model).__name__}")
        self.model = model
        self._graphs: dict[tuple[int, ...], Graph] = {}
        check_supported(model)

    def graph(self, input_shape: tuple[int, ...]) -> Graph:
        """The node list for inputs of shape ``(C, H, W)`` (built once per shape)."""
        key = tuple(int(v) for v in input_shape)
        if key not in self._graphs:
            self._graphs[key] = build_graph(self.model, key)
        return self._graphs[key]

    def run(self, events, sensor_size=None, T: int | None = None, sort: bool = False,
            record: bool = False) -> SimResult:
        """Simulate one recording from rest: Tonic events (with ``sensor_size``, ``T``) or frames."""
        stream = self.stream(record=record)
        if isinstance(events, np.ndarray) and events.dtype.names is not None:
            if T is None or sensor_size is None:
                raise ValueError("events need sensor_size (W, H, P) and T (the number of time bins)")
            stream.push_events_tonic(events, sensor_size, T, sort)
        else:
            stream.push_frames(events, T)
        return stream.result()

    def stream(self, record: bool = False) -> "EventStream":
        from .stream import EventStream

        return EventStream(self, record)


def build_graph(model: nn.Module, input_shape: tuple[int, ...]) -> Graph:
    graph = Graph()
    graph.add(InputNode("input", (), tuple(input_shape)))
    with torch.no_grad():
        graph.output = trace(model, "", graph, 0)
    return graph


def check_supported(model: nn.Module) -> None:
    """Trace the model on a probe input so that an unsupported layer fails at construction."""
    first = next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)
    if isinstance(first, nn.Linear):
        probe = (first.in_features, 1, 1)
    else:
        probe = (first.in_channels if first is not None else 1, 64, 64)
    try:
        build_graph(model, probe)
    except UnsupportedLayerError:
        raise
    except (ValueError, IndexError, ZeroDivisionError):
        pass  # a shape that does not fit the probe: checked again with the real input in run()

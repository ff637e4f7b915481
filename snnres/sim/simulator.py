"""``EventSimulator``: run a trained network on events, touching only what the events reach.

Per time step, every event (an input pixel's count, a neuron's spike) adds its weight column or
kernel slice into the accumulators of the neurons it reaches (``kernels.conv_scatter``); neurons
that got input or sit away from rest are updated; their spikes are the next layer's events. A
chunk of steps runs layer by layer (a layer at step t needs only its inputs at steps <= t, so
this equals running the steps one by one); the neuron state is carried between chunks, so a
stream can be fed in pieces (``stream()``). See ``README.md`` for the mapping to hardware.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numba
import numpy as np
import torch
from torch import nn

from . import blocks  # noqa: F401  (handlers for the blocks of snnres.models)
from . import bits, cuda, fused, gather, kernels, memory, reference
from .graph import AddNode, ConvNode, Graph, InputNode, LinearNode, NeuronNode, PoolNode, UnsupportedLayerError
from .intrinsics import SET_BITS_SLACK
from .state import Gathered, Signal, SimResult, SimState, channels
from .trace import trace

if TYPE_CHECKING:
    from .stream import EventStream


def ready(sig: Signal, state: SimState) -> Signal:
    """``sig`` with its current summed, if it is a gathered conv's (once: the signal keeps it)."""
    g = sig.gathered
    if g is not None and sig.current is None:
        sig.current, sig.touched = accumulators(state, g.index, sig.steps, g.node, g.node.size // channels(
            g.node.shape), zero_touched=False)  # every position is written
        gather.conv_gather(g.val, g.binary, g.site_ptr, g.code, g.node.geometry, g.w_b, g.node.w_t.shape[1],
                            sig.current, sig.touched, g.width, g.joined)
    return sig


def emitted(sig: Signal) -> Signal:
    """``sig`` with its spike list read out of a fused pass's bit planes (once)."""
    if sig.fired is not None and sig.idx is None:
        sig.idx, sig.val = bits.emit_bits(sig.fired, sig.ptr)
    return sig


def complete(sig: Signal) -> Signal:
    """A scattered current with its untouched positions zeroed (once: the scatter zeroes a
    position only when it first reaches it, and a neuron layer reads only touched positions)."""
    if sig.partial:
        steps, positions = sig.touched.shape
        sig.current.reshape(steps, positions, -1)[sig.touched == 0] = 0
        sig.partial = False
    return sig


def full_current(sig: Signal, size: int) -> np.ndarray:
    """The dense ``[T, N]`` input a layer delivers, bias included."""
    complete(emitted(sig))
    if sig.current is None:
        out = np.zeros((sig.steps, size), dtype=np.float32)
        kernels.densify(sig.ptr, sig.idx, sig.val, out)
        return out
    if sig.bias is None:
        return sig.current
    return (sig.current.reshape(sig.steps, -1, sig.bias.size) + sig.bias).reshape(sig.steps, size)


def as_events(sig: Signal, size: int) -> Signal:
    if sig.current is None:
        return emitted(sig)
    ptr, idx, val = kernels.compact(full_current(sig, size))
    return Signal(ptr, idx, val, integer=False)


def neuron_input(sig: Signal, node: NeuronNode) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(current, touched [T, P], bias or None)`` for ``kernels.neuron_chunk``."""
    if sig.touched is not None:
        return sig.current, sig.touched, sig.bias
    current = full_current(sig, node.size)
    touched = (current.reshape(sig.steps, -1, channels(node.shape)) != 0).any(axis=2).astype(np.uint8)
    return current, touched, None


def _count(state: SimState, node, sig: Signal, weighted: np.ndarray, plain: np.ndarray) -> None:
    table, value = (state.sops, weighted.sum()) if sig.integer else (state.macs, plain.sum())
    table[node.name] = table.get(node.name, 0.0) + float(value)


def run_synapse(node, inputs: list[Signal], state: SimState, index: int) -> Signal:
    """Add every input event's weights into the postsynaptic accumulators (a gathered conv: later)."""
    sig = inputs[0] if inputs[0].current is None else as_events(inputs[0], state.sizes[node.inputs[0]])
    steps = sig.steps
    weighted, plain = np.zeros((2, steps))
    gathered = gather_index(node, sig, state, index, weighted, plain) if isinstance(node, ConvNode) else None
    if gathered is not None:
        _count(state, node, sig, weighted, plain)
        return Signal(bias=node.bias, gathered=gathered)
    emitted(sig)
    positions = node.size // channels(node.shape) if isinstance(node, ConvNode) else 1
    out, touched = accumulators(state, index, steps, node, positions)
    conv = isinstance(node, ConvNode)
    if conv:
        kernels.conv_scatter(sig.ptr, sig.idx, sig.val, node.geometry, node.w_t, out, touched, weighted, plain)
    else:
        kernels.linear_scatter(sig.ptr, sig.idx, sig.val, node.w_t, out, touched, weighted, plain)
    _count(state, node, sig, weighted, plain)
    return Signal(current=out, touched=touched, bias=node.bias, partial=conv)


def accumulators(state: SimState, index: int, steps: int, node, positions: int, zero_touched: bool = True):
    """Reused ``current [T, N]`` (float32, stale: the kernels zero what they write) and ``touched
    [T, P]`` (uint8, zeroed unless ``zero_touched`` is False) arrays of node ``index``."""
    return (state.graph.buffer((index, "current"), (steps, node.size), np.float32, False),
            state.graph.buffer((index, "touched"), (steps, positions), np.uint8, zero_touched))


def gather_index(node: ConvNode, sig: Signal, state: SimState, index: int, weighted, plain) -> Gathered | None:
    """The conv's events indexed for ``conv_gather`` and counted, where gathering pays (else None:
    scatter)."""
    steps, c_in, (kh, kw, c_out) = sig.steps, node.geometry[0], node.w_t.shape[1:]
    fused_next, width = gather_plan(node, index, state.graph)
    n_events = int(sig.ptr[-1] - sig.ptr[0])
    if not gather.gather_pays(n_events, steps, node.geometry, node.w_t, fused_next, width):
        return None
    joined = gather.joined_pays(n_events, steps, node.geometry, node.w_t)
    # both written in full by the indexing kernels; fresh arrays (0.5 MB for the benchmark's sensor) were slow
    site_ptr = state.graph.buffer((index, "site_ptr"), (steps, state.sizes[node.inputs[0]] // c_in + 1), np.int64,
                                  False)
    code = state.graph.growing((index, "code"), n_events + SET_BITS_SLACK, np.int32)  # room for branch-free stores
    if sig.fired is not None and sig.idx is None:  # spikes of a fused pass: index the bits
        val = ones(state.graph, n_events) if sig.fired.shape[0] == 1 else np.ones(n_events, np.float32)  # level counts
        bits.bits_to_sites(sig.fired, sig.ptr, node.geometry, kh, kw, c_out, site_ptr, code, val, weighted, plain)
        return Gathered(node, index, val, sig.fired.shape[0] == 1, site_ptr, code, width, joined,
                        weight_blocks(node, width, state.graph))
    binary = bool(sig.integer and kernels.all_ones(sig.val))
    if not gather.site_index(sig.ptr, sig.idx, sig.val, binary, node.geometry, kh, kw, c_out, site_ptr, code,
                              weighted, plain):
        return None
    return Gathered(node, index, sig.val, binary, site_ptr, code, width, joined,
                    weight_blocks(node, width, state.graph))


def gather_plan(node: ConvNode, index: int, graph: Graph) -> tuple[bool, int]:
    """``(fused_next, width)`` of a conv, found once per graph: whether every reader is a LIF/MLF
    layer that ``fused.gather_neuron`` can run with it, and the register block it would use."""
    key = ("plan", index)
    if key not in graph.memo:
        readers = [graph.nodes[j] for j in graph.consumers(index)]
        fused_next = bool(readers) and all(isinstance(r, NeuronNode) and neuron_fusable(r) for r in readers)
        levels = max((len(r.thresholds) for r in readers if isinstance(r, NeuronNode)), default=1)
        graph.memo[key] = fused_next, fused_width(node.w_t.shape[3], levels) if fused_next else gather.BLOCK
    return graph.memo[key]


def ones(graph: Graph, n: int) -> np.ndarray:
    """``n`` ones (float32, shared by the one-level gathered convs of a run: the kernels do not write them)."""
    return graph.growing("ones", n, np.float32, fill=1)


def weight_blocks(node: ConvNode, width: int, graph: Graph) -> np.ndarray:
    """``gather.conv_blocks`` of the conv's weights (made once per width, in the graph's huge pages)."""
    if width not in node.w_blocks:
        node.w_blocks[width] = gather.conv_blocks(node.w_t, width, graph.arena.empty)
    return node.w_blocks[width]


def fused_width(c_out: int, levels: int = 1) -> int:
    """The register block ``fused.gather_neuron`` uses for ``c_out`` channels: 128 for one level (16
    vectors of sums and membranes still fit the 32 AVX-512 registers; 8% faster than two blocks of
    64 on 128-256 channels), else 64, else 32 (0: none)."""
    widths = (gather.WIDE, gather.BLOCK, gather.NARROW) if levels == 1 else (gather.BLOCK, gather.NARROW)
    return next((w for w in widths if c_out % w == 0), 0)


def neuron_fusable(node: NeuronNode) -> bool:
    """Whether ``fused.gather_neuron`` can run this layer with the conv before it: at most
    ``fused.MAX_LEVELS`` levels, whole register blocks of channels."""
    return len(node.thresholds) <= fused.MAX_LEVELS and fused_width(channels(node.shape)) > 0


def fuses(sig: Signal, node: NeuronNode) -> bool:
    """Whether ``fused.gather_neuron`` runs the gathered conv ``sig`` and neuron layer ``node`` together."""
    return sig.gathered is not None and neuron_fusable(node) and channels(node.shape) % sig.gathered.width == 0


def run_neuron(node: NeuronNode, inputs: list[Signal], state: SimState, index: int) -> Signal:
    sig = inputs[0]
    steps = sig.steps
    if index not in state.membranes:
        at_rest(state)
    v, awake = state.membranes[index]
    fresh = index in state.fresh
    state.fresh.discard(index)
    levels = len(node.thresholds)
    fused_pass = fuses(sig, node)
    if fused_pass or neuron_fusable(node):  # membranes in registers over the steps, spikes as bit planes
        fired = state.graph.buffer((index, "fired"), (levels, steps, -(-node.size // 64)), np.uint64, zero=False)
        if node.size % 64:
            fired[..., -1] = 0  # every bit is written but the unused high half of an odd number of 32-blocks
        if fused_pass:
            g = sig.gathered
            updates = fused.gather_neuron(g.val, g.binary, g.site_ptr, g.code, g.node.geometry, g.w_b,
                                          g.node.w_t.shape[1], bias_row(sig.bias, node), v, awake, node.thresholds,
                                          node.consts, node.decay_input, node.hard, fired, g.width, g.joined, fresh)
        else:  # a current from elsewhere (a scattered conv, a linear layer, a residual sum)
            current, touched, bias = neuron_input(ready(sig, state), node)
            updates = fused.neuron_bits(current, touched, bias_row(bias, node), bias is not None or node.always, v,
                                        awake, node.thresholds, node.consts, node.decay_input, node.hard, fired,
                                        fused_width(channels(node.shape), levels), fresh)
        ptr, spikes = bits.bit_counts(fired)
        out = Signal(ptr, integer=True, fired=fired)
    else:
        if fresh:
            v.fill(node.consts[1])
        current, touched, bias = neuron_input(ready(sig, state), node)
        ptr = np.empty(steps + 1, dtype=np.int64)
        idx = np.empty(steps * node.size, dtype=np.int64)
        val = np.empty(steps * node.size, dtype=np.float32)
        parts = min(numba.get_num_threads(), touched.shape[1])
        updates = kernels.neuron_chunk(current, touched, bias_row(bias, node), bias is not None, v, awake,
                                       node.thresholds, node.consts, node.decay_input, node.hard, node.always, parts,
                                       ptr, idx, val)
        idx, val = idx[:ptr[-1]].copy(), val[:ptr[-1]].copy()
        spikes = int(val.sum(dtype=np.float64))  # exact past 2**24
        out = Signal(ptr, idx, val, integer=True)
    state.spikes[node.name] = state.spikes.get(node.name, 0) + int(spikes)
    state.updates[node.name] = state.updates.get(node.name, 0) + int(updates)
    if state.trains is not None:
        state.trains.setdefault(node.name, []).append(full_current(out, node.size))
    return out


def at_rest(state: SimState) -> None:
    """Membranes at rest ``[K, N]`` and 'away from rest' flags ``[P]`` for every neuron layer of the
    graph without any yet, carved from one allocation (each 64-byte aligned): a fresh recording
    allocated them layer by layer, ~5 us each, 5-25 us each in the run with the caches cold. The
    membranes are left unwritten (``state.fresh``): the fused kernels start from rest themselves,
    and filling them for the benchmark network (645 KB) took ~0.06 ms of a ~2.5 ms run. A new
    recording takes the arrays of a finished ``run`` where there are some (``release``): a fresh
    allocation made runs at 0.5-5% activity 3-7% slower on the benchmark network."""
    pool = state.graph.scratch.__dict__.get("membranes") if not state.membranes else None
    if pool:
        state.membranes = pool.pop()
        for j, (v, awake) in state.membranes.items():
            awake.fill(0)
            state.fresh.add(j)
        return
    layers = [(j, n) for j, n in enumerate(state.graph.nodes) if isinstance(n, NeuronNode) and j not in state.membranes]
    spans = [-(-len(n.thresholds) * n.size // 16) * 16 for _, n in layers]  # floats, whole cache lines
    flags = [-(-(n.size // channels(n.shape)) // 64) * 64 for _, n in layers]
    block = memory.aligned_empty((sum(spans) + sum(flags) // 4,), np.float32)
    start, flag_start = 0, sum(spans)
    for (j, n), span, flag in zip(layers, spans, flags):
        v = block[start:start + len(n.thresholds) * n.size].reshape(len(n.thresholds), n.size)
        state.fresh.add(j)
        awake = block[flag_start:flag_start + flag // 4].view(np.uint8)[:n.size // channels(n.shape)]
        awake.fill(0)
        state.membranes[j] = (v, awake)
        start, flag_start = start + span, flag_start + flag // 4


def release(state: SimState) -> None:
    """Hand a finished recording's membranes to its graph (this thread's pool) for the next
    recording's ``at_rest``; ``state`` must not run again."""
    if state.graph is not None and state.membranes:
        state.graph.scratch.__dict__.setdefault("membranes", []).append(state.membranes)
        state.membranes = {}


def bias_row(bias: np.ndarray | None, node: NeuronNode) -> np.ndarray:
    """The per-channel bias a neuron kernel adds (zeros for a layer without one)."""
    return bias if bias is not None else np.zeros(channels(node.shape), dtype=np.float32)


def run_pool(node: PoolNode, inputs: list[Signal], state: SimState, index: int) -> Signal:
    sig = inputs[0]
    if global_pool(node, sig, state.sizes[node.inputs[0]]):  # counted straight from the bit planes
        out = np.empty((sig.steps, node.size), dtype=np.float32)
        bits.channel_counts(sig.fired, node.size, out)
    else:
        sig = as_events(sig, state.sizes[node.inputs[0]])
        out = np.zeros((sig.steps, node.size), dtype=np.float32)
        h_in = state.sizes[node.inputs[0]] // (node.geometry[0] * node.geometry[1])
        kernels.pool_scatter(sig.ptr, sig.idx, sig.val, node.geometry, h_in, out, node.use_max)
    ptr, idx, val = kernels.compact(out, node.divisor)
    return Signal(ptr, idx, val, integer=node.integer)


def global_pool(node: PoolNode, sig: Signal, size_in: int) -> bool:
    """Whether ``node`` averages all of ``sig``'s positions into one and ``sig`` holds one-level spike
    bits of whole 64-channel words (``bits.channel_counts``)."""
    c_n, w_in, h_out, w_out, kh, kw, sh, sw, ph, pw = node.geometry
    return (sig.fired is not None and sig.fired.shape[0] == 1 and c_n % 64 == 0
            and h_out == w_out == 1 and ph == pw == 0 and kh * w_in * c_n >= size_in and kw >= w_in
            and not node.use_max)


def run_add(node: AddNode, inputs: list[Signal], state: SimState, index: int) -> Signal:
    a, b = (full_current(s, node.size) for s in inputs)
    if node.mode == "add":
        total = a + b
    elif node.mode == "and":
        total = a * b
    else:  # "iand"
        total = (np.float32(1) - a) * b
    if all(s.current is None and s.integer for s in inputs):  # spikes in, spike counts out (SEW, DS)
        ptr, idx, val = kernels.compact(total)
        return Signal(ptr, idx, val, integer=bool(np.all(val >= 0)))
    return Signal(current=total)


RUNNERS: dict[type, Callable] = {
    ConvNode: run_synapse, LinearNode: run_synapse, NeuronNode: run_neuron, PoolNode: run_pool, AddNode: run_add,
}


def run_chunk(graph: Graph, state: SimState, chunk: Signal) -> None:
    """Advance ``state`` by the chunk's steps: every node in order, each over all the steps."""
    state.sizes = graph.sizes()
    state.graph = graph

    def run(j: int, node, inputs: list[Signal]) -> Signal:
        if not isinstance(node, NeuronNode):  # a LIF layer may sum a gathered conv itself
            inputs = [ready(sig, state) for sig in inputs]
        return RUNNERS[type(node)](node, inputs, state, j)

    out = ready(graph.evaluate(chunk, run), state)
    state.add_output(full_current(out, graph.nodes[graph.output].size).sum(axis=0, dtype=np.float64), chunk.steps)


STRATEGIES = ("fast", "reference")


class EventSimulator:
    """Event-driven inference of a trained SNN (eval-mode BatchNorm folded into the weights).

    ``run(events, sensor_size, T)`` bins Tonic events like ``ToFrame(sensor_size, n_time_bins=T)``;
    ``run(frames)`` takes a ``[T, C, H, W]`` frame tensor. ``stream(...)`` feeds chunks.
    ``device``: ``"cpu"`` (numba kernels) or a CUDA device (CuPy kernels, ``cuda.py``).
    ``strategy``: ``"fast"`` (the planned, optimised kernels) or ``"reference"`` (``reference.py``:
    plain numpy, every neuron every step; what the fast strategy is tested against, bit for bit).
    The weights are read (and BN folded) once per input shape: build a new simulator after
    changing the model.
    """

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu", strategy: str = "fast"):
        if not isinstance(model, nn.Module):
            raise TypeError(f"EventSimulator needs an nn.Module, got {type(model).__name__}")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}, got {strategy!r}")
        self.model = model
        self.strategy = strategy
        self.device = torch.device(device)
        if self.device.type != "cpu" and strategy == "reference":
            raise ValueError(f"the reference strategy runs on the CPU only, not on {self.device}; use device='cpu'")
        if self.device.type != "cpu":
            cuda.check_device(self.device)
            if self.device.index is None:
                self.device = torch.device("cuda", torch.cuda.current_device())
        self._graphs: dict[tuple[int, ...], Graph] = {}
        check_supported(model)

    def run_chunk(self, graph: Graph, state: SimState, chunk: Signal) -> None:
        """Advance ``state`` by the steps of ``chunk`` (CSR input events) on this simulator's device."""
        if self.strategy == "reference":
            reference.run_chunk(graph, state, chunk)
        elif self.device.type == "cpu":
            run_chunk(graph, state, chunk)
        else:
            cuda.run_chunk(graph, state, chunk, self.device)

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
        out = stream.result()
        if self.device.type == "cpu" and self.strategy == "fast":
            release(stream.state)
        return out

    def stream(self, record: bool = False) -> EventStream:
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

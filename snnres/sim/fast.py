"""The fast strategy: every node of a chunk runs the kernel its ``plan.Step`` names.

Per time step, every event (an input pixel's count, a neuron's spike) adds its weight column or
kernel slice into the accumulators of the neurons it reaches; neurons that got input or sit away
from rest are updated; their spikes are the next layer's events. A chunk of steps runs layer by
layer (a layer at step t needs only its inputs at steps <= t, so this equals running the steps
one by one), each node over all the chunk's steps. The plan (``plan.Planner``) decides how;
buffers come from the network's ``Workspace``; the state between chunks is ``state.SimState``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numba
import numpy as np

from . import bits, fused, gather, kernels, memory
from .graph import AddNode, ConvNode, Graph, LinearNode, NeuronNode, PoolNode
from .intrinsics import SET_BITS_SLACK
from .plan import Plan, Planner, Step
from .signals import Current, Events, PendingGather, Signal, SpikeBits, dense_of, events_of, neuron_input
from .state import SimState
from .workspace import Workspace


@dataclass
class Run:
    """One chunk being run: the network, its workspace and plan, the carried state, the steps taken."""

    graph: Graph
    workspace: Workspace
    planner: Planner
    state: SimState
    steps: list[Step] = field(default_factory=list)


def run_chunk(graph: Graph, workspace: Workspace, planner: Planner, state: SimState, chunk: Events) -> None:
    """Advance ``state`` by the chunk's steps; ``state.plan`` is what ran."""
    run = Run(graph, workspace, planner, state)
    out = graph.evaluate(chunk, lambda j, node, inputs: RUNNERS[type(node)](run, j, node, inputs))
    state.add_output(dense_of(out, graph.nodes[graph.output].size).sum(axis=0, dtype=np.float64), chunk.steps)
    state.plan = Plan(run.steps)


def count(state: SimState, node, integer: bool, fan: np.ndarray) -> None:
    """SOPs (``fan[0]``: value x fan-out per step) of a layer fed by integer events, else MACs (``fan[1]``)."""
    table, value = (state.sops, fan[0].sum()) if integer else (state.macs, fan[1].sum())
    table[node.name] = table.get(node.name, 0.0) + float(value)


def synapse(run: Run, j: int, node, inputs: list[Signal]) -> Signal:
    """A conv or linear layer: scattered, gathered (current stored), or indexed for the fused pass."""
    sig = inputs[0] if isinstance(inputs[0], SpikeBits) else events_of(inputs[0])
    steps, n_events = sig.steps, int(sig.ptr[-1] - sig.ptr[0])
    step = run.planner.synapse(j, node, n_events, steps)
    fan = np.zeros((2, steps))  # per step: value x fan-out, fan-out
    if step.kernel != "scatter":
        pending = index_sites(run, j, node, sig, step, fan)
        if pending is not None:
            run.steps.append(step)
            count(run.state, node, sig.integer, fan)
            if step.kernel == "gather+neuron":
                return pending
            out, touched = accumulators(run.workspace, j, steps, node, zero_touched=False)  # all written
            gather.conv_gather(pending.val, pending.binary, pending.site_ptr, pending.code, node.geometry,
                               pending.weights, node.w_t.shape[1], out, touched, step.width, step.joined)
            return Current(out, touched, node.bias)
        step = Step(node.name, "scatter", "events not in order within a step")
    run.steps.append(step)
    sig = events_of(sig)
    out, touched = accumulators(run.workspace, j, steps, node)
    if isinstance(node, ConvNode):
        kernels.conv_scatter(sig.ptr, sig.idx, sig.val, node.geometry, node.w_t, out, touched, fan[0], fan[1])
    else:
        kernels.linear_scatter(sig.ptr, sig.idx, sig.val, node.w_t, out, touched, fan[0], fan[1])
    count(run.state, node, sig.integer, fan)
    return Current(out, touched, node.bias, scattered=isinstance(node, ConvNode))


def accumulators(ws: Workspace, j: int, steps: int, node, zero_touched: bool = True):
    """Reused ``current [T, N]`` (float32, stale: the kernels zero what they write) and ``touched [T, P]``
    (uint8, zeroed unless ``zero_touched`` is False) of node ``j``."""
    positions = node.size // node.shape[0] if isinstance(node, ConvNode) else 1
    return (ws.buffer((j, "current"), (steps, node.size), np.float32),
            ws.buffer((j, "touched"), (steps, positions), np.uint8, zero_touched))


def index_sites(run: Run, j: int, node: ConvNode, sig: Events | SpikeBits, step: Step, fan) -> PendingGather | None:
    """The conv's input events by site for ``gather.conv_gather`` / ``fused.gather_neuron``, counted
    into ``fan``; None if a step's events are not in increasing order."""
    ws, steps, n_events = run.workspace, sig.steps, int(sig.ptr[-1] - sig.ptr[0])
    c_in, (kh, kw, c_out) = node.geometry[0], node.w_t.shape[1:]
    site_ptr = ws.buffer((j, "site_ptr"), (steps, run.graph.sizes()[node.inputs[0]] // c_in + 1), np.int64)
    code = ws.growing((j, "code"), n_events + SET_BITS_SLACK, np.int32)  # room for branch-free stores
    weights = ws.weight_blocks(j, node.w_t, step.width)
    if isinstance(sig, SpikeBits):
        one_level = sig.fired.shape[0] == 1
        val = ws.growing("ones", n_events, np.float32, fill=1) if one_level else np.ones(n_events, np.float32)
        bits.bits_to_sites(sig.fired, sig.ptr, node.geometry, kh, kw, c_out, site_ptr, code, val, fan[0], fan[1])
        return PendingGather(node, val, one_level, site_ptr, code, weights, step.width, step.joined, step.rows,
                             node.bias)
    binary = bool(sig.integer and kernels.all_ones(sig.val))
    if not gather.site_index(sig.ptr, sig.idx, sig.val, binary, node.geometry, kh, kw, c_out, site_ptr, code,
                              fan[0], fan[1]):
        return None
    return PendingGather(node, sig.val, binary, site_ptr, code, weights, step.width, step.joined, step.rows,
                         node.bias)


def neuron(run: Run, j: int, node: NeuronNode, inputs: list[Signal]) -> Signal:
    """A LIF/MLF layer: fused with the gathered conv before it, position by position, or step by step."""
    sig, state = inputs[0], run.state
    pending = sig if isinstance(sig, PendingGather) else None
    step = run.planner.neuron(j, node, pending.node.name if pending is not None else None)
    run.steps.append(step)
    v, awake, fresh = membranes(run, j)
    steps, levels, channels = sig.steps, len(node.thresholds), node.shape[0]
    if step.kernel == "step":
        if fresh:
            v.fill(node.consts[1])
        current, touched, bias = neuron_input(sig, node.size, channels)
        ptr = np.empty(steps + 1, dtype=np.int64)
        idx = np.empty(steps * node.size, dtype=np.int64)
        val = np.empty(steps * node.size, dtype=np.float32)
        parts = min(numba.get_num_threads(), touched.shape[1])
        updates = kernels.neuron_chunk(current, touched, bias_row(bias, channels), bias is not None, v, awake,
                                       node.thresholds, node.consts, node.decay_input, node.hard, node.always, parts,
                                       ptr, idx, val)
        out = Events(ptr, idx[:ptr[-1]].copy(), val[:ptr[-1]].copy())
        spikes = int(out.val.sum(dtype=np.float64))  # exact past 2**24
    else:  # membranes in registers over the steps, spikes as bit planes
        fired = run.workspace.buffer((j, "fired"), (levels, steps, -(-node.size // 64)), np.uint64)
        if node.size % 64:
            fired[..., -1] = 0  # every bit is written but the unused high half of an odd number of 32-blocks
        if pending is not None:
            p = pending
            updates = fused.gather_neuron(p.val, p.binary, p.site_ptr, p.code, p.node.geometry, p.weights,
                                          p.node.w_t.shape[1], bias_row(p.bias, channels), v, awake, node.thresholds,
                                          node.consts, node.decay_input, node.hard, fired, p.width, p.joined, fresh,
                                          p.rows)
        else:  # a current from elsewhere (a scattered conv, a linear layer, a residual sum)
            current, touched, bias = neuron_input(sig, node.size, channels)
            updates = fused.neuron_bits(current, touched, bias_row(bias, channels), bias is not None or node.always,
                                        v, awake, node.thresholds, node.consts, node.decay_input, node.hard, fired,
                                        step.width, fresh)
        ptr, spikes = bits.bit_counts(fired)
        out = SpikeBits(fired, ptr)
    state.spikes[node.name] = state.spikes.get(node.name, 0) + int(spikes)
    state.updates[node.name] = state.updates.get(node.name, 0) + int(updates)
    if state.trains is not None:
        state.trains.setdefault(node.name, []).append(dense_of(out, node.size))
    return out


def bias_row(bias: np.ndarray | None, channels: int) -> np.ndarray:
    """The per-channel bias a neuron kernel adds (zeros for a layer without one)."""
    return bias if bias is not None else np.zeros(channels, dtype=np.float32)


def membranes(run: Run, j: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(v [K, N], awake [P], fresh)`` of neuron layer ``j``; ``fresh``: ``v`` is not written yet (all
    at rest: the kernels start from rest themselves), true once per recording."""
    state = run.state
    if j not in state.membranes:
        at_rest(run)
    fresh = j in state.fresh
    state.fresh.discard(j)
    v, awake = state.membranes[j]
    return v, awake, fresh


def at_rest(run: Run) -> None:
    """Membranes ``[K, N]`` and 'away from rest' flags ``[P]`` for every neuron layer of the graph,
    carved from one allocation (each 64-byte aligned), or those a finished recording left
    (``release``); all marked fresh, every flag cleared."""
    state = run.state
    pooled = run.workspace.take_membranes() if not state.membranes else None
    if pooled is not None:
        state.membranes = pooled
        for j, (v, awake) in pooled.items():
            awake.fill(0)
            state.fresh.add(j)
        return
    layers = [(j, n) for j, n in enumerate(run.graph.nodes) if isinstance(n, NeuronNode) and j not in state.membranes]
    spans = [-(-len(n.thresholds) * n.size // 16) * 16 for _, n in layers]  # floats, whole cache lines
    flags = [-(-(n.size // n.shape[0]) // 64) * 64 for _, n in layers]
    block = memory.aligned_empty((sum(spans) + sum(flags) // 4,), np.float32)
    start, flag_start = 0, sum(spans)
    for (j, n), span, flag in zip(layers, spans, flags):
        v = block[start:start + len(n.thresholds) * n.size].reshape(len(n.thresholds), n.size)
        state.fresh.add(j)
        awake = block[flag_start:flag_start + flag // 4].view(np.uint8)[:n.size // n.shape[0]]
        awake.fill(0)
        state.membranes[j] = (v, awake)
        start, flag_start = start + span, flag_start + flag // 4


def release(state: SimState, workspace: Workspace) -> None:
    """Hand a finished recording's membranes to the workspace for the next recording's ``at_rest``:
    a fresh allocation made runs at 0.5-5% activity 3-7% slower (``state`` must not run again)."""
    if state.membranes:
        workspace.give_membranes(state.membranes)
        state.membranes = {}


def pool(run: Run, j: int, node: PoolNode, inputs: list[Signal]) -> Signal:
    sig = inputs[0]
    step = run.planner.pool(j, node)
    run.steps.append(step)
    if step.kernel == "channel-counts":
        out = np.empty((sig.steps, node.size), dtype=np.float32)
        bits.channel_counts(sig.fired, node.size, out)
    else:
        sig = events_of(sig)
        out = np.zeros((sig.steps, node.size), dtype=np.float32)
        h_in = run.graph.sizes()[node.inputs[0]] // (node.geometry[0] * node.geometry[1])
        kernels.pool_scatter(sig.ptr, sig.idx, sig.val, node.geometry, h_in, out, node.use_max)
    return Events(*kernels.compact(out, node.divisor), integer=node.integer)


def add(run: Run, j: int, node: AddNode, inputs: list[Signal]) -> Signal:
    run.steps.append(run.planner.add(j, node))
    a, b = (dense_of(s, node.size) for s in inputs)
    if node.mode == "add":
        total = a + b
    elif node.mode == "and":
        total = a * b
    else:  # "iand"
        total = (np.float32(1) - a) * b
    if all(isinstance(s, (Events, SpikeBits)) and s.integer for s in inputs):  # spikes in, counts out (SEW, DS)
        ptr, idx, val = kernels.compact(total)
        return Events(ptr, idx, val, integer=bool(np.all(val >= 0)))
    return Current(total)


RUNNERS: dict[type, Callable] = {ConvNode: synapse, LinearNode: synapse, NeuronNode: neuron, PoolNode: pool, AddNode: add}

"""The reference strategy: a plain event-driven simulation in numpy, the oracle of the fast one.

Every signal is a dense float32 array ``[T, N]`` (channels-last, as everywhere in ``sim``). Per
step, a synaptic layer takes the non-zero entries of its input (the events, in increasing neuron
order) and adds ``value * weight`` into every output it reaches (``np.add.at``, which adds in the
order given: event after event, as the fast kernels do); a neuron layer then updates every neuron
with the equations of ``snnres.neurons.functional`` in float32. Nothing is skipped, fused, gathered
or reused, so what it computes is what the equations say; the fast strategy (``EventSimulator(...,
strategy="fast")``) must give the same spikes, membranes, counts and logits bit for bit.

Counts follow the fast path's definitions: ``sops`` (layers fed by integer events) = sum of
value x fan-out; ``macs`` (fed by real values) = fan-outs of the non-zero inputs; ``updates`` =
neuron-steps with input ``X != 0`` or a membrane away from rest ``V != V_r`` (any level).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .graph import AddNode, ConvNode, Graph, LinearNode, NeuronNode, PoolNode


@dataclass
class Dense:
    """A node's output over a chunk: ``data [T, N]``; ``current``: a real-valued input current (a
    synaptic layer's, or a sum of currents) rather than events; ``integer``: events are spike or
    event counts (SOPs), not real values (MACs)."""

    data: np.ndarray
    current: bool = False
    integer: bool = True


def run_chunk(graph: Graph, state, chunk) -> None:
    """Advance ``state`` (``state.SimState``) by the chunk's CSR input events, node by node."""
    steps = len(chunk.ptr) - 1
    first = np.zeros((steps, graph.nodes[0].size), np.float32)
    for t in range(steps):
        lo, hi = chunk.ptr[t], chunk.ptr[t + 1]
        np.add.at(first[t], chunk.idx[lo:hi], chunk.val[lo:hi])
    runners = {ConvNode: conv, LinearNode: linear, NeuronNode: neuron, PoolNode: pool, AddNode: add}
    out = graph.evaluate(Dense(first, integer=chunk.integer),
                         lambda j, node, inputs: runners[type(node)](j, node, inputs, state))
    state.add_output(out.data.sum(axis=0, dtype=np.float64), steps)


def _count(state, node, sig: Dense, weighted: float, plain: float) -> None:
    table, value = (state.sops, weighted) if sig.integer else (state.macs, plain)
    table[node.name] = table.get(node.name, 0.0) + value


def _with_bias(sums: np.ndarray, bias, channels: int) -> np.ndarray:
    if bias is None:
        return sums
    steps = sums.shape[0]
    return (sums.reshape(steps, -1, channels) + bias).reshape(steps, -1)


def conv(j: int, node: ConvNode, inputs: list[Dense], state) -> Dense:
    """``out[t, (oy W_out + ox) C_out + o] += v w[c, ky, kx, o]`` for each event ``v`` at ``(y, x, c)``
    and each tap with ``y + pad - ky dil = oy stride`` (likewise in x) inside the output."""
    x = inputs[0]
    c_in, w_in, h_out, w_out, sh, sw, ph, pw, dh, dw = (int(g) for g in node.geometry)
    _, kh, kw, c_out = node.w_t.shape
    sums = np.zeros((x.data.shape[0], node.size), np.float32)
    weighted = plain = 0.0
    ky, kx = (a.ravel() for a in np.meshgrid(np.arange(kh), np.arange(kw), indexing="ij"))  # taps in order
    for t, row in enumerate(x.data):
        idx = np.flatnonzero(row)
        v = row[idx]
        site, c = np.divmod(idx, c_in)
        y, xx = np.divmod(site, w_in)
        ny, nx = y[:, None] + ph - ky * dh, xx[:, None] + pw - kx * dw  # [events, taps]
        oy, ox = ny // sh, nx // sw
        reached = (ny >= 0) & (ny % sh == 0) & (oy < h_out) & (nx >= 0) & (nx % sw == 0) & (ox < w_out)
        target = (oy * w_out + ox)[:, :, None] * c_out + np.arange(c_out)
        product = v[:, None, None] * node.w_t[c].reshape(len(idx), kh * kw, c_out)
        np.add.at(sums[t], target[reached].ravel(), product[reached].ravel())
        fan = reached.sum(axis=1) * c_out
        weighted += float(np.dot(v.astype(np.float64), fan))
        plain += float(fan.sum())
    _count(state, node, x, weighted, plain)
    return Dense(_with_bias(sums, node.bias, c_out), current=True, integer=False)


def linear(j: int, node: LinearNode, inputs: list[Dense], state) -> Dense:
    """``out[t, o] += v w_t[i, o]`` for each event ``v`` at input ``i``, in input order."""
    x = inputs[0]
    n_out = node.w_t.shape[1]
    sums = np.zeros((x.data.shape[0], n_out), np.float32)
    weighted = plain = 0.0
    for t, row in enumerate(x.data):
        idx = np.flatnonzero(row)
        v = row[idx]
        target = np.broadcast_to(np.arange(n_out), (len(idx), n_out))
        np.add.at(sums[t], target.ravel(), (v[:, None] * node.w_t[idx]).ravel())
        weighted += float(v.astype(np.float64).sum()) * n_out
        plain += float(len(idx) * n_out)
    _count(state, node, x, weighted, plain)
    return Dense(_with_bias(sums, node.bias, n_out), current=True, integer=False)


def pool(j: int, node: PoolNode, inputs: list[Dense], state) -> Dense:
    """Per channel, the sum (average pooling, then divided) or the maximum (of non-negative spikes:
    a position without an event counts as 0) of the events in each window."""
    x = inputs[0]
    c, w_in, h_out, w_out, kh, kw, sh, sw, ph, pw = (int(g) for g in node.geometry)
    out = np.zeros((x.data.shape[0], node.size), np.float32)
    ky, kx = (a.ravel() for a in np.meshgrid(np.arange(kh), np.arange(kw), indexing="ij"))
    for t, row in enumerate(x.data):
        idx = np.flatnonzero(row)
        site, ch = np.divmod(idx, c)
        y, xx = np.divmod(site, w_in)
        ny, nx = y[:, None] + ph - ky, xx[:, None] + pw - kx  # the window (oy, ox) starting at ny, nx
        oy, ox = ny // sh, nx // sw
        inside = (ny >= 0) & (ny % sh == 0) & (oy < h_out) & (nx >= 0) & (nx % sw == 0) & (ox < w_out)
        target = ((oy * w_out + ox) * c + ch[:, None])[inside]
        values = np.broadcast_to(row[idx][:, None], inside.shape)[inside]
        (np.maximum if node.use_max else np.add).at(out[t], target, values)
    if not node.use_max:
        out /= np.float32(node.divisor)
    return Dense(out, integer=node.integer)


def add(j: int, node: AddNode, inputs: list[Dense], state) -> Dense:
    """``a + b`` (currents, or SEW ADD / DS spike counts), ``a b`` (AND), ``(1 - a) b`` (IAND)."""
    a, b = (s.data for s in inputs)
    total = {"add": lambda: a + b, "and": lambda: a * b, "iand": lambda: (np.float32(1) - a) * b}[node.mode]()
    if all(not s.current and s.integer for s in inputs):  # spikes in, spike counts out (SEW, DS)
        return Dense(total, integer=bool(np.all(total >= 0)))
    return Dense(total, current=True, integer=False)


def neuron(j: int, node: NeuronNode, inputs: list[Dense], state) -> Dense:
    """Every neuron, every step, each level ``k`` with its own membrane (``snnres.neurons.functional``):
    ``H = V + (X - (V - V_r)) / tau`` (decay_input) or ``V - (V - V_r) / tau + X``,
    ``S_k = H >= V_th,k`` (``fire="gt"``: ``H > V_th,k``), ``V = V_r`` on a spike (hard reset) or
    ``H - V_th,k`` (soft), else ``H``; the output is the number of levels that fired. (The model's own
    ``V_th`` and test, not the fast kernels' least firing thresholds.)"""
    x = inputs[0].data
    tau, vr = np.float32(node.consts[0]), np.float32(node.consts[1])
    levels = len(node.thresholds)
    if j not in state.membranes:
        state.membranes[j] = (np.full((levels, node.size), vr, np.float32), None)
    v = state.membranes[j][0]
    spikes = np.zeros_like(x)
    updates = 0
    for t in range(x.shape[0]):
        updates += int(np.count_nonzero((x[t] != 0) | (v != vr).any(axis=0)))
        for k in range(levels):
            th = node.consts[3 + k]
            h = v[k] + (x[t] - (v[k] - vr)) / tau if node.decay_input else v[k] - (v[k] - vr) / tau + x[t]
            fired = h > th if node.fire == "gt" else h >= th
            v[k] = np.where(fired, vr if node.hard else h - th, h)
            spikes[t] += fired
    state.spikes[node.name] = state.spikes.get(node.name, 0) + int(spikes.sum(dtype=np.float64))
    state.updates[node.name] = state.updates.get(node.name, 0) + updates
    if state.trains is not None:
        state.trains.setdefault(node.name, []).append(spikes)
    return Dense(spikes)

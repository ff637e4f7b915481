"""The simulator on a CUDA device: PyTorch tensors, CuPy kernels (``kernels/event_sim.cu``).

Every signal is a dense ``[T, N]`` float32 tensor on the device (channels-last, as on the CPU):
a GPU reads a zero as fast as it skips one, so the input stays dense and the *work* is
event-driven. ``snnres_sim_scatter`` runs one warp per 32 inputs; a ballot finds the non-zero
ones and the warp adds each one's kernel slices into the accumulators (atomics), nothing for a
zero. ``snnres_sim_neurons`` updates the neurons, one thread per neuron over the chunk's steps,
counting the updates the CPU simulator would compute (input or a membrane away from rest).
Pooling and shortcut additions use PyTorch. Counts live on the device until the chunk ends (one
copy to the host per chunk).

Rounding: ``1 / tau`` is multiplied, as PyTorch does on the GPU; the CPU simulator divides (as
PyTorch on the CPU). Accumulators are summed by atomics in any order. Both give the dense GPU
run's spikes exactly when the sums are exact (dyadic weights, ``tau`` a power of two).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F

from ..neurons.backends.cupy_cuda import _ptr
from .graph import AddNode, ConvNode, Graph, LinearNode, NeuronNode, PoolNode

THREADS = 256      # a multiple of 32: the kernels' warp primitives assume whole warps
MAX_BLOCKS = 2048  # the kernels loop over what one grid does not cover
MAX_LEVELS = 8     # SNNRES_MAX_LEVELS in event_sim.cu


def kernel_source() -> str:
    return resources.files("snnres._kernels").joinpath("event_sim.cu").read_text()


def check_device(device: torch.device) -> None:
    """Raise if the CuPy kernels cannot run on ``device``, saying what to do instead."""
    from ..neurons.backends import unavailable_reason

    if device.type != "cuda":
        raise ValueError(f"the GPU simulator needs a CUDA device, got {device}; use device='cpu' for the CPU one")
    reason = unavailable_reason("cupy", device)
    if reason is not None:
        raise RuntimeError(f"the GPU simulator cannot run: {reason}")
    major, minor = torch.cuda.get_device_capability(device)
    if major < 6:  # atomicAdd on double
        raise RuntimeError(f"the GPU simulator needs compute capability 6.0 or newer, {device} has {major}.{minor}; "
                           "use device='cpu'")


@functools.lru_cache(maxsize=1)
def _module():
    import cupy

    return cupy.RawModule(code=kernel_source(), options=("--std=c++17", "--fmad=false"))


def launch_shape(n_items: int) -> tuple[int, int]:
    """``(blocks, threads per block)`` for ``n_items`` threads' work (grid-stride beyond that)."""
    return max(1, min(-(-n_items // THREADS), MAX_BLOCKS)), THREADS


def _launch(name: str, device: torch.device, n_items: int, args: tuple) -> None:
    """Kernel ``name`` on PyTorch's current stream of ``device``; ``args`` as the kernel's parameters
    (pointers ``np.uint64``, ``np.int64`` for ``long long``, ``np.int32``, ``np.float32``)."""
    import cupy

    blocks, threads = launch_shape(n_items)
    with cupy.cuda.Device(device.index):
        stream = cupy.cuda.ExternalStream(torch.cuda.current_stream(device).cuda_stream)
        _module().get_function(name)((blocks,), (threads,), args, stream=stream)


@dataclass
class DeviceSignal:
    """A node's output for a chunk: ``data [T, N]``; a synaptic current also has its ``bias [C]``
    (added when read); ``integer``: spike or event counts (SOPs) rather than real values (MACs)."""

    data: torch.Tensor
    bias: torch.Tensor | None = None
    integer: bool = False

    def full(self) -> torch.Tensor:
        if self.bias is None:
            return self.data
        steps = self.data.shape[0]
        return (self.data.view(steps, -1, self.bias.numel()) + self.bias).view(steps, -1)


def _params(graph: Graph, index: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Node ``index``'s arrays on ``device``, copied once per graph."""
    key = (index, str(device))
    if key not in graph.device_params:
        node = graph.nodes[index]
        names = {ConvNode: ("w_t", "bias"), LinearNode: ("w_t", "bias")}
        graph.device_params[key] = {
            name: torch.from_numpy(np.ascontiguousarray(getattr(node, name))).to(device)
            for name in names.get(type(node), ()) if getattr(node, name) is not None
        }
        if isinstance(node, NeuronNode):  # [least firing H per level, then V_th per level]
            both = np.concatenate([node.thresholds, node.consts[3:3 + len(node.thresholds)]])
            graph.device_params[key]["thresholds"] = torch.from_numpy(both.astype(np.float32)).to(device)
    return graph.device_params[key]


def input_signal(chunk, size: int, device: torch.device) -> DeviceSignal:
    """The chunk's CSR events ``(ptr, idx, val)`` as a dense ``[T, size]`` tensor on the device."""
    steps = len(chunk.ptr) - 1
    dense = torch.zeros(steps * size, dtype=torch.float32, device=device)
    if len(chunk.idx):
        rows = np.repeat(np.arange(steps, dtype=np.int64), np.diff(chunk.ptr))
        flat = torch.from_numpy(rows * size + chunk.idx).to(device)
        dense.index_put_((flat,), torch.from_numpy(chunk.val).to(device), accumulate=True)
    return DeviceSignal(dense.view(steps, size), integer=chunk.integer)


def run_synapse(graph, index, inputs, ctx) -> DeviceSignal:
    node, sig = graph.nodes[index], inputs[0]
    params = _params(graph, index, ctx.device)
    x = sig.full().contiguous()
    steps, n_in = x.shape
    out = torch.zeros((steps, node.size), dtype=torch.float32, device=ctx.device)
    if isinstance(node, ConvNode):
        geometry = tuple(int(g) for g in node.geometry)
        k_h, k_w, c_out = node.w_t.shape[1:]
    else:  # a linear layer is a 1x1 convolution over one position
        geometry = (node.w_t.shape[0], 1, 1, 1, 1, 1, 0, 0, 1, 1)
        k_h, k_w, c_out = 1, 1, node.w_t.shape[1]
    counts = ctx.counts[index]
    args = (_ptr(x), _ptr(params["w_t"]), _ptr(out), _ptr(counts), np.int64(steps), np.int64(n_in),
            np.int64(node.size), *(np.int32(g) for g in geometry), np.int32(k_h), np.int32(k_w), np.int32(c_out))
    _launch("snnres_sim_scatter", ctx.device, steps * n_in, args)
    ctx.integer_input[index] = sig.integer
    return DeviceSignal(out, params.get("bias"), integer=False)


def run_neuron(graph, index, inputs, ctx) -> DeviceSignal:
    node, sig = graph.nodes[index], inputs[0]
    if not 1 <= len(node.thresholds) <= MAX_LEVELS:
        raise ValueError(f"the GPU simulator runs 1..{MAX_LEVELS} levels, {node.name!r} has {len(node.thresholds)}")
    state = ctx.state
    if index not in state.membranes:
        rest = torch.full((len(node.thresholds), node.size), float(node.consts[1]), device=ctx.device)
        state.membranes[index] = (rest, None)
    v = state.membranes[index][0]
    current = sig.data.contiguous()
    steps = current.shape[0]
    channels = node.shape[0]
    if sig.bias is not None and sig.bias.numel() != channels:
        current, bias = sig.full().contiguous(), None
    else:
        bias = sig.bias
    spikes = torch.empty_like(current)
    tau, rest = float(node.consts[0]), np.float32(node.consts[1])
    args = (_ptr(current), _ptr(bias), _ptr(v), _ptr(spikes), _ptr(ctx.counts[index]),
            _ptr(_params(graph, index, ctx.device)["thresholds"]), np.int32(len(node.thresholds)),
            np.int64(steps), np.int64(node.size), np.int32(channels), np.float32(1.0) / np.float32(tau), rest,
            np.int32(node.decay_input), np.int32(node.hard))
    _launch("snnres_sim_neurons", ctx.device, node.size, args)
    if state.trains is not None:
        state.trains.setdefault(node.name, []).append(spikes.cpu().numpy())
    return DeviceSignal(spikes, integer=True)


def run_pool(graph, index, inputs, ctx) -> DeviceSignal:
    node, sig = graph.nodes[index], inputs[0]
    c, w_in, h_out, w_out, k_h, k_w, s_h, s_w, p_h, p_w = (int(g) for g in node.geometry)
    x = sig.full()
    steps = x.shape[0]
    frames = x.reshape(steps, -1, w_in, c).permute(0, 3, 1, 2)
    if node.use_max:  # a position without an event counts as 0 (the CPU simulator's rule)
        pooled = F.max_pool2d(frames, (k_h, k_w), (s_h, s_w), (p_h, p_w)).clamp_min(0)
    else:  # the window's sum, divided (a true division on the GPU too; tensor / scalar would multiply by 1/d)
        pooled = F.avg_pool2d(frames, (k_h, k_w), (s_h, s_w), (p_h, p_w), divisor_override=int(node.divisor))
    out = pooled.permute(0, 2, 3, 1).reshape(steps, h_out * w_out * c)
    return DeviceSignal(out, integer=node.integer)


def run_add(graph, index, inputs, ctx) -> DeviceSignal:
    node = graph.nodes[index]
    a, b = (s.full() for s in inputs)
    if node.mode == "add":
        total = a + b
    elif node.mode == "and":
        total = a * b
    else:  # "iand"
        total = (1 - a) * b
    if all(s.integer for s in inputs):  # spikes in, spike counts out (SEW, DS)
        return DeviceSignal(total, integer=bool((total >= 0).all()))
    return DeviceSignal(total)


RUNNERS = {ConvNode: run_synapse, LinearNode: run_synapse, NeuronNode: run_neuron, PoolNode: run_pool,
           AddNode: run_add}


@dataclass
class _Chunk:
    device: torch.device
    state: object                   # state.SimState
    counts: torch.Tensor            # [nodes, 2] float64: (SOPs, MACs) or (spikes, updates)
    integer_input: dict[int, bool]


def run_chunk(graph: Graph, state, chunk, device: torch.device) -> None:
    """``simulator.run_chunk`` on the device: every node in order over all the chunk's steps."""
    ctx = _Chunk(device, state, torch.zeros((len(graph.nodes), 2), dtype=torch.float64, device=device), {})
    first = input_signal(chunk, graph.nodes[0].size, device)
    out = graph.evaluate(first, lambda j, node, inputs: RUNNERS[type(node)](graph, j, inputs, ctx))
    total = out.full().sum(dim=0, dtype=torch.float64)
    counts = ctx.counts.cpu().numpy()
    for j, node in enumerate(graph.nodes):
        if isinstance(node, (ConvNode, LinearNode)):
            table, value = (state.sops, counts[j, 0]) if ctx.integer_input[j] else (state.macs, counts[j, 1])
            table[node.name] = table.get(node.name, 0.0) + float(value)
        elif isinstance(node, NeuronNode):
            state.spikes[node.name] = state.spikes.get(node.name, 0) + int(counts[j, 0])
            state.updates[node.name] = state.updates.get(node.name, 0) + int(counts[j, 1])
    state.add_output(total.cpu().numpy(), len(chunk.ptr) - 1)

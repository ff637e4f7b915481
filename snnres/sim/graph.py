"""The simulator's network description: a list of nodes in execution order, BatchNorm folded.

Every node reads the outputs of earlier nodes (``inputs``, indices into the list) and produces
one signal per time step, of one of two kinds:

- *events*: a sparse set of (neuron index, value) pairs: spikes (integer counts: 1 for LIF,
  1..K for an MLF neuron firing K levels, the event count of an input pixel), or the non-zero
  outputs of an average pool (real values);
- *current*: a dense accumulator, one float per neuron (what a synaptic layer delivers, and
  MS-ResNet's real-valued residual stream, which the blocks add their currents into).

Shapes are ``(C, H, W)`` or ``(F,)``; a node's neurons are stored channels-last (see
``kernels.py``). Parameters are float32 numpy arrays laid out for the scatter kernels.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .memory import HugePageArena, aligned, aligned_empty


class UnsupportedLayerError(TypeError):
    """The model holds a layer (or layer arrangement) the event-driven simulator cannot run."""


@dataclass
class Node:
    name: str                        # the module's qualified name in the model ("" for the input)
    inputs: tuple[int, ...]
    shape: tuple[int, ...]

    emits = "events"                 # or "current"
    integer = True                   # events are spike counts (SOPs), not real values (MACs)

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass
class InputNode(Node):
    """The sensor: per step, the event count of every (polarity, y, x) pixel."""


@dataclass
class ConvNode(Node):
    """2-D convolution, ``w_t [C_in, k_h, k_w, C_out]``; geometry as in ``kernels.conv_scatter``."""

    w_t: np.ndarray = None
    bias: np.ndarray | None = None   # [C_out], folded BN shift included
    geometry: np.ndarray = None
    w_blocks: dict[int, np.ndarray] = field(default_factory=dict)  # gather.conv_blocks per width, when needed
    emits = "current"


@dataclass
class LinearNode(Node):
    """Fully connected layer, ``w_t [in, out]`` (rows in the input's channels-last order)."""

    w_t: np.ndarray = None
    bias: np.ndarray | None = None
    emits = "current"


@dataclass
class NeuronNode(Node):
    """LIF (one level) or MLF (K levels) neurons; state ``[K, N]`` lives in the simulation state."""

    thresholds: np.ndarray = None    # float32 [K]: the least H that fires (S = H >= threshold; trace.firing_thresholds)
    consts: np.ndarray = None        # float32 [tau, V_rest, 0, V_th per level (what a soft reset subtracts)]
    decay_input: bool = True
    hard: bool = True
    always: bool = False             # update every neuron every step (bias, or V_th <= V_rest)
    fire: str = "ge"                 # the model's test: "ge" S = H >= V_th, "gt" S = H > V_th


@dataclass
class PoolNode(Node):
    """Average or max pooling per channel; ``geometry`` as in ``kernels.pool_scatter``."""

    use_max: bool = False
    divisor: float = 1.0
    geometry: np.ndarray = None


@dataclass
class AddNode(Node):
    """``a + b`` of two currents (membrane shortcut) or of two spike trains (SEW ADD),
    ``a * b`` (SEW AND) or ``(1 - a) * b`` (SEW IAND) of spikes."""

    mode: str = "add"


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    output: int = 0                  # the node whose time-mean is the logits
    flat_chw: dict[int, tuple[int, int, int]] = field(default_factory=dict)  # flattened (C, H, W) views
    scratch: threading.local = field(default_factory=threading.local, repr=False, compare=False)
    device_params: dict = field(default_factory=dict, repr=False, compare=False)  # cuda.py's weights per device
    arena: HugePageArena = field(default_factory=HugePageArena, repr=False, compare=False)  # weights read at random
    memo: dict = field(default_factory=dict, repr=False, compare=False)  # what depends on the nodes only (readers,
    # plans), found once and forgotten when a node is added

    def growing(self, key, n: int, dtype, fill=None) -> np.ndarray:
        """This thread's reusable 1-D array for ``key``, cut to ``n`` entries (made anew, twice as large,
        when too short): for arrays whose size follows the activity. Uninitialised, or ``fill`` in
        every entry of a new array (its readers must not write it)."""
        store = self.scratch.__dict__
        arr = store.get(key)
        if arr is None or arr.size < n or arr.dtype != dtype:
            arr = store[key] = aligned_empty((max(n, 2 * (0 if arr is None else arr.size)),), dtype)
            if fill is not None:
                arr.fill(fill)
        return arr[:n]

    def buffer(self, key, shape: tuple[int, ...], dtype, zero: bool) -> np.ndarray:
        """This thread's reusable array for ``key`` (zeroed if ``zero``, else stale): fresh arrays
        cost a page fault per 4 KiB on first write, more than the arithmetic at low activity."""
        store = self.scratch.__dict__
        arr = store.get(key)
        if arr is None or arr.shape != shape or arr.dtype != dtype:
            arr = store[key] = aligned_empty(shape, dtype)
            zero = True
        if zero:
            arr.fill(0)
        return arr

    def add(self, node: Node) -> int:
        for i in node.inputs:
            if not 0 <= i < len(self.nodes):
                raise ValueError(f"node {node.name!r} reads node {i}, which does not exist yet")
        self.nodes.append(node)
        self.memo.clear()
        return len(self.nodes) - 1

    def consumers(self, index: int) -> list[int]:
        """The nodes reading node ``index``, in order (found for all nodes at once: asked for every conv
        of every run, a scan per call cost O(nodes^2))."""
        readers = self.memo.get("readers")
        if readers is None:
            readers = self.memo["readers"] = [[] for _ in self.nodes]
            for j, node in enumerate(self.nodes):
                for i in dict.fromkeys(node.inputs):
                    readers[i].append(j)
        return readers[index]

    def last_use(self) -> list[int]:
        """For each node, the index of the last node reading it (itself if none); found once."""
        last = self.memo.get("last_use")
        if last is None:
            last = self.memo["last_use"] = list(range(len(self.nodes)))
            for j, node in enumerate(self.nodes):
                for i in node.inputs:
                    last[i] = max(last[i], j)
        return last

    def sizes(self) -> list[int]:
        """Every node's output size (neurons or features per step); found once."""
        sizes = self.memo.get("sizes")
        if sizes is None:
            sizes = self.memo["sizes"] = [n.size for n in self.nodes]
        return sizes

    def evaluate(self, first, run: Callable[[int, Node, list], object]):
        """The output node's signal: ``first`` for the input node, then ``run(j, node, inputs)`` for
        every node in order; a signal is dropped once its last reader has run."""
        signals = {0: first}
        last_use = self.last_use()
        for j, node in enumerate(self.nodes[1:], start=1):
            signals[j] = run(j, node, [signals[i] for i in node.inputs])
            for i in node.inputs:
                if last_use[i] <= j and i != self.output:
                    signals.pop(i, None)
        return signals[self.output]


def as_f32(t: torch.Tensor) -> np.ndarray:
    """float32, C-contiguous, 64-byte aligned (``memory.aligned``)."""
    return aligned(np.ascontiguousarray(t.detach().cpu().float().numpy()))


def spatial_out(size: int, k: int, s: int, p: int, d: int = 1) -> int:
    """Output length of a conv/pool: ``floor((size + 2p - d (k - 1) - 1) / s) + 1``."""
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def chw_to_hwc_rows(in_features: int, chw: tuple[int, int, int] | None) -> np.ndarray:
    """Row order that maps our channels-last flat index to torch's flatten(C, H, W) index."""
    if chw is None:
        return np.arange(in_features)
    c, h, w = chw
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)

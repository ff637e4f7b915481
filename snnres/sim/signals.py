"""What a node of the fast strategy hands its readers for a chunk of ``T`` steps: one of four kinds.

- ``Events``: per step the non-zero outputs as CSR ``(ptr [T+1], idx, val)``, ``idx`` increasing
  within a step (spikes: level counts; input pixels: event counts; an average pool: real values).
- ``Current``: a dense float32 current ``[T, N]`` (a synaptic layer's, or the sum of MS-ResNet's
  residual stream). A scattered conv's is valid only where ``touched [T, P]`` (positions that got
  input; the scatter zeroes a position when it first reaches it), and its ``bias`` per channel is
  added when it is read.
- ``SpikeBits``: a fused or bit-plane neuron pass's spikes, one bit plane per level ``[K, T, N / 64]``
  (neuron ``i`` is bit ``i % 64`` of word ``i // 64``); ``ptr`` counts the neurons that fired per step.
- ``PendingGather``: a gathered conv's events indexed by input site, not yet summed: the LIF/MLF
  layers reading it sum them in their fused pass (``plan.Planner`` makes one only for those).

``events_of`` and ``dense_of`` give any kind as events or as a dense array; a conversion a kind
may be asked for twice (spike bits listed, a scattered current completed) is made once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from . import bits, kernels
from .graph import ConvNode


@dataclass
class Events:
    ptr: np.ndarray
    idx: np.ndarray
    val: np.ndarray
    integer: bool = True  # spike or event counts (synaptic layers count SOPs), not real values (MACs)

    @property
    def steps(self) -> int:
        return len(self.ptr) - 1


@dataclass
class Current:
    data: np.ndarray
    touched: np.ndarray | None = None
    bias: np.ndarray | None = None
    scattered: bool = False  # valid only where touched, until ``completed``
    integer = False

    @property
    def steps(self) -> int:
        return self.data.shape[0]

    @cached_property
    def completed(self) -> np.ndarray:
        """``data`` with the untouched positions of a scattered current zeroed (in place, once)."""
        if self.scattered:
            steps, positions = self.touched.shape
            self.data.reshape(steps, positions, -1)[self.touched == 0] = 0
        return self.data


@dataclass
class SpikeBits:
    fired: np.ndarray
    ptr: np.ndarray
    integer = True

    @property
    def steps(self) -> int:
        return self.fired.shape[1]

    @cached_property
    def events(self) -> Events:
        """The spike list: per step the neurons that fired, with the number of levels that fired."""
        return Events(self.ptr, *bits.emit_bits(self.fired, self.ptr))


@dataclass
class PendingGather:
    node: ConvNode
    val: np.ndarray
    binary: bool  # every val is 1: sums without multiplies
    site_ptr: np.ndarray
    code: np.ndarray
    weights: np.ndarray  # gather.conv_blocks of the conv's weights
    width: int
    joined: bool
    rows: bool
    bias: np.ndarray | None
    integer = False

    @property
    def steps(self) -> int:
        return self.site_ptr.shape[0]


Signal = Events | Current | SpikeBits | PendingGather


def events_of(sig: Signal) -> Events:
    """``sig`` as events (a current's non-zero entries, bias included, as real values)."""
    if isinstance(sig, Events):
        return sig
    if isinstance(sig, SpikeBits):
        return sig.events
    return Events(*kernels.compact(dense_of(sig, sig.data.shape[1])), integer=False)


def dense_of(sig: Signal, size: int) -> np.ndarray:
    """The dense ``[T, size]`` float32 values a node delivers, bias included."""
    if isinstance(sig, PendingGather):
        raise TypeError("a pending gather is summed by the neuron layer it feeds, never read densely")
    if isinstance(sig, Current):
        data = sig.completed
        if sig.bias is None:
            return data
        return (data.reshape(sig.steps, -1, sig.bias.size) + sig.bias).reshape(sig.steps, size)
    sig = events_of(sig)
    out = np.zeros((sig.steps, size), dtype=np.float32)
    kernels.densify(sig.ptr, sig.idx, sig.val, out)
    return out


def neuron_input(sig: Signal, size: int, channels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(current [T, N], touched [T, P], bias or None)`` for the neuron kernels: a synaptic layer's
    current as it is (read only where touched), anything else densified."""
    if isinstance(sig, Current) and sig.touched is not None:
        return sig.data, sig.touched, sig.bias
    current = dense_of(sig, size)
    touched = (current.reshape(sig.steps, -1, channels) != 0).any(axis=2).astype(np.uint8)
    return current, touched, None

"""The graph under construction: NIR nodes, edges, and the symbolic values that flow between them.

A tensor of the traced model is described by a ``Value``: the NIR nodes whose outputs, summed,
give it (NIR sums every edge into a node, so a residual ``x + f(x)`` is just two sources), its
per-sample, per-time-step shape, and labels for its leading dimensions (time ``T``, batch ``B``,
a merged ``T*B``, or a singleton ``1``) so that reshapes between ``[T, B, ...]`` and the
time-merged ``[T*B, ...]`` can be told apart from reshapes of the features.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import nir
import numpy as np


@dataclass(frozen=True)
class Value:
    sources: tuple[str, ...]   # NIR nodes whose summed outputs are this tensor (one per time step)
    shape: tuple[int, ...]     # features of one sample at one time step
    lead: tuple[str, ...]      # labels of the leading dims: "T", "B", "1" or merged like "T*B"
    readout: str | None = None  # "mean" once averaged over time (only linear maps may follow)

    def with_(self, **changes) -> "Value":
        fields = dict(sources=self.sources, shape=self.shape, lead=self.lead, readout=self.readout)
        fields.update(changes)
        return Value(**fields)


class GraphBuilder:
    """Named NIR nodes and edges; ``connect`` turns a ``Value`` into edges into a node."""

    def __init__(self, dtype: np.dtype):
        self.dtype = np.dtype(dtype)
        self.nodes: dict[str, nir.NIRNode] = {}
        self.edges: list[tuple[str, str]] = []
        self._scaled: dict[tuple[str, int], str] = {}

    def name(self, base: str) -> str:
        """A fresh node name from a layer path (``layer1.0.conv1`` -> ``layer1_0_conv1``)."""
        base = re.sub(r"\W", "_", base).strip("_") or "node"
        if base[0].isdigit():
            base = "n" + base
        name, k = base, 1
        while name in self.nodes:
            name, k = f"{base}_{k}", k + 1
        return name

    def add(self, base: str, node: nir.NIRNode, inputs: Value | None = None) -> str:
        name = self.name(base)
        self.nodes[name] = node
        if inputs is not None:
            self.connect(inputs, name)
        return name

    def connect(self, value: Value, dst: str) -> None:
        """One edge per source; a source counted k times (``x + x``) goes through a Scale by k."""
        for src, k in Counter(value.sources).items():
            if k > 1:
                key = (src, k)
                if key not in self._scaled:
                    scale = np.full(value.shape, float(k), dtype=self.dtype)
                    self._scaled[key] = self.add(f"{src}_times{k}", nir.Scale(scale=scale))
                    self.edges.append((src, self._scaled[key]))
                src = self._scaled[key]
            self.edges.append((src, dst))

    def has_consumers(self, name: str) -> bool:
        return any(src == name for src, _ in self.edges)

    def prune(self, keep: str) -> None:
        """Drop nodes that do not lead to ``keep`` (branches whose result the model discarded)."""
        needed, frontier = {keep}, [keep]
        while frontier:
            dst = frontier.pop()
            for src, d in self.edges:
                if d == dst and src not in needed:
                    needed.add(src)
                    frontier.append(src)
        self.nodes = {k: v for k, v in self.nodes.items() if k in needed}
        self.edges = [(s, d) for s, d in self.edges if s in needed and d in needed]

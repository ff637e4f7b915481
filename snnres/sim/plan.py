"""The fast strategy's plan: which kernel runs each layer of a chunk, why, and the numbers that chose it.

All of the fast strategy's choices are made here (``Planner``), against the break-even points of
``CostModel`` (measured on the benchmark network, ``benchmarks/README.md``); every choice gives the
same spikes, membranes and counts, so a plan changes the speed only. What is fixed by the network
is found once per graph; what depends on the activity (how many events reach a conv) per chunk.

- A conv fed by events is **scattered** (``kernels.conv_scatter``: each event adds its kernel
  slice into the outputs it reaches: a cost per event and tap) or **gathered**
  (``gather.conv_gather``: each output position sums its window's events with a block of output
  channels in registers: a cost per window, so it pays from ~8 events a window), given whole
  blocks of output channels and no x-dilation.
- A gathered conv whose every reader is a LIF/MLF layer of whole register blocks is **fused** with
  them (``gather+neuron``: ``fused.gather_neuron``): the current never reaches memory and the
  neuron pass is saved. That pays from half an event a window once 0.15% of the inputs are active
  per step, and at any number of events a window from 0.4%, because a leaky neuron touched once
  stays away from rest for many steps, and the two-pass neuron layer then visits it at ~3x the
  fused pass's cost.
- A gathered 3x3 window is summed in one loop (**joined**) from 1.5 events a window; a fused
  block of more than 256 KB of weights is summed in **row passes** (a third of them in use at a time).
- A LIF/MLF layer not fused runs position by position with its spikes as bit planes
  (``fused.neuron_bits``) when its channels are whole 32-channel blocks and it has at most 8 levels,
  else step by step (``kernels.neuron_chunk``).
- A global average pool of one-level spike bits in whole 64-channel words counts the bits
  (``bits.channel_counts``); any other pool scatters the events (``kernels.pool_scatter``).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import fused, gather
from .graph import AddNode, ConvNode, Graph, LinearNode, NeuronNode, PoolNode


@dataclass(frozen=True)
class CostModel:
    """Break-even points of the choices (events a window: input events x taps per output window)."""

    gather_window: float = 8.0          # conv_gather alone, events a window
    fused_window: float = 0.5           # gather+neuron, events a window ...
    fused_density: float = 0.0015       # ... once this fraction of the inputs is active per step
    fused_any_density: float = 0.004    # gather+neuron at any events a window from this density
    joined_window: float = 1.5          # a 3x3 window in one loop, events a window
    row_pass_bytes: int = 256 << 10     # fused blocks with more weights are summed in row passes


ALWAYS_GATHER = CostModel(gather_window=0, fused_window=0, fused_density=0, fused_any_density=0)
NEVER_GATHER = CostModel(gather_window=float("inf"), fused_window=float("inf"), fused_any_density=float("inf"))


@dataclass(frozen=True)
class Step:
    """One layer's kernel for one chunk; ``why`` says what chose it (``str(step)``)."""

    layer: str
    kernel: str
    why: str              # a template filled with ``args`` when printed (a plan is made per chunk)
    args: tuple = ()
    width: int = 0        # output channels per register block (gathered convs, bit-plane neuron passes)
    joined: bool = False  # a 3x3 window summed in one loop
    rows: bool = False    # a fused block summed in row passes

    @property
    def reason(self) -> str:
        return self.why.format(*self.args)

    def __str__(self) -> str:
        return f"{self.layer or '<input>':32s} {self.kernel:14s} {self.reason}"


@dataclass
class Plan:
    """The steps of one chunk, in execution order."""

    steps: list[Step]

    def __str__(self) -> str:
        return "\n".join([f"{'layer':32s} {'kernel':14s} why"] + [str(s) for s in self.steps])

    def kernels(self) -> dict[str, str]:
        """Layer -> kernel (the last step of a layer name that several nodes share)."""
        return {s.layer: s.kernel for s in self.steps}


SEEN = "{0:.3g} events/window, density {1:.3%}"


def block_width(channels: int, levels: int = 1) -> int:
    """The register block of a fused pass over ``channels`` outputs: 128 for one level (16 vectors of
    sums and membranes still fit the 32 AVX-512 registers), else 64, else 32; 0 if none divides."""
    widths = (gather.WIDE, gather.BLOCK, gather.NARROW) if levels == 1 else (gather.BLOCK, gather.NARROW)
    return next((w for w in widths if channels % w == 0), 0)


class Planner:
    """The plan of a graph under a ``CostModel``: the static facts once, the per-chunk choices on demand."""

    def __init__(self, graph: Graph, costs: CostModel = CostModel()):
        self.graph, self.costs = graph, costs
        self.bits_width = {j: block_width(n.shape[0], len(n.thresholds)) if len(n.thresholds) <= fused.MAX_LEVELS
                           else 0 for j, n in enumerate(graph.nodes) if isinstance(n, NeuronNode)}
        self.convs = {j: self._conv_facts(j, n) for j, n in enumerate(graph.nodes) if isinstance(n, ConvNode)}

    def _conv_facts(self, j: int, node: ConvNode) -> dict:
        readers = self.graph.consumers(j)
        fuses = bool(readers) and all(self.bits_width.get(r, 0) > 0 for r in readers)
        levels = max((len(self.graph.nodes[r].thresholds) for r in readers if r in self.bits_width), default=1)
        c_in, kh, kw, c_out = node.w_t.shape
        width = block_width(c_out, levels) if fuses else gather.BLOCK
        _, _, h_out, w_out, sh, sw, _, _, _, dw = (int(g) for g in node.geometry)
        shape_ok = c_out >= width and dw == 1
        why_not = "" if shape_ok else (f"x-dilation {dw}" if dw != 1 else f"{c_out} outputs < a {width}-channel block")
        return dict(fuses=fuses, width=width, shape_ok=shape_ok, why_not=why_not, taps=kh * kw, c_in=c_in,
                    area=h_out * w_out * sh * sw, rows=c_in * kh * kw * width * 4 > self.costs.row_pass_bytes,
                    three=kh == 3)

    def synapse(self, j: int, node, n_events: int, steps: int) -> Step:
        """Scatter, gather, or gather with the neuron pass after it (``gather+neuron``)."""
        if isinstance(node, LinearNode):
            return Step(node.name, "scatter", "a linear layer: each event adds its weight row")
        f, c = self.convs[j], self.costs
        if not f["shape_ok"]:
            return Step(node.name, "scatter", "not gathered: {}", (f["why_not"],))
        windows = steps * f["area"]
        per_window, density = n_events * f["taps"] / windows, n_events / (windows * f["c_in"])
        joined = f["three"] and per_window >= c.joined_window
        if f["fuses"]:
            if density >= c.fused_density and (per_window >= c.fused_window or density >= c.fused_any_density):
                rows = f["rows"]
                return Step(node.name, "gather+neuron", SEEN + ": fuses from {2:g}/window at >= {3:.2%} or from "
                            "{4:.2%}{5}", (per_window, density, c.fused_window, c.fused_density, c.fused_any_density,
                                           "; row passes" if rows else "; joined rows" if joined else ""),
                            f["width"], joined and not rows, rows)
            return Step(node.name, "scatter", SEEN + ": the fused pass pays from {2:g}/window at >= {3:.2%} or from "
                        "{4:.2%}", (per_window, density, c.fused_window, c.fused_density, c.fused_any_density))
        if per_window >= c.gather_window:
            return Step(node.name, "gather", SEEN + ": gathers from {2:g}/window{3}",
                        (per_window, density, c.gather_window, "; joined rows" if joined else ""), f["width"], joined)
        return Step(node.name, "scatter", SEEN + ": gathers from {2:g}/window", (per_window, density, c.gather_window))

    def neuron(self, j: int, node: NeuronNode, fused_with: str | None) -> Step:
        """``fused`` (the gathered conv ``fused_with`` summed in this layer's pass), ``bits`` or ``step``."""
        width, levels = self.bits_width[j], len(node.thresholds)
        if fused_with is not None:
            return Step(node.name, "fused", "summed with {!r} in one pass", (fused_with,), width)
        if width:
            return Step(node.name, "bits", "position by position, {}-channel blocks, spikes as bit planes", (width,),
                        width)
        if levels > fused.MAX_LEVELS:
            return Step(node.name, "step", "step by step ({} levels > {})", (levels, fused.MAX_LEVELS))
        return Step(node.name, "step", "step by step ({} channels are not whole 32-channel blocks)", (node.shape[0],))

    def pool(self, j: int, node: PoolNode) -> Step:
        """``channel-counts`` for a global average pool of one-level spike bits, else ``scatter``."""
        src = node.inputs[0]
        c_n, w_in, h_out, w_out, kh, kw, sh, sw, ph, pw = (int(g) for g in node.geometry)
        size_in = self.graph.nodes[src].size
        bits_in = self.bits_width.get(src, 0) > 0 and len(self.graph.nodes[src].thresholds) == 1
        if (bits_in and c_n % 64 == 0 and h_out == w_out == 1 and ph == pw == 0 and kh * w_in * c_n >= size_in
                and kw >= w_in and not node.use_max):
            return Step(node.name, "channel-counts", "a global average of spike bits: counted per channel")
        return Step(node.name, "scatter", "each event adds into the windows holding it")

    def add(self, j: int, node: AddNode) -> Step:
        return Step(node.name, "elementwise", node.mode)

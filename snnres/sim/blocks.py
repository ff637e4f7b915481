"""Handlers for the blocks of ``snnres.models`` (registered by class name: nothing is imported).

- ``SeqToANN`` (time-merged layer): its module, per step.
- ``SpikingNet``: stem -> stages -> head. ``SpikingHead``: neuron -> global pool -> FC, the
  time-mean of the output being the logits (all linear after the neuron, so the order of the
  mean and the FC does not matter).
- ``MembraneShortcutBlock`` (MS-ResNet): the real-valued residual stream ``x`` is a current
  accumulator; the branch ``neuron -> conv -> BN -> neuron -> conv -> BN`` delivers its current
  into it: ``x + r`` (a projection shortcut reads the stream as real-valued input: MACs).
"""

from __future__ import annotations

from torch import nn

from .graph import AddNode, Graph, UnsupportedLayerError
from .trace import child_name, register, sequential, trace

MODELS = "snnres.models"


def run_sequence(pairs: list[tuple[str, nn.Module]], graph: Graph, src: int) -> int:
    """Trace ``(qualified name, module)`` pairs as one Sequential (BN folded into the layer before)."""
    seq = nn.Sequential()
    for i, (_, module) in enumerate(pairs):
        seq.add_module(str(i), module)
    first = len(graph.nodes)
    out = sequential(seq, "", graph, src)
    names = [n for n, _ in pairs]
    for node in graph.nodes[first:]:  # back to the model's own names
        head, _, rest = node.name.partition(".")
        node.name = names[int(head)] + (f".{rest}" if rest else "")
    return out


@register("snnres.layers.time.SeqToANN")
def time_merged(module: nn.Module, name: str, graph: Graph, src: int) -> int:
    return run_sequence([(child_name(name, "module"), module.module)], graph, src)


@register(f"{MODELS}.common.SpikingNet")
def spiking_net(model: nn.Module, name: str, graph: Graph, src: int) -> int:
    src = trace(model.stem, child_name(name, "stem"), graph, src)
    src = trace(model.stages, child_name(name, "stages"), graph, src)
    return trace(model.head, child_name(name, "head"), graph, src)


@register(f"{MODELS}.common.SpikingHead")
def spiking_head(head: nn.Module, name: str, graph: Graph, src: int) -> int:
    pairs = [(child_name(name, key), getattr(head, key)) for key in ("neuron", "pool", "dropout", "fc")]
    return run_sequence(pairs, graph, src)


@register(f"{MODELS}.ms_resnet.MembraneShortcutBlock")
def membrane_shortcut_block(block: nn.Module, name: str, graph: Graph, src: int) -> int:
    branch = [(child_name(name, key), getattr(block, key)) for key in ("neuron1", "conv1", "bn1", "neuron2",
                                                                        "conv2", "last_bn")]
    r = run_sequence(branch, graph, src)
    shortcut = trace(block.shortcut, child_name(name, "shortcut"), graph, src)
    return add(graph, name, r, shortcut, "add")


def add(graph: Graph, name: str, a: int, b: int, mode: str) -> int:
    sa, sb = graph.nodes[a].shape, graph.nodes[b].shape
    if sa != sb:
        raise UnsupportedLayerError(f"block {name!r} adds shapes {sa} and {sb}")
    node = AddNode(f"{name}.add", (a, b), sa, mode=mode)
    node.emits = "current" if "current" in (graph.nodes[a].emits, graph.nodes[b].emits) else "events"
    node.integer = graph.nodes[a].integer and graph.nodes[b].integer
    return graph.add(node)


@register(f"{MODELS}.ds_resnet.DualSpikeBlock")
def dual_spike_block(block: nn.Module, name: str, graph: Graph, src: int) -> int:
    """DS-ResNet: ``MLF(BN(conv(MLF(BN(conv(x)))))) + shortcut(x)``: spike counts add up (0..6)."""
    branch = [(child_name(name, key), getattr(block, key)) for key in ("conv1", "bn1", "neuron1", "conv2",
                                                                        "last_bn", "neuron2")]
    r = run_sequence(branch, graph, src)
    shortcut = trace(block.shortcut, child_name(name, "shortcut"), graph, src)
    return add(graph, name, r, shortcut, "add")


@register(f"{MODELS}.sew_resnet.SpikeElementWiseBlock")
def spike_element_wise_block(block: nn.Module, name: str, graph: Graph, src: int) -> int:
    """SEW: ``g(A, shortcut)`` on spikes, ADD ``A + S``, AND ``A * S``, IAND ``(1 - A) * S``;
    the plain block (``connect=None``) is the branch alone."""
    a = trace(block.branch, child_name(name, "branch"), graph, src)
    if block.shortcut is None:
        return a
    if block.connect not in ("ADD", "AND", "IAND"):
        raise UnsupportedLayerError(f"block {name!r}: connect function {block.connect!r} is not supported")
    shortcut = trace(block.shortcut, child_name(name, "shortcut"), graph, src)
    return add(graph, name, a, shortcut, block.connect.lower())


@register(f"{MODELS}.spiking_cnn.ConvSpikeBlock")
def conv_spike_block(block: nn.Module, name: str, graph: Graph, src: int) -> int:
    pairs = [(child_name(name, key), getattr(block, key)) for key in ("conv", "bn", "neuron", "pool")]
    return run_sequence(pairs, graph, src)

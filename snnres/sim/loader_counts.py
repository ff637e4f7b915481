"""``energy-report --event-driven``: the simulator's exact counts over a data loader, as an ``EnergyReport``.

Every sample (``[T, C, H, W]`` frames, or an image repeated over ``T`` steps) runs event by event;
the report has the hook-based report's rows (spikes, spikes per neuron, firing rate, SOPs, MACs),
the same ANN comparison (every synaptic layer dense, once), and per neuron layer the neuron updates
the simulator computed. MACs here are a real-valued input's *non-zero* values times their fan-out
(what an event-driven machine multiplies), where the hook-based report counts every input.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ..energy import EnergyModel, EnergyReport, build_report
from .graph import ConvNode, Graph, LinearNode, NeuronNode
from .simulator import EventSimulator


def dense_synapses(graph: Graph, j: int) -> float:
    """The synapses of conv or linear node ``j``: what one step of the layer costs an ANN in MACs
    (every input times its fan-out; a border input reaches fewer outputs)."""
    node = graph.nodes[j]
    if isinstance(node, LinearNode):
        return float(node.w_t.shape[0] * node.w_t.shape[1])
    c_in, w_in, h_out, w_out, sh, sw, ph, pw, dh, dw = (int(g) for g in node.geometry)
    _, kh, kw, c_out = node.w_t.shape
    h_in = graph.nodes[node.inputs[0]].shape[1]

    def reach(size: int, k: int, s: int, p: int, d: int, n_out: int) -> int:  # (input, output) pairs along one axis
        return sum(1 for i in range(size) for t in range(k)
                   if (i + p - t * d) >= 0 and (i + p - t * d) % s == 0 and (i + p - t * d) // s < n_out)

    return float(c_in * c_out * reach(h_in, kh, sh, ph, dh, h_out) * reach(w_in, kw, sw, pw, dw, w_out))


def event_driven_report(model: nn.Module, loader: Iterable, T: int, max_batches: int | None = None,
                        energy: EnergyModel | None = None, device: str | torch.device = "cpu") -> EnergyReport:
    """Run every sample of ``loader`` through the simulator on ``device``; the report per sample."""
    sim = EventSimulator(model.cpu(), device=device)  # it reads the weights on the CPU
    spikes: dict[str, float] = {}
    updates: dict[str, float] = {}
    sops: dict[str, float] = {}
    macs: dict[str, float] = {}
    samples, shape, steps = 0, None, 0
    for b, (inputs, _) in enumerate(loader):
        if max_batches is not None and b >= max_batches:
            break
        for x in inputs:
            out = sim.run(x if x.ndim == 4 else x.unsqueeze(0).expand(T, *x.shape))
            for total, counts in ((spikes, out.spikes_per_layer), (updates, out.neuron_updates), (sops, out.sops),
                                  (macs, out.macs)):
                for layer, value in counts.items():
                    total[layer] = total.get(layer, 0) + value
            samples, shape, steps = samples + 1, tuple(x.shape[-3:]), steps + out.steps
    if samples == 0:
        raise ValueError("the loader yielded no samples: nothing to count")
    graph = sim.graph(shape)
    neurons, synapses = {}, {}
    for j, node in enumerate(graph.nodes):
        if isinstance(node, NeuronNode) and node.name not in neurons:
            neurons[node.name] = {"spikes": float(spikes.get(node.name, 0)), "neurons": node.size,
                                  "neuron_steps": node.size * steps, "neuron_updates": float(updates.get(node.name, 0))}
        elif isinstance(node, (ConvNode, LinearNode)):
            synapses[node.name] = {"sops": sops.get(node.name, 0.0), "macs": macs.get(node.name, 0.0),
                                   "spiking": node.name not in macs, "ann_macs_per_sample": dense_synapses(graph, j)}
    note = ("counted event by event (EventSimulator): SOPs exact; MACs = non-zero real inputs x fan-out; "
            "neuron updates = neuron-steps with input or away from rest")
    return build_report(neurons, synapses, samples, energy or EnergyModel(), [note])


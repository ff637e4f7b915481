"""Run a NIR graph in the peers' own importers, one time step at a time, recording every neuron.

``spikingjelly_run`` uses SpikingJelly 2.0's ``nir_exchange.import_from_nir`` (float64, any batch);
``snntorch_run`` uses snnTorch 1.0's ``import_from_nir``, which fixes dt = 1e-4, emits float32
spikes from its neurons (so it runs in float32) and maps NIR's Flatten (whose dims exclude the
batch) onto ``torch.nn.Flatten`` unchanged, flattening the batch too: it runs one sample at a
time, and its spikes come back as ``[T, B, features]``. Both return ``(per-step outputs
[T, B, ...], {snnres layer: spikes [T, B, ...]})``, the
levels of an MLF neuron summed, keyed by the ``snnres_layer`` metadata the exporter writes.
"""

from __future__ import annotations

import contextlib
import io

import nir
import torch


def _by_layer(graph: nir.NIRGraph, recorded: dict[str, list[torch.Tensor]]) -> dict[str, torch.Tensor]:
    spikes: dict[str, torch.Tensor] = {}
    for name, node in graph.nodes.items():
        if isinstance(node, (nir.LIF, nir.IF)):
            z = torch.stack(recorded[name.replace(".", "_")])
            layer = node.metadata.get("snnres_layer", name)
            spikes[layer] = spikes[layer] + z if layer in spikes else z
    return spikes


def spikingjelly_run(graph: nir.NIRGraph, x_seq: torch.Tensor, dt: float):
    from spikingjelly.activation_based.nir_exchange.from_nir import import_from_nir

    module = import_from_nir(graph, dt=dt, dtype=x_seq.dtype)
    recorded: dict[str, list[torch.Tensor]] = {}
    for name, m in module.named_modules():
        if type(m).__name__ == "_NIRStatefulModule":  # its neuron wrapper: forward(x, state) -> (spikes, state)
            m.register_forward_hook(lambda mod, args, out, name=name: recorded.setdefault(name, []).append(out[0]))
    state, outputs = None, []
    with torch.no_grad():
        for x in x_seq:
            y, state = module(x, state)
            outputs.append(y)
    return torch.stack(outputs), _by_layer(graph, recorded)


def snntorch_run(graph: nir.NIRGraph, x_seq: torch.Tensor):
    import snntorch
    import snntorch.utils
    from snntorch.import_nir import import_from_nir

    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per rescaled threshold
        module = import_from_nir(graph)
    module = module.float()
    recorded: dict[str, list[torch.Tensor]] = {}
    for name, m in module.named_modules():
        if isinstance(m, snntorch.SpikingNeuron):
            m.register_forward_hook(lambda mod, args, out, name=name: recorded.setdefault(name, []).append(
                out if isinstance(out, torch.Tensor) else out[0]))
    outputs, per_sample = [], []
    with torch.no_grad():
        for b in range(x_seq.shape[1]):
            snntorch.utils.reset(module)  # its neurons keep their membranes between calls
            recorded.clear()
            state, steps = None, []
            for x in x_seq[:, b:b + 1]:
                y, state = module(x.float(), state)
                steps.append(y.reshape(1, -1))
            outputs.append(torch.stack(steps))
            per_sample.append({k: [z.reshape(1, -1) for z in v] for k, v in recorded.items()})
    spikes = {k: torch.cat([_by_layer(graph, s)[k] for s in per_sample], dim=1) for k in _by_layer(graph, per_sample[0])}
    return torch.cat(outputs, dim=1), spikes

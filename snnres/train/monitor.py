"""Spike counting with forward hooks on the neuron modules, for progress and summaries."""

from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager

from torch import nn

from ..neurons import SpikingNeuron


class SpikeCounter:
    """Per neuron layer: spikes, neuron-steps and samples seen (outputs are ``[T, B, ...]``)."""

    def __init__(self) -> None:
        self.spikes: dict[str, float] = defaultdict(float)
        self.neuron_steps: dict[str, int] = defaultdict(int)
        self.neurons: dict[str, int] = {}
        self.samples: dict[str, int] = defaultdict(int)
        self.steps: dict[str, int] = {}

    def hook(self, name: str):
        def record(module, inputs, output):
            out = output.detach()
            self.spikes[name] += float(out.sum())
            self.neuron_steps[name] += out.numel()
            self.steps[name] = out.shape[0]
            self.samples[name] += out.shape[1] if out.ndim > 1 else 1
            self.neurons[name] = out[0, 0].numel() if out.ndim > 1 else 1
        return record

    @property
    def firing_rate(self) -> float:
        """Spikes per neuron per time step, over all layers."""
        steps = sum(self.neuron_steps.values())
        return sum(self.spikes.values()) / steps if steps else 0.0

    def spikes_per_neuron(self, name: str) -> float:
        """Spikes per neuron per sample (over all T steps)."""
        n = self.neurons.get(name, 0) * self.samples.get(name, 0)
        return self.spikes[name] / n if n else 0.0

    def reset(self) -> None:
        self.__init__()


@contextmanager
def count_spikes(model: nn.Module):
    counter = SpikeCounter()
    handles = [m.register_forward_hook(counter.hook(name)) for name, m in model.named_modules()
               if isinstance(m, SpikingNeuron)]
    try:
        yield counter
    finally:
        for h in handles:
            h.remove()


def mean_spikes_per_neuron(counter: SpikeCounter) -> float:
    """Spikes per neuron per sample averaged over neurons of all layers."""
    total_neurons = sum(counter.neurons[n] for n in counter.neurons)
    if not total_neurons:
        return 0.0
    return sum(counter.spikes_per_neuron(n) * counter.neurons[n] for n in counter.neurons) / total_neurons


__all__ = ["SpikeCounter", "count_spikes", "mean_spikes_per_neuron"]

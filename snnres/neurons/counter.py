"""The one spike counter: forward hooks on a model's neuron layers (training progress, the energy
report and ``diagnose`` all count with it).

A neuron layer's output is ``[T, B, ...]`` spikes (an MLF layer's: 0..K level spikes per neuron
and step, counted as that many spikes). Per layer it keeps the spikes, the neuron-steps seen
(``T * B * neurons``), the neurons of one sample, the samples and the steps.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from .modules import SpikingNeuron


class SpikeCounter:
    """Per neuron layer: spikes, neuron-steps and samples seen."""

    _FIELDS = ("spikes", "neuron_steps", "neurons", "samples", "steps")

    def __init__(self) -> None:
        self.spikes: dict[str, float] = defaultdict(float)
        self.neuron_steps: dict[str, int] = defaultdict(int)
        self.neurons: dict[str, int] = {}
        self.samples: dict[str, int] = defaultdict(int)
        self.steps: dict[str, int] = {}

    def hook(self, name: str):
        def record(module, inputs, output):
            out = output.detach()
            self.spikes[name] += float(out.sum(dtype=torch.float32))  # half-precision sums overflow
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

    def rate_of(self, name: str) -> float:
        """Spikes per neuron per time step of one layer."""
        steps = self.neuron_steps.get(name, 0)
        return self.spikes[name] / steps if steps else 0.0

    def spikes_per_neuron(self, name: str) -> float:
        """Spikes per neuron per sample (over all T steps)."""
        n = self.neurons.get(name, 0) * self.samples.get(name, 0)
        return self.spikes[name] / n if n else 0.0

    def reset(self) -> None:
        self.__init__()

    def state_dict(self) -> dict[str, dict]:
        """The counts as plain dicts (a mid-epoch checkpoint carries them)."""
        return {name: dict(getattr(self, name)) for name in self._FIELDS}

    def load_state_dict(self, state: dict[str, dict] | None) -> None:
        """Continue from ``state`` (empty or None: start from zero)."""
        self.reset()
        for name, values in (state or {}).items():
            getattr(self, name).update(values)


def neuron_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(qualified name, module)`` of every spiking neuron layer, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, SpikingNeuron)]


@contextmanager
def count_spikes(model: nn.Module) -> Iterator[SpikeCounter]:
    """A ``SpikeCounter`` hooked on every neuron layer of ``model`` while the block runs."""
    counter = SpikeCounter()
    handles = [m.register_forward_hook(counter.hook(name)) for name, m in neuron_layers(model)]
    try:
        yield counter
    finally:
        for h in handles:
            h.remove()


def mean_spikes_per_neuron(counter: SpikeCounter) -> float:
    """Spikes per neuron per sample averaged over neurons of all layers."""
    total_neurons = sum(counter.neurons.values())
    if not total_neurons:
        return 0.0
    return sum(counter.spikes_per_neuron(n) * counter.neurons[n] for n in counter.neurons) / total_neurons
